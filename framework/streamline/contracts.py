"""Schema contracts of header feeds: each file's header against the spec's columns, at claim.

A feed whose files start with a header row (`source.format.header: true`) says in
`source.format.schema_contract` what a file with columns the spec lacks does, in dlt's vocabulary
(https://dlthub.com/docs/general-usage/schema-contracts). The claim task reads every file's header
(streamline.headers) once the files are in processing/<BATCH_ID>/ and compares its names, trimmed
and case-insensitive, with the spec's columns (`compare_header`); `decide` then says, per file:

- the spec's columns, in order: load as today;
- a spec column missing, or out of order: set the file aside to quarantine/ with a reason naming
  the expected and the found columns, whatever the contract (the load reads fields by position);
- the spec's columns in order, then others ("extra" columns). Extra columns the feed evolved
  before (see below) load into their columns; the others are unexpected, and the contract decides:
  - `freeze` (the default): the claim fails before anything loads (`refusal`): the batch's files
    wait in processing/<BATCH_ID>/ and the error names the columns, the files and how to go on;
  - `discard_row`: set the file aside with a reason naming the columns and the contract;
  - `discard_value`: load the file's rows without those fields; one `columns_discarded` row per
    file in the quarantine table names them (it is not a rejected row: see layout.FILE_CODES);
  - `evolve`: add the columns, nullable VARCHAR named as the header names them (a name that is not
    a plain identifier, or that StreamLine uses, fails the claim as freeze does), to the landing
    and raw tables, and to the mart with `schema_contract_mart` (`evolve_columns`): ALTER TABLE
    statements made by streamline.migrations.column_changes, as `streamline apply` makes them,
    and recorded in the feed's schema version (`evolved` in its contract: table -> columns), so
    that `streamline plan` does not report them as columns to drop and the spec's fingerprint,
    which the DAG checks, stays the same.

The load SQL is rendered at generate time, from the spec; what varies per batch travels in the
claim's XCom (`claim_fields`), quoted as SQL by the claim, and a run-time loop in
templates/load.sql.j2 expands it (Airflow renders the .sql file with the XCom):
`copies` (one COPY per header layout: its files, where each evolved column's field is, and the
header's width, so that the field after the header's last is the load's "too many fields"
marker, and discarded fields are skipped), `evolved` (every evolved column of the feed, which the
load carries from the landing table to raw and the mart), and `discarded` (the notes above).
A design alternative, rendering the DAG's SQL again after each evolution, would need the DAG
processor to parse the DAG again between claim and load; the XCom needs nothing but the run.

Snowflake behaviour relied on: the file format's SKIP_HEADER = 1 skips the header row; in a COPY
that transforms (SELECT $1, ... FROM @stage), a field number past a row's last field is NULL and
ERROR_ON_COLUMN_COUNT_MISMATCH does not apply, so each COPY may name the fields its header has and
the one after it (https://docs.snowflake.com/en/user-guide/data-load-transform,
https://docs.snowflake.com/en/sql-reference/sql/create-file-format#type-csv).

Headerless feeds (Firehose's concatenated records) keep positional columns and none of this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.errors import StreamlineError
from streamline.headers import HeaderError, HeaderFormat, read_header
from streamline.layout import RESERVED_COLUMNS
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_literal, quote_table

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from streamline.ledger import Runner
    from streamline.migrations import Recorded
    from streamline.model import Feed

CONTRACTS = ("evolve", "freeze", "discard_row", "discard_value")
"""source.format.schema_contract's values (the JSON Schema's enum)."""
MOST_NAMES = 40
"""Names listed in a reason before '...'."""
READ_THREADS = 16
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,254}\Z")
_LOAD_ALIASES = re.compile(r"^(?:[fvt][0-9]+|problem)\Z")
"""Names the load step gives its own fields (templates/load.sql.j2): not for evolved columns."""


class ContractError(StreamlineError):
    """A batch breaks its feed's schema contract in a way that needs a person (freeze)."""


def names_text(names: Sequence[str]) -> str:
    """Names for a message: comma-separated, '' shown as (empty), at most MOST_NAMES."""
    shown = [n if n else "(empty)" for n in names[:MOST_NAMES]]
    return ", ".join(shown) + (", ..." if len(names) > MOST_NAMES else "")


@dataclass(frozen=True)
class Header:
    """One file's header compared with the spec's columns: the names found (trimmed), whether
    the spec's columns come first and in order (`fits`), and the names after them (`extra`, lower
    case)."""

    found: tuple[str, ...]
    fits: bool
    extra: tuple[str, ...] = ()


def compare_header(columns: Sequence[str], found: Sequence[str]) -> Header:
    """Compare a header's names (trimmed, case-insensitive) with the spec's columns, in order."""
    names = tuple(name.strip() for name in found)
    lowered = [name.lower() for name in names]
    fits = lowered[: len(columns)] == [c.lower() for c in columns]
    return Header(names, fits, tuple(lowered[len(columns) :]) if fits else ())


@dataclass(frozen=True)
class ContractConfig:
    """What the claim task needs to hold a header feed to its contract (its `schema_contract`
    keyword argument, built by dagconfig from the spec; `to_kwargs`/`from_kwargs` are the one
    serialisation). mart is None unless the spec's schema_contract_mart evolves the mart too."""

    feed: str
    contract: str
    columns: tuple[str, ...]
    format: HeaderFormat
    landing: TableRef
    raw: TableRef
    schema_versions: TableRef
    mart: TableRef | None = None

    @classmethod
    def of(cls, feed: Feed) -> ContractConfig | None:
        """The feed's config; None for a headerless feed."""
        fmt = feed.source.format
        if not fmt.header or fmt.schema_contract is None:
            return None
        layout = feed.layout
        return cls(
            feed=feed.feed,
            contract=fmt.schema_contract,
            columns=feed.column_names,
            format=HeaderFormat.of(fmt),
            landing=layout.landing_table,
            raw=feed.raw,
            schema_versions=layout.schema_versions,
            mart=feed.mart if fmt.schema_contract_mart else None,
        )

    def to_kwargs(self) -> dict[str, Any]:
        def parts(t: TableRef) -> dict[str, str]:
            return {"database": t.database, "schema": t.schema, "table": t.table}

        return {
            "feed": self.feed,
            "contract": self.contract,
            "columns": list(self.columns),
            "format": self.format.to_kwargs(),
            "landing": parts(self.landing),
            "raw": parts(self.raw),
            "schema_versions": parts(self.schema_versions),
            "mart": parts(self.mart) if self.mart else None,
        }

    @classmethod
    def from_kwargs(cls, value: Mapping[str, Any]) -> ContractConfig:
        return cls(
            feed=value["feed"],
            contract=value["contract"],
            columns=tuple(value["columns"]),
            format=HeaderFormat(**value["format"]),
            landing=TableRef(**value["landing"]),
            raw=TableRef(**value["raw"]),
            schema_versions=TableRef(**value["schema_versions"]),
            mart=TableRef(**value["mart"]) if value.get("mart") else None,
        )

    @property
    def evolving_tables(self) -> tuple[TableRef, ...]:
        """The tables evolve adds columns to: landing, raw, and the mart when configured."""
        return (self.landing, self.raw, *((self.mart,) if self.mart else ()))


@dataclass(frozen=True)
class Copy:
    """One COPY of the load: files sharing a header layout; `evolved` (column, field number) says
    where each evolved column's field is, `width` how many fields the header has."""

    width: int
    files: tuple[str, ...]
    evolved: tuple[tuple[str, int], ...] = ()


@dataclass
class Decision:
    """What the contract makes of a batch's headers (files by relative key).

    set_aside: file -> reason (to quarantine/ at claim); refused: file -> why the claim must fail
    (freeze, or names evolve cannot add); copies: the load's COPYs; discarded: file -> columns
    whose values are not loaded; new_columns: what evolve adds (lower case, in first-seen order).
    """

    set_aside: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    discarded: dict[str, tuple[str, ...]] = field(default_factory=dict)
    new_columns: list[str] = field(default_factory=list)


def unfit_reason(columns: Sequence[str], header: Header | str) -> str:
    """Why a file whose header does not fit the spec is set aside."""
    if isinstance(header, str):
        return f"header check: the header row cannot be read: {header}"
    if not header.found or header.found == ("",):
        return f"header check: the file has no header row; expected {names_text(columns)}"
    return (
        "header check: a column of the spec is missing or out of order, so the file cannot be "
        f"loaded by position: expected {names_text(columns)}; found {names_text(header.found)}"
    )


def evolve_problem(name: str, columns: Sequence[str], extra: Sequence[str]) -> str | None:
    """Why evolve cannot add a column of this header name (lower case), or None."""
    if not _IDENTIFIER.match(name):
        return (
            f"'{name}' is not a plain identifier (a-z, 0-9 and _, starting with a letter or _, at "
            "most 255 characters)"
        )
    if name in RESERVED_COLUMNS or _LOAD_ALIASES.match(name):
        return f"'{name}' is a name StreamLine uses itself"
    if name in columns:
        return f"'{name}' is a column of the spec already"
    if list(extra).count(name) > 1:
        return f"'{name}' is named twice"
    return None


def decide(
    contract: str,
    columns: Sequence[str],
    headers: Mapping[str, Header | str],
    evolved: Sequence[str] = (),
) -> Decision:
    """Apply the contract to each file's header (a Header, or why it could not be read).

    evolved: the feed's evolved columns (lower case): extra columns of those names load into
    them under any contract. Pure: no lake, no warehouse.
    """
    decision = Decision()
    known = {name.lower() for name in evolved}
    spec = [c.lower() for c in columns]
    layouts: dict[tuple[int, tuple[tuple[str, int], ...]], list[str]] = {}
    for rel, header in headers.items():
        if isinstance(header, str) or not header.fits:
            decision.set_aside[rel] = unfit_reason(columns, header)
            continue
        unexpected = [n for n in header.extra if n not in known]
        if unexpected and contract == "freeze":
            decision.refused[rel] = f"columns not in the spec: {names_text(unexpected)}"
            continue
        if unexpected and contract == "discard_row":
            decision.set_aside[rel] = (
                f"schema_contract discard_row: columns not in the spec: "
                f"{names_text(unexpected)}; the file's rows are not loaded (header: "
                f"{names_text(header.found)})"
            )
            continue
        if contract == "evolve":
            problems = [p for n in unexpected if (p := evolve_problem(n, spec, header.extra))]
            if problems:
                decision.refused[rel] = "cannot add " + "; ".join(dict.fromkeys(problems))
                continue
            for name in unexpected:
                if name not in decision.new_columns:
                    decision.new_columns.append(name)
        loaded = known | set(decision.new_columns)
        mapped: dict[str, int] = {}
        for position, name in enumerate(header.extra, start=len(columns) + 1):
            if name in loaded and name not in mapped and name not in spec:
                mapped[name] = position
        if dropped := [n for n in header.extra if n not in mapped]:
            decision.discarded[rel] = tuple(dropped)
        layout = (len(header.found), tuple(mapped.items()))
        layouts.setdefault(layout, []).append(rel)
    decision.copies = [
        Copy(width, tuple(files), mapping) for (width, mapping), files in layouts.items()
    ]
    return decision


def read_headers(
    s3: S3Client,
    bucket: str,
    folder: str,
    files: Sequence[tuple[str, int]],
    columns: Sequence[str],
    fmt: HeaderFormat,
) -> dict[str, Header | str]:
    """Each file's header (files: relative key and size, under folder), compared with columns;
    a file whose header cannot be read (HeaderError) maps to why. S3 errors pass through."""

    def one(item: tuple[str, int]) -> Header | str:
        rel, size = item
        try:
            return compare_header(columns, read_header(s3, bucket, folder + rel, size, fmt))
        except HeaderError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return dict(zip((rel for rel, _ in files), pool.map(one, files), strict=True))


def refusal(config: ContractConfig, batch_id: str, where: str, decision: Decision) -> ContractError:
    """The error that fails a claim the contract refuses: the columns, the files (in where,
    s3://bucket/processing/<BATCH_ID>/<prefix>/) and how to go on."""
    files = "; ".join(f"{rel}: {why}" for rel, why in sorted(decision.refused.items()))
    what = "schema_contract evolve cannot add every column" if config.contract == "evolve" else (
        f"schema_contract {config.contract}: files have columns the spec does not have"
    )  # fmt: skip
    return ContractError(
        f"feed {config.feed}, batch {batch_id}: {what} ({files}). Nothing was loaded; the "
        f"batch's files are kept in {where}. To go on, either add the columns to the spec's "
        f"columns and run `streamline apply {config.feed}`, or set source.format.schema_contract "
        "to evolve, discard_value or discard_row; then run "
        f"`streamline reprocess {config.feed} {batch_id}`. Or set the files aside: "
        f"`streamline reprocess {config.feed} {batch_id} --quarantine FILE=REASON`."
    )


def known_evolved(recorded: Recorded | None, config: ContractConfig) -> list[str]:
    """The feed's evolved columns (lower case, in the order they were added) that are not spec
    columns: those its schema version records for the raw table."""
    if recorded is None:
        return []
    evolved = recorded.contract.get("evolved") or {}
    spec = {c.lower() for c in config.columns}
    names = [str(n).lower() for n in evolved.get(quote_table(config.raw), [])]
    return [n for n in names if n not in spec]


def evolve_columns(
    runner: Runner, config: ContractConfig, recorded: Recorded | None, new: Sequence[str]
) -> list[str]:
    """Add the feed's evolved columns (those recorded, then new) where they are missing: the
    landing and raw tables and, when configured, the mart; record them in a new schema version
    (record_evolved). Returns the feed's evolved columns.

    Each table's ALTER TABLE ... ADD COLUMN comes from migrations.column_changes over DESCRIBE
    TABLE's columns plus the missing ones, as a nullable VARCHAR (Snowflake adds a column to a
    table with rows as NULL for them:
    https://docs.snowflake.com/en/sql-reference/sql/alter-table#table-column-actions-tablecolumnaction).
    A column another run added meanwhile is in DESCRIBE's columns, so its ALTER is not made
    twice. Raises ContractError when the feed has no schema version yet (`streamline apply`).
    """
    from streamline.migrations import TEXT_MAX, ColumnState, SqlType, column_changes, live_columns

    if recorded is None and not new:
        return []
    if recorded is None:
        raise ContractError(
            f"feed {config.feed}: schema_contract evolve records the columns it adds in the "
            "feed's schema version, and the warehouse has none: run "
            f"`streamline apply {config.feed}` first"
        )
    names = list(dict.fromkeys([*known_evolved(recorded, config), *new]))
    before: dict[str, list[str]] = {
        str(table): [str(c).upper() for c in cols]
        for table, cols in (recorded.contract.get("evolved") or {}).items()
    }
    after = {table: list(cols) for table, cols in before.items()}
    statements: list[str] = []
    for table in config.evolving_tables:
        quoted = quote_table(table)
        missing = [n.upper() for n in names if n.upper() not in after.get(quoted, [])]
        if not missing:
            continue
        live = live_columns(runner.get_records(f"DESCRIBE TABLE {quoted}"))
        have = {c.name.upper() for c in live}
        wanted = [*live, *(ColumnState(n, SqlType("TEXT", TEXT_MAX), True) for n in missing
                           if n not in have)]  # fmt: skip
        for change in column_changes(quoted, wanted, live):
            if change.kind == "add column" and change.ddl:
                runner.run(change.ddl.rstrip(";"))
                statements.append(change.ddl)
        after[quoted] = [*after.get(quoted, []), *missing]
    if after != before:
        record_evolved(runner, config.schema_versions, config.feed, recorded, after, statements)
    return names


def record_evolved(
    runner: Runner,
    table: TableRef,
    feed: str,
    recorded: Recorded,
    evolved: Mapping[str, Sequence[str]],
    statements: Sequence[str],
) -> None:
    """Record the feed's next schema version: the recorded one's fingerprint and contract, with
    `evolved` (quoted table -> columns, upper case) in place of its own, and the ALTERs made.

    The fingerprint stays the spec's, so DAG runs rendered for it go on (check_version), and
    `streamline plan` leaves evolved columns alone (migrations.evolved_columns); `streamline
    apply` carries them into the versions it records (migrations.contract_record)."""
    from streamline.schema_versions import read_recorded, record_version

    # The latest version again, just before writing: an apply or another run's evolve may have
    # recorded one since `recorded` was read. Its fingerprint and contract are kept, and the
    # evolved columns are the union of both.
    latest = read_recorded(runner, table, feed) or recorded
    merged: dict[str, list[str]] = {
        t: [str(c).upper() for c in cs] for t, cs in (latest.contract.get("evolved") or {}).items()
    }
    for name, columns in evolved.items():
        have = merged.setdefault(name, [])
        have += [c for c in columns if c.upper() not in have]
    contract = {**latest.contract, "evolved": merged}
    record_version(runner, table, feed, latest.fingerprint, contract, statements)


def claim_fields(
    decision: Decision, folder: str, evolved: Sequence[str], contract: str
) -> dict[str, Any]:
    """The header feed's part of the claim's XCom (beside ledger.claim_xcom's), every value
    already SQL (identifiers quoted by quote_identifier, values by quote_literal):

    - copies: [{files: "'a.csv', 'b.csv'", width: 9, evolved: [{column: '"COUPON"', field: 9}]}]
    - evolved: [{column: '"COUPON"', alias: '"E$1"'}], every evolved column of the feed
    - discarded: [{source_file: "'processing/<ID>/<prefix>/a.csv'", error: "'...'"}]
    """

    def literal(value: str) -> str:
        return quote_literal(value, runtime_value=True)

    return {
        "copies": [
            {
                "files": ", ".join(literal(f) for f in copy.files),
                "width": copy.width,
                "evolved": [
                    {"column": quote_identifier(name), "field": position}
                    for name, position in copy.evolved
                ],
            }
            for copy in decision.copies
        ],
        "evolved": [
            {"column": quote_identifier(name), "alias": f'"E${i}"'}
            for i, name in enumerate(evolved, start=1)
        ],
        "discarded": [
            {
                "source_file": literal(folder + rel),
                "error": literal(
                    f"schema_contract {contract}: the values of columns {names_text(columns)} "
                    "(not in the spec) were not loaded; the file's rows were"
                ),
            }
            for rel, columns in sorted(decision.discarded.items())
        ],
    }
