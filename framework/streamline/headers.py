"""Read the header row of a landed CSV file: the first bytes, decompressed, decoded and parsed.

A header feed's claim (streamline.contracts) compares each file's header with the spec's columns
before the file is loaded. `read_header` fetches the object's first bytes with a ranged GET
through the task's S3 client (more only while the header row has not ended), and
`parse_header` turns them into names the way the feed's file format reads the file:

- COMPRESSION AUTO tells gzip and zstd by their first bytes, as Snowflake detects them; GZIP and
  ZSTD are read as such, NONE as it is
  (https://docs.snowflake.com/en/sql-reference/sql/create-file-format#type-csv). A partial
  compressed stream decompresses as far as it goes, so the first bytes suffice. zstd is read with
  the `zstandard` package, a dependency of StreamLine (every MWAA image's constraints pin it).
- ENCODING UTF8, ISO-8859-1, WINDOWS1252: Python's utf-8, latin-1, cp1252; a byte order mark
  before the first name is dropped, as Snowflake's SKIP_BYTE_ORDER_MARK (TRUE by default) does.
- FIELD_DELIMITER and FIELD_OPTIONALLY_ENCLOSED_BY with the csv module: a quoted name may hold the
  delimiter, a doubled quote, or a line break; records end at \\n, \\r\\n or \\r.

Errors: `HeaderError` when the bytes are not in the format (not its compression or encoding, no
header row), with a message that names what was expected; S3 errors pass through.
"""

from __future__ import annotations

import codecs
import csv
import io
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamline.errors import StreamlineError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from streamline.model import CsvFormat

FIRST_BYTES = 64 * 1024
"""The first ranged GET of a file: a header row is almost always far shorter."""
MOST_BYTES = 4 * 1024 * 1024
"""A header row that has not ended within this many bytes of the object is refused."""
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
CODECS = {"UTF8": "utf-8", "ISO-8859-1": "latin-1", "WINDOWS1252": "cp1252"}
"""The schema's ENCODING values -> Python's codecs."""


class HeaderError(StreamlineError):
    """A file's header row cannot be read in the feed's format."""


@dataclass(frozen=True)
class HeaderFormat:
    """What reading a header needs of a feed's `source.format`."""

    delimiter: str = ","
    quote: str = '"'
    compression: str = "auto"
    encoding: str = "UTF8"

    @classmethod
    def of(cls, fmt: CsvFormat) -> HeaderFormat:
        return cls(fmt.delimiter, fmt.quote, fmt.compression, fmt.encoding)

    def to_kwargs(self) -> dict[str, str]:
        """As a task's keyword argument (read back with HeaderFormat(**value))."""
        return {
            "delimiter": self.delimiter,
            "quote": self.quote,
            "compression": self.compression,
            "encoding": self.encoding,
        }


def _decompress(data: bytes, compression: str) -> bytes:
    kind = compression.lower()
    if kind == "auto":
        kind = "gzip" if data[:2] == _GZIP else "zstd" if data[:4] == _ZSTD else "none"
    if kind == "none":
        return data
    if kind == "gzip":
        # wbits 16+: a gzip wrapper; a partial stream gives what it holds so far. A file of
        # several gzip members (concatenated, as gzip allows) reads on into the next one.
        out, rest = b"", data
        try:
            while rest:
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += decompressor.decompress(rest)
                if not decompressor.eof:
                    break
                rest = decompressor.unused_data
        except zlib.error as exc:
            raise HeaderError(f"not a gzip file ({exc})") from None
        return out
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise HeaderError(
                "a zstd file's header cannot be read here: install the zstandard package "
                "where the DAG's tasks run (add it to requirements.txt)"
            ) from None
        try:
            plain: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError as exc:
            raise HeaderError(f"not a zstd file ({exc})") from None
        return plain
    raise HeaderError(f"compression {compression!r} is not one the header check reads")


def parse_header(data: bytes, fmt: HeaderFormat, *, complete: bool = True) -> list[str] | None:
    """The header row's names (as written, quotes removed) from a file's first bytes.

    complete says whether data is the whole object. When it is not and the bytes end before the
    header row does, returns None: read more. A file with no header row (nothing, or nothing but
    a byte order mark) gives []. Raises HeaderError for bytes not in the format.
    """
    raw = _decompress(data, fmt.compression)
    codec = CODECS.get(fmt.encoding.upper())
    if codec is None:
        raise HeaderError(f"encoding {fmt.encoding!r} is not one the header check reads")
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    try:
        text = decoder.decode(raw, final=complete)
    except UnicodeDecodeError as exc:
        raise HeaderError(
            f"its header is not {fmt.encoding} text (byte 0x{raw[exc.start]:02X} at offset "
            f"{exc.start})"
        ) from None
    text = text.removeprefix("\ufeff")
    quote = None if fmt.quote == "none" else fmt.quote
    buffer = io.StringIO(text, newline="")
    options: dict[str, Any] = {"delimiter": fmt.delimiter, "doublequote": True, "strict": False}
    if quote is None:
        options.update(quoting=csv.QUOTE_NONE, quotechar=None)
    else:
        options.update(quoting=csv.QUOTE_MINIMAL, quotechar=quote)
    row = next(csv.reader(buffer, **options), None)
    # The reader takes whole lines: with text left after them, the header row has ended.
    if not complete and buffer.tell() >= len(text):
        return None
    return list(row) if row is not None else []


def read_header(s3: S3Client, bucket: str, key: str, size: int, fmt: HeaderFormat) -> list[str]:
    """The header row's names of the object at key (size bytes): ranged GETs of its first bytes,
    FIRST_BYTES, then four times as many, while the header row has not ended.
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (Range)

    Raises HeaderError when the file is not in the format or its header row is longer than
    MOST_BYTES."""
    wanted = FIRST_BYTES
    while True:
        complete = wanted >= size
        end = min(wanted, size) - 1
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{end}")["Body"]
        data: bytes = body.read()
        names = parse_header(data, fmt, complete=complete)
        if names is not None:
            return names
        if wanted >= MOST_BYTES:
            raise HeaderError(f"its header row does not end within its first {MOST_BYTES} bytes")
        wanted *= 4
