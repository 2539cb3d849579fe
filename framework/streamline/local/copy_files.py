"""Files of a COPY from an s3:// stage, for the COPY emulator (streamline.local.copy_emulator):
the COPY's parts as the emulator reads them, the download (with COMPRESSION and ENCODING as
Snowflake applies them, https://docs.snowflake.com/en/sql-reference/sql/create-file-format), the
file format's DATE_FORMAT / TIMESTAMP_FORMAT as DuckDB strptime formats, and DuckDB's CSV errors
as Snowflake-style messages."""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import duckdb
import zstandard

_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
CODECS = {"UTF8": None, "UTF-8": None, "ISO-8859-1": "latin-1", "ISO88591": "latin-1",
           "WINDOWS1252": "cp1252"}  # fmt: skip
"""ENCODING values -> Python's codec; None: UTF-8, which DuckDB reads (and checks) itself."""


@dataclass(frozen=True)
class CopyOptions:
    """A COPY's options, with its file format's."""

    format: dict[str, Any]
    on_error: str = "ABORT_STATEMENT"
    size_limit: int = 0
    truncate: bool = False
    force: bool = False
    files: tuple[str, ...] | None = None  # FILES = (...): names relative to the FROM location


class Column(NamedTuple):
    name: str
    type: str  # DuckDB's
    nullable: bool
    length: int | None  # of a VARCHAR/CHAR


class StageFile(NamedTuple):
    url: str  # s3://bucket/key, as Snowflake reports it
    key: str
    size: int
    name: str  # relative to the stage URL: METADATA$FILENAME


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def download(
    s3: Any, files: Sequence[StageFile], folder: Path, fmt: dict[str, Any]
) -> list[Path | str]:
    """Download the files with the S3 client in parallel, each ready for read_csv: a compressed
    one named for its compression (.gz, .zst; COMPRESSION AUTO tells by the first bytes, as
    Snowflake does), one in another ENCODING decompressed and transcoded to UTF-8. A file that
    is not in its ENCODING comes back as the error Snowflake would give instead of a path."""
    compression = str(fmt["COMPRESSION"]).upper()
    codec = CODECS[str(fmt["ENCODING"]).upper()]

    def fetch(index: int, file: StageFile) -> Path | str:
        path = folder / f"{index:06d}.csv"
        s3.download_file(urlparse(file.url).netloc, file.key, str(path))
        with path.open("rb") as handle:
            magic = handle.read(4)
        kind = compression
        if compression == "AUTO":
            kind = "GZIP" if magic[:2] == _GZIP else "ZSTD" if magic == _ZSTD else "NONE"
        if codec is None:
            suffix = {"GZIP": ".csv.gz", "ZSTD": ".csv.zst"}.get(kind)
            return path.rename(path.with_suffix(suffix)) if suffix else path
        data = path.read_bytes()
        if kind == "GZIP":
            data = gzip.decompress(data)
        elif kind == "ZSTD":
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        try:
            path.write_bytes(data.decode(codec).encode())
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            return f"Invalid {fmt['ENCODING']} character 0x{data[exc.start]:02X} on line {line}"
        return path

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fetch, range(len(files)), files))


_FORMAT_ELEMENTS = re.compile(
    r'"[^"]*"|YYYY|YY|MMMM|MON|MM|DD|DY|HH24|HH12|HH|AM|PM|MI|SS|FF\d?|TZH:TZM|TZHTZM|.',
    re.I | re.S,
)
_STRPTIME = {"YYYY": "%Y", "YY": "%y", "MMMM": "%B", "MON": "%b", "MM": "%m", "DD": "%d"}
_STRPTIME |= {"DY": "%a", "HH24": "%H", "HH12": "%I", "HH": "%H", "AM": "%p", "PM": "%p"}
_STRPTIME |= {"MI": "%M", "SS": "%S", "TZH:TZM": "%z", "TZHTZM": "%z", "FF": "%n"}
_STRPTIME |= {f"FF{n}": "%g" if n <= 3 else "%f" if n <= 6 else "%n" for n in range(1, 10)}


def format_elements(snowflake_format: str) -> list[str]:
    """A Snowflake date/time format split into its elements ('YYYY', '-', 'MM', '"T"', ...).
    https://docs.snowflake.com/en/sql-reference/functions-conversion#date-and-time-formats-in-conversion-functions
    """
    return list(_FORMAT_ELEMENTS.findall(snowflake_format))


def strptime_format(snowflake_format: str) -> str:
    """A Snowflake date/time format as DuckDB's strptime format."""
    out = []
    for element in format_elements(snowflake_format):
        if element.startswith('"'):
            out.append(element[1:-1].replace("%", "%%"))
        else:
            out.append(_STRPTIME.get(element.upper(), element.replace("%", "%%")))
    return "".join(out)


def line_of(error: str) -> int | None:
    found = re.search(r"[Ll]ine:? (\d+)", error)
    return int(found.group(1)) if found else None


def parse_error(exc: duckdb.Error) -> tuple[str, int | None]:
    """DuckDB's CSV error as (message, line): its explanation, without the reader's settings."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [
        line for line in lines[1:]
        if not line.startswith(("Original Line", "Possible Solution", "file =", "delimiter"))
        and " = " not in line
    ]  # fmt: skip
    return (reasons[0] if reasons else lines[0]), line_of(text)
