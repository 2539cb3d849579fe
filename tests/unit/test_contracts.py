"""Schema contracts of header feeds: reading a header row, comparing it with the spec's columns,
what each contract makes of a batch, the load SQL a run renders from the claim's XCom, and the
claim's part with moto and fakesnow in-process (tests/integration/test_schema_contracts.py runs
the DAG).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
import sqlglot
import zstandard
from sqlglot import exp

from streamline import tasks
from streamline.contracts import (
    ContractConfig,
    Copy,
    Header,
    claim_fields,
    compare_header,
    decide,
    evolve_columns,
    known_evolved,
)
from streamline.dagconfig import build_dag_config
from streamline.headers import FIRST_BYTES, HeaderError, HeaderFormat, parse_header, read_header
from streamline.lake import claim
from streamline.layout import LakeLayout
from streamline.ledger import ConnectionRunner, claim_values, claim_xcom
from streamline.migrations import (
    Live,
    Recorded,
    contract_of,
    contract_record,
    plan_feed,
)
from streamline.model import Feed
from streamline.project import find_project
from streamline.rendering import quote_table, render_feed
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
SIGNUPS = ROOT / "tests" / "fixtures" / "specs" / "valid" / "signups.yaml"
BATCH = "20260101T000000.000000Z"
COLUMNS = ("email", "country", "signed_up_at")
CSV = HeaderFormat()


# --- reading a header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "names"),
    [
        (b"email,country,signed_up_at\r\na,b,c\r\n", CSV, ["email", "country", "signed_up_at"]),
        (b'"e,mail","say ""hi""","two\nlines"\n1,2,3\n', CSV, ["e,mail", 'say "hi"', "two\nlines"]),
        (b"\xef\xbb\xbfemail,country\n", CSV, ["email", "country"]),
        (b"email;pays\n", HeaderFormat(delimiter=";"), ["email", "pays"]),
        (b"email\tpays\n", HeaderFormat(delimiter="\t"), ["email", "pays"]),
        (b"'e|m'|c\n", HeaderFormat(delimiter="|", quote="'"), ["e|m", "c"]),
        (b'"a"|b\n', HeaderFormat(delimiter="|", quote="none"), ['"a"', "b"]),
        ("prénom,straße\n".encode("latin-1"), HeaderFormat(encoding="ISO-8859-1"),
         ["prénom", "straße"]),
        ("€uro,naïve\n".encode("cp1252"), HeaderFormat(encoding="WINDOWS1252"), ["€uro", "naïve"]),
        ("prénom,x\n".encode(), CSV, ["prénom", "x"]),
        (b"email,country", CSV, ["email", "country"]),  # a file of one line, no line break
        (b"", CSV, []),
        (b"\xef\xbb\xbf", CSV, []),
    ],
)  # fmt: skip
def test_a_header_is_read_as_the_file_format_reads_it(
    data: bytes, fmt: HeaderFormat, names: list[str]
) -> None:
    assert parse_header(data, fmt) == names


def test_compressed_files_are_read_by_their_compression_or_their_first_bytes() -> None:
    text = b"email,country\n" + b"x@example.com,DE\n" * 1000
    packed = gzip.compress(text)
    for compression in ("auto", "gzip"):
        fmt = HeaderFormat(compression=compression)
        assert parse_header(packed, fmt) == ["email", "country"]
        # The first bytes of a stream are enough: it decompresses as far as it goes.
        assert parse_header(packed[:20], fmt, complete=False) is None  # not even the name
        assert parse_header(packed[:60], fmt, complete=False) == ["email", "country"]
    zstd = zstandard.ZstdCompressor().compress(text)
    assert parse_header(zstd, HeaderFormat(compression="auto")) == ["email", "country"]
    assert parse_header(zstd, HeaderFormat(compression="zstd")) == ["email", "country"]
    with pytest.raises(HeaderError, match="not a gzip file"):
        parse_header(text, HeaderFormat(compression="gzip"))


def test_bytes_not_in_the_encoding_are_a_header_error() -> None:
    with pytest.raises(HeaderError, match=r"not UTF8 text \(byte 0xE9 at offset 2\)"):
        parse_header("pr\u00e9nom\n".encode("latin-1"), CSV)


def test_a_header_cut_short_asks_for_more_bytes() -> None:
    assert parse_header(b"email,coun", CSV, complete=False) is None
    assert parse_header(b'"a\nb",c\n', CSV, complete=False) is None  # nothing after it yet
    assert parse_header(b'"a\nb",c\nx', CSV, complete=False) == ["a\nb", "c"]
    # A multi-byte character cut in two by the range waits for its second byte.
    assert parse_header("é,x".encode()[:1], CSV, complete=False) is None


def test_read_header_takes_ranged_gets_until_the_row_ends(s3: Any) -> None:
    long_name = "c" * (FIRST_BYTES + 10)
    body = f"email,{long_name}\n1,2\n".encode()
    s3.put_object(Bucket="lake", Key="f.csv", Body=body)
    assert read_header(s3, "lake", "f.csv", len(body), CSV) == ["email", long_name]
    s3.put_object(Bucket="lake", Key="g.csv.gz", Body=gzip.compress(b"a,b\n1,2\n"))
    size = s3.head_object(Bucket="lake", Key="g.csv.gz")["ContentLength"]
    assert read_header(s3, "lake", "g.csv.gz", size, CSV) == ["a", "b"]


# --- comparing and deciding ----------------------------------------------------------------------


def test_names_compare_trimmed_and_case_insensitive_in_order() -> None:
    assert compare_header(COLUMNS, [" Email ", "COUNTRY", "signed_up_at"]) == Header(
        ("Email", "COUNTRY", "signed_up_at"), True, ()
    )
    assert compare_header(COLUMNS, ["email", "country", "signed_up_at", " Coupon"]).extra == (
        "coupon",
    )
    assert not compare_header(COLUMNS, ["email", "signed_up_at", "country"]).fits
    assert not compare_header(COLUMNS, ["email", "country"]).fits
    assert not compare_header(COLUMNS, []).fits


def headers(**files: list[str]) -> dict[str, Header | str]:
    return {f"{name}.csv": compare_header(COLUMNS, found) for name, found in files.items()}


SAME = ["email", "country", "signed_up_at"]
WIDER = [*SAME, "coupon", "source"]


@pytest.mark.parametrize("contract", ["evolve", "freeze", "discard_row", "discard_value"])
def test_a_file_whose_header_cannot_load_by_position_is_set_aside_under_any_contract(
    contract: str,
) -> None:
    found = headers(a=SAME, b=["email", "signed_up_at", "country"], c=["email"])
    decision = decide(contract, COLUMNS, {**found, "d.csv": "its header is not UTF8 text"})
    assert decision.set_aside == {
        "b.csv": "header check: a column of the spec is missing or out of order, so the file "
        "cannot be loaded by position: expected email, country, signed_up_at; found email, "
        "signed_up_at, country",
        "c.csv": "header check: a column of the spec is missing or out of order, so the file "
        "cannot be loaded by position: expected email, country, signed_up_at; found email",
        "d.csv": "header check: the header row cannot be read: its header is not UTF8 text",
    }
    assert decision.copies == [Copy(3, ("a.csv",))]
    assert not decision.refused and not decision.discarded and not decision.new_columns


def test_freeze_refuses_files_with_columns_the_spec_lacks() -> None:
    decision = decide("freeze", COLUMNS, headers(a=SAME, b=WIDER))
    assert decision.refused == {"b.csv": "columns not in the spec: coupon, source"}
    assert decision.copies == [Copy(3, ("a.csv",))]


def test_discard_row_sets_the_file_aside_naming_the_columns() -> None:
    decision = decide("discard_row", COLUMNS, headers(a=SAME, b=WIDER))
    assert decision.set_aside == {
        "b.csv": "schema_contract discard_row: columns not in the spec: coupon, source; the "
        "file's rows are not loaded (header: email, country, signed_up_at, coupon, source)"
    }
    assert not decision.refused


def test_discard_value_loads_the_file_with_the_header_s_width() -> None:
    decision = decide("discard_value", COLUMNS, headers(a=SAME, b=WIDER))
    # The field after the header's last (6th) is the load's "too many fields" marker.
    assert decision.copies == [Copy(3, ("a.csv",)), Copy(5, ("b.csv",))]
    assert decision.discarded == {"b.csv": ("coupon", "source")}
    assert not decision.set_aside and not decision.refused and not decision.new_columns


def test_evolve_adds_new_columns_and_maps_each_file_s_fields() -> None:
    found = headers(a=SAME, b=WIDER, c=[*SAME, "source"], d=[*SAME, "source", "coupon"])
    decision = decide("evolve", COLUMNS, found)
    assert decision.new_columns == ["coupon", "source"]
    assert decision.copies == [
        Copy(3, ("a.csv",)),
        Copy(5, ("b.csv",), (("coupon", 4), ("source", 5))),
        Copy(4, ("c.csv",), (("source", 4),)),
        Copy(5, ("d.csv",), (("source", 4), ("coupon", 5))),
    ]


def test_columns_evolved_before_load_under_any_contract() -> None:
    decision = decide("freeze", COLUMNS, headers(b=WIDER), evolved=["coupon", "source"])
    assert not decision.refused
    assert decision.copies == [Copy(5, ("b.csv",), (("coupon", 4), ("source", 5)))]
    decision = decide("discard_value", COLUMNS, headers(b=WIDER), evolved=["source"])
    assert decision.copies == [Copy(5, ("b.csv",), (("source", 5),))]
    assert decision.discarded == {"b.csv": ("coupon",)}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["Coupon Code"], "'coupon code' is not a plain identifier"),
        ([""], "'' is not a plain identifier"),
        (["batch_id"], "'batch_id' is a name StreamLine uses itself"),
        (["t1"], "'t1' is a name StreamLine uses itself"),
        (["country"], "'country' is a column of the spec already"),
        (["coupon", "Coupon"], "'coupon' is named twice"),
        (["c" * 256], "is not a plain identifier"),
    ],
)
def test_evolve_refuses_names_it_cannot_add(extra: list[str], problem: str) -> None:
    decision = decide("evolve", COLUMNS, headers(b=[*SAME, *extra]))
    assert problem in decision.refused["b.csv"]
    assert not decision.new_columns and not decision.copies


# --- the claim's XCom and the SQL a run executes -------------------------------------------------


@pytest.fixture(scope="module")
def signups() -> tuple[Any, list[Feed]]:
    project = find_project()
    result = validate_paths(project, [SIGNUPS])
    assert result.ok, result.errors
    return project, result.feeds


def run_sql(sql: str, fields: dict[str, Any]) -> str:
    """The SQL as a run executes it: Airflow renders it with the claim's XCom."""
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    values = claim_values(dag_id="signups", run_id="manual__x", files=2, bytes_=10,
                          empty_files=0, started=when, claimed=when)  # fmt: skip
    xcom = {**claim_xcom(BATCH, f"processing/{BATCH}/signups/", ["a.csv", "b.csv"], values),
            **fields}  # fmt: skip

    class TaskInstance:
        start_date = when

        def xcom_pull(self, task_ids: str, key: str) -> Any:
            return json.loads(json.dumps(xcom))  # as the XCom backend hands it back

    rendered: str = jinja2.Template(sql).render(ti=TaskInstance())
    return rendered


def test_claim_fields_are_quoted_sql() -> None:
    decision = decide("evolve", COLUMNS, headers(a=SAME, b=[*SAME, "coupon", "x'y"]))
    assert decision.refused  # x'y cannot be a column
    decision = decide("discard_value", COLUMNS, headers(a=SAME, b=[*SAME, "x'y"]))
    fields = claim_fields(decision, "processing/B/signups/", ["coupon"], "discard_value")
    assert fields == {
        "copies": [
            {"files": "'a.csv'", "width": 3, "evolved": []},
            {"files": "'b.csv'", "width": 4, "evolved": []},
        ],
        "evolved": [{"column": '"COUPON"', "alias": '"E$1"'}],
        "discarded": [{
            "source_file": "'processing/B/signups/b.csv'",
            "error": "'schema_contract discard_value: the values of columns x\\'y (not in the "
            "spec) were not loaded; the file\\'s rows were'",
        }],
    }  # fmt: skip


def test_a_header_feed_s_load_expands_the_claim_s_copies_and_columns(
    signups: tuple[Any, list[Feed]],
) -> None:
    project, feeds = signups
    sql = render_feed(project, feeds[0], feeds)
    decision = decide("evolve", COLUMNS, headers(**{"a": SAME, "b": [*SAME, "extra", "coupon"]}))
    decision.discarded["b.csv"] = ("x",)
    fields = claim_fields(decision, f"processing/{BATCH}/signups/", ["coupon", "extra"], "evolve")
    load = run_sql(sql["load"], fields)
    statements = [s for s in sqlglot.parse(load, read="snowflake") if s is not None]
    kinds = [type(s).__name__ for s in statements]
    assert kinds == [
        "Update", "Insert", "Transaction", "Delete", "Copy", "Copy", "Delete", "Delete",
        "Insert", "Insert", "Insert", "Select", "Select", "Update", "Delete", "Commit",
    ]  # fmt: skip
    assert not any(s.find(exp.Command) for s in statements)
    first, second = (s for s in statements if isinstance(s, exp.Copy))
    assert "FILES = ('a.csv')" in first.sql("snowflake")
    assert '"SIGNED_UP_AT", "EXTRA_FIELD", "MORE_FIELDS"' in first.sql("snowflake")
    assert "$3, $4, $5, '" in first.sql("snowflake")  # the fields after the header's 3
    assert '"SIGNED_UP_AT", "EXTRA", "COUPON", "EXTRA_FIELD"' in second.sql("snowflake")
    assert "$3, $4, $5, $6, $7, '" in second.sql("snowflake")
    raw = next(s for s in statements if isinstance(s, exp.Insert) and "SIGNUPS\"" in
               s.this.sql("snowflake") and "QUARANTINE" not in s.this.sql("snowflake"))  # fmt: skip
    assert '"SIGNED_UP_AT", "COUPON", "EXTRA", "BATCH_ID"' in raw.sql("snowflake")
    assert 'c."T3", c."E$1", c."E$2"' in raw.sql("snowflake")
    assert "'columns_discarded'" in load and "the values of columns x" in load
    transform = run_sql(sql["transform"], fields)
    merge = next(s for s in sqlglot.parse(transform, read="snowflake") if isinstance(s, exp.Merge))
    assert '"COUPON" = s."COUPON", "EXTRA" = s."EXTRA"' in merge.sql("snowflake")


def test_a_header_feed_without_extra_columns_loads_as_before(
    signups: tuple[Any, list[Feed]],
) -> None:
    project, feeds = signups
    load = render_feed(project, feeds[0], feeds, steps=["load"])["load"]
    fields = claim_fields(decide("evolve", COLUMNS, headers(a=SAME)), "p/", [], "evolve")
    statements = [s for s in sqlglot.parse(run_sql(load, fields), read="snowflake") if s]
    assert [type(s).__name__ for s in statements].count("Copy") == 1
    assert not any(s.find(exp.Command) for s in statements)


def test_only_header_feeds_get_the_contract_in_their_dag(
    signups: tuple[Any, list[Feed]], tmp_path: Path
) -> None:
    _, feeds = signups
    [config] = build_dag_config(feeds[0], tmp_path).values()
    kwargs = config["tasks"]["claim"]["op_kwargs"]["schema_contract"]
    assert ContractConfig.from_kwargs(kwargs) == ContractConfig.of(feeds[0])
    assert kwargs["contract"] == "evolve" and kwargs["mart"]["table"] == "signups"
    project = find_project()
    for feed in validate_paths(project).feeds:  # the shipped feeds are headerless
        [config] = build_dag_config(feed, tmp_path).values()
        assert "schema_contract" not in config["tasks"]["claim"]["op_kwargs"]
        assert feed.source.format.schema_contract is None


# --- plan and apply keep evolved columns ---------------------------------------------------------


def test_plan_leaves_evolved_columns_alone_and_apply_keeps_them() -> None:
    ddl = (
        'CREATE TABLE IF NOT EXISTS "D"."S"."T" (\n  "A" VARCHAR(10)\n);\n'
        'CREATE TABLE IF NOT EXISTS "D"."S"."M" (\n  "A" VARCHAR(10)\n);'
    )
    contract = contract_of("f", ddl, ["a"], '"D"."S"."T"', '"D"."S"."M"')
    evolved = {'"D"."S"."T"': ["COUPON"]}
    body = {**contract.to_json(), "evolved": evolved}
    recorded = Recorded(1, contract.fingerprint, body)
    from streamline.migrations import ColumnState, canonical_type

    def cols(*names: str) -> list[ColumnState]:
        return [ColumnState(n, canonical_type("VARCHAR(10)"), True) for n in names]

    live = Live(recorded, {'"D"."S"."T"': cols("A", "COUPON"), '"D"."S"."M"': cols("A")}, {})
    plan = plan_feed(contract, live, {})
    assert plan.changes == [] and plan.up_to_date
    # Without the record the same column is one the spec dropped: refused.
    bare = Live(Recorded(1, contract.fingerprint, contract.to_json()), live.tables, {})
    [change] = plan_feed(contract, bare, {}).changes
    assert (change.kind, change.column, change.safe) == ("drop column", "COUPON", False)
    # A later apply records the contract with the evolved columns the spec does not name.
    assert contract_record(contract, recorded)["evolved"] == evolved
    named = contract_of(
        "f", ddl.replace('"A" VARCHAR(10)\n);\nCREATE', '"A" VARCHAR(10),\n  "COUPON" VARCHAR\n'
                         ');\nCREATE'), ["a"], '"D"."S"."T"', '"D"."S"."M"',
    )  # fmt: skip
    assert "evolved" not in contract_record(named, recorded)


# --- the claim's header check, with moto and fakesnow in-process ---------------------------------


@pytest.fixture
def tables(warehouse: ConnectionRunner, signups: tuple[Any, list[Feed]]) -> ContractConfig:
    """The signups feed's landing, raw and mart tables and its schema version, as apply leaves
    them; returns its contract config."""
    from streamline.layout import SCHEMA_VERSION_COLUMNS
    from streamline.rendering import quote_identifier
    from streamline.schema_versions import feed_contract

    project, feeds = signups
    feed = feeds[0]
    contract = feed_contract(project, feed, feeds)
    for name in (contract.raw, contract.mart, quote_table(feed.layout.landing_table)):
        database, schema, _ = (part.strip('"') for part in name.split("."))
        warehouse.run(f'CREATE DATABASE IF NOT EXISTS "{database}"')
        warehouse.run(f'CREATE SCHEMA IF NOT EXISTS "{database}"."{schema}"')
        columns = ", ".join(f'"{c.name}" {c.type.sql()}' for c in contract.tables[name])
        warehouse.run(f"CREATE TABLE {name} ({columns})")
    versions = quote_table(feed.layout.schema_versions)
    columns = ", ".join(f"{quote_identifier(c.name)} {c.type}" for c in SCHEMA_VERSION_COLUMNS)
    warehouse.run(f"CREATE TABLE {versions} ({columns})")
    warehouse.run(
        f"INSERT INTO {versions} (\"FEED\", \"VERSION\", \"FINGERPRINT\", \"CONTRACT\", "
        '"APPLIED_AT") SELECT %(feed)s, 1, %(fp)s, %(contract)s, CURRENT_TIMESTAMP()',
        parameters={"feed": "signups", "fp": contract.fingerprint,
                    "contract": json.dumps(contract.to_json())},
    )  # fmt: skip
    config = ContractConfig.of(feed)
    assert config is not None
    return config


class Kept:
    """A warehouse runner that the claim may close (the fixture closes the real one)."""

    def __init__(self, runner: ConnectionRunner) -> None:
        self.runner = runner

    def run(self, sql: str, autocommit: bool = True, parameters: Any = None) -> None:
        self.runner.run(sql, parameters=parameters)

    def get_records(self, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.runner.get_records(sql, parameters=parameters)
        return rows

    def close(self) -> None:
        pass


def claimed(s3: Any, files: dict[str, str]) -> Any:
    for name, text in files.items():
        s3.put_object(Bucket="lake", Key=f"landing/signups/{name}", Body=text.encode())
    manifest = claim(s3, "lake", "signups", "signups", BATCH, "run_1")
    assert manifest is not None
    return manifest


def hold(s3: Any, manifest: Any, config: ContractConfig) -> tuple[Any, dict[str, Any]]:
    layout = LakeLayout("signups")
    held: tuple[Any, dict[str, Any]] = tasks._hold_to_contract(
        s3, "lake", layout, manifest, config, "snowflake", "run_1", reprocess=False
    )
    return held


def keys(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix=prefix).get("Contents", [])]


GOOD = "email,country,signed_up_at\na@x.io,DE,2026-01-01 10:00:00\n"
COUPON = "Email,Country,Signed_Up_At,Coupon\nb@x.io,FR,2026-01-01 11:00:00,SPRING\n"
SHUFFLED = "country,email,signed_up_at\nDE,c@x.io,2026-01-01 12:00:00\n"


def test_freeze_fails_the_claim_with_every_file_kept_in_processing(
    s3: Any, warehouse: ConnectionRunner, tables: ContractConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "_warehouse", lambda _: Kept(warehouse))
    manifest = claimed(s3, {"a.csv": GOOD, "b.csv": COUPON, "c.csv": SHUFFLED})
    config = ContractConfig.from_kwargs({**tables.to_kwargs(), "contract": "freeze"})
    with pytest.raises(Exception) as failed:
        hold(s3, manifest, config)
    assert type(failed.value).__name__ == "AirflowFailException"  # no retry: it would fail again
    message = str(failed.value)
    assert f"feed signups, batch {BATCH}: schema_contract freeze" in message
    assert "b.csv: columns not in the spec: coupon" in message
    assert f"kept in s3://lake/processing/{BATCH}/signups/" in message
    assert "streamline apply signups" in message and "--quarantine FILE=REASON" in message
    # Nothing is lost: the loadable files wait in processing/, the shuffled one is set aside.
    assert keys(s3, "processing/") == [f"processing/{BATCH}/signups.manifest.json",
                                       f"processing/{BATCH}/signups/a.csv",
                                       f"processing/{BATCH}/signups/b.csv"]  # fmt: skip
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/signups/c.csv"]


def test_discard_row_and_a_shuffled_header_set_files_aside_with_their_reasons(
    s3: Any, tables: ContractConfig, warehouse: ConnectionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "_warehouse", lambda _: Kept(warehouse))
    manifest = claimed(s3, {"a.csv": GOOD, "b.csv": COUPON, "c.csv": SHUFFLED})
    config = ContractConfig.from_kwargs({**tables.to_kwargs(), "contract": "discard_row"})
    manifest, fields = hold(s3, manifest, config)
    reasons = {e.relative_key: e.reason for e in manifest.files if e.outcome == "quarantined"}
    assert set(reasons) == {"b.csv", "c.csv"}
    assert reasons["b.csv"].startswith("schema_contract discard_row: columns not in the spec: ")
    assert "expected email, country, signed_up_at; found country, email" in reasons["c.csv"]
    assert [e.relative_key for e in manifest.load_files] == ["a.csv"]
    assert fields["copies"] == [{"files": "'a.csv'", "width": 3, "evolved": []}]
    assert sorted(keys(s3, "quarantine/")) == [f"quarantine/{BATCH}/signups/b.csv",
                                               f"quarantine/{BATCH}/signups/c.csv"]  # fmt: skip


def test_evolve_adds_the_column_where_the_spec_says_and_records_it(
    s3: Any, tables: ContractConfig, warehouse: ConnectionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline.schema_versions import read_recorded

    monkeypatch.setattr(tasks, "_warehouse", lambda _: Kept(warehouse))
    manifest = claimed(s3, {"a.csv": GOOD, "b.csv": COUPON})
    before = read_recorded(warehouse, tables.schema_versions, "signups")
    _, fields = hold(s3, manifest, tables)
    assert fields["evolved"] == [{"column": '"COUPON"', "alias": '"E$1"'}]
    assert fields["copies"][1] == {"files": "'b.csv'", "width": 4,
                                   "evolved": [{"column": '"COUPON"', "field": 4}]}  # fmt: skip
    for table in tables.evolving_tables:
        names = [r[0] for r in warehouse.get_records(f"DESCRIBE TABLE {quote_table(table)}")]
        assert names[-1] == "COUPON", (table, names)
    after = read_recorded(warehouse, tables.schema_versions, "signups")
    assert before is not None and after is not None
    assert (after.version, after.fingerprint) == (2, before.fingerprint)  # the DAG's check holds
    assert after.contract["evolved"] == {quote_table(t): ["COUPON"] for t in tables.evolving_tables}
    assert known_evolved(after, tables) == ["coupon"]
    # Once more: nothing to add, no new version.
    assert evolve_columns(warehouse, tables, after, ["coupon"]) == ["coupon"]
    again = read_recorded(warehouse, tables.schema_versions, "signups")
    assert again is not None and again.version == 2


def test_a_gzip_file_of_several_members_reads_on_past_an_empty_first_one() -> None:
    import gzip

    from streamline.headers import _decompress

    data = gzip.compress(b"") + gzip.compress(b"a,b\n1,2\n")
    assert _decompress(data, "auto") == b"a,b\n1,2\n"
