"""Generated DAGs load in Airflow 3.3's DagBag: ids, tasks, dependencies, visible spec errors."""

from __future__ import annotations

import itertools
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streamline.cli import main
from streamline.dagconfig import TASKS
from streamline.dagloader import ERROR_DAG_ID, check_dags_folder

ROOT = Path(__file__).resolve().parents[2]

SHIPMENTS = textwrap.dedent(
    """\
    # yaml-language-server: $schema=../schemas/feed.schema.json
    feed: shipments
    source:
      prefix: shipments
    columns:
      - {name: shipment_id, type: VARCHAR(24)}
      - {name: order_id, type: VARCHAR(20)}
      - {name: carrier, type: VARCHAR(32)}
      - {name: shipped_at, type: TIMESTAMP_NTZ(3)}
    key: [shipment_id]
    ordering: shipped_at
    references:
      - {column: order_id, feed: orders, to: order_id}
    raw: {database: streamline, schema: raw, table: shipments}
    mart: {database: streamline, schema: mart, table: shipments}
    checks:
      - {type: not_null, columns: [shipment_id, order_id]}
    """
)


def make_project(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """A project folder with the repo's schema, templates and pipelines, plus extra spec files."""
    root = tmp_path / "project"
    for folder in ("schemas", "templates", "pipelines"):
        shutil.copytree(ROOT / folder, root / folder)
    for name, text in (extra or {}).items():
        (root / "pipelines" / name).write_text(text, encoding="utf-8")
    return root


def generate(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(root)
    monkeypatch.delenv("STREAMLINE_PROJECT_DIR", raising=False)
    out = root / "dags"
    assert main(["--project", str(root), "generate", "--out", str(out)]) == 0
    return out


def test_generated_dags_load_with_no_import_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dags, errors = check_dags_folder(generate(make_project(tmp_path), monkeypatch))
    assert errors == {}
    assert set(dags) == {"customers", "orders"}
    for tasks in dags.values():
        assert tasks == list(TASKS)


def test_dependencies_and_sql_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    out = generate(make_project(tmp_path), monkeypatch)
    bag = BundleDagBag(dag_folder=str(out), bundle_path=out)
    dag = bag.dags["orders"]
    for before, after in itertools.pairwise(TASKS):
        assert dag.get_task(before).downstream_task_ids == {after}
    # The SQL tasks reference files that exist in the DAG's template search path.
    searchpath = Path(dag.template_searchpath[0])
    for step in ("load", "transform"):
        assert (searchpath / f"{step}.sql").is_file()
    assert dag.tags and "streamline" in dag.tags


def test_a_third_feed_is_only_a_yaml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, {"shipments.yaml": SHIPMENTS})
    monkeypatch.chdir(root)
    assert main(["--project", str(root), "validate"]) == 0
    assert "3 specs valid" in capsys.readouterr().out
    assert (
        main(
            [
                "--project",
                str(root),
                "render",
                "shipments",
                "--batch-id",
                "20260102T030405Z",
                "--step",
                "load",
            ]
        )
        == 0
    )
    assert "processing/20260102T030405Z/shipments/" in capsys.readouterr().out
    dags, errors = check_dags_folder(generate(root, monkeypatch))
    assert errors == {}
    assert dags["shipments"] == list(TASKS)


def test_a_broken_spec_is_an_import_error_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    out = generate(root, monkeypatch)
    (root / "pipelines" / "broken.yaml").write_text(
        "feed: broken\nsource:\n  prefix: broken\n  colour: red\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)  # Airflow parses from anywhere: paths stay project-relative
    dags, errors = check_dags_folder(out)
    assert set(dags) == {"customers", "orders"}
    assert ERROR_DAG_ID not in dags
    assert len(errors) == 1
    (message,) = errors.values()
    assert "pipelines/broken.yaml:4:3: $.source.colour: unknown key 'colour'" in message
    assert "pipelines/broken.yaml:1:1: $: missing required key 'columns'" in message


def test_a_stray_dag_factory_defaults_file_does_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import BundleDagBag

    out = generate(make_project(tmp_path), monkeypatch)
    # dag-factory looks for defaults.yml in Airflow's configured dags folder by default.
    stray = Path(conf.get("core", "dags_folder")) / "defaults.yml"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("default_args:\n  pool: intruder\n", encoding="utf-8")
    try:
        bag = BundleDagBag(dag_folder=str(out), bundle_path=out)
    finally:
        stray.unlink()
    assert bag.import_errors == {}
    assert bag.dags["orders"].get_task("load").pool != "intruder"


def test_validation_that_fails_as_a_whole_is_one_visible_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline import dagloader

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("schema unreadable")

    monkeypatch.setattr(dagloader, "validate_paths", broken)
    found: dict[str, object] = {}
    assert dagloader.load_dags(found, Path(__file__).resolve().parents[2], tmp_path) == []
    error_dag = found[ERROR_DAG_ID]
    with pytest.raises(Exception, match="could not be validated: RuntimeError: schema unreadable"):
        error_dag.validate()  # type: ignore[attr-defined]


def _built(tmp_path: Path, root: Path) -> tuple[list[str], list[str]]:
    """load_dags on a project: (dag ids built, lines of the error DAG's import error)."""
    from streamline import dagloader

    found: dict[str, object] = {}
    built = dagloader.load_dags(found, root, tmp_path / "sql")
    if ERROR_DAG_ID not in found:
        return built, []
    with pytest.raises(Exception) as caught:
        found[ERROR_DAG_ID].validate()  # type: ignore[attr-defined]
    return built, str(caught.value).splitlines()


def test_a_cross_spec_rule_that_raises_hides_only_the_spec_that_made_it_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline import validation

    root = make_project(tmp_path, {"shipments.yaml": SHIPMENTS})
    overlaps = validation._overlaps

    def fragile(a: str, b: str) -> bool:  # a rule with a bug that only shipments' prefix meets
        if "shipments" in (a, b):
            raise KeyError("surprise")
        return overlaps(a, b)

    monkeypatch.setattr(validation, "_overlaps", fragile)
    built, lines = _built(tmp_path, root)
    assert sorted(built) == ["customers", "orders"]
    assert [line for line in lines if "could not be validated: KeyError" in line] == [
        "pipelines/shipments.yaml:1:1: $: could not be validated: KeyError: 'surprise'"
    ]


def test_a_template_that_raises_is_an_error_of_its_feed_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path, {"shipments.yaml": SHIPMENTS})
    template = root / "templates" / "transforms" / "raising.sql.j2"
    template.write_text("SELECT {{ 1 // 0 }};\n", encoding="utf-8")
    spec = root / "pipelines" / "shipments.yaml"
    spec.write_text(SHIPMENTS + "transform: {template: raising}\n", encoding="utf-8")
    built, lines = _built(tmp_path, root)
    assert sorted(built) == ["customers", "orders"]
    (line,) = [line for line in lines if "raising" in line]
    assert line.startswith("pipelines/shipments.yaml:")
    assert (
        "$.transform.template: template 'raising' could not be rendered: ZeroDivisionError" in line
    )


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in range(10 ** 12) %}SELECT {{ i }};{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        '{% set s = "x" * 10 ** 10 %}{{ s | length }}',
        '{% set s = ["x"] * 10 ** 7 %}{{ s | length }}',
        "{{ 3 ** 100000000 }}",
    ],
)
def test_a_template_without_bound_is_an_error_of_its_feed_only(tmp_path: Path, body: str) -> None:
    root = make_project(tmp_path, {"shipments.yaml": SHIPMENTS})
    template = root / "templates" / "transforms" / "looping.sql.j2"
    template.write_text(body + "\n")
    spec = root / "pipelines" / "shipments.yaml"
    spec.write_text(SHIPMENTS + "transform: {template: looping}\n", encoding="utf-8")
    built, lines = _built(tmp_path, root)  # range() and * are budgeted: no stall, no memory blow
    assert sorted(built) == ["customers", "orders"]
    (line,) = [line for line in lines if "looping" in line]
    assert "could not be rendered: OverflowError" in line


def test_dag_docs_are_the_same_text_through_libyaml(tmp_path: Path) -> None:
    """load_dags has dag-factory write each DAG's config docs with libyaml's emitter (75% of
    dag-factory's time per DAG with PyYAML's own); every DAG's doc_md is the same text as
    dag-factory alone writes, and the swap is undone after the block."""
    import yaml
    from dagfactory import dagfactory as module

    from streamline.dagloader import config_docs_through_libyaml, load_dags

    root = make_project(tmp_path)
    plain: dict[str, object] = {}
    load_dags(plain, root, tmp_path / "sql")  # through libyaml
    with config_docs_through_libyaml() as swapped:
        assert swapped, "this dag-factory no longer renders its docs through its module's yaml"
        assert module.yaml is not yaml
    assert module.yaml is yaml
    original = module.yaml.dump
    pure: dict[str, object] = {}
    module.yaml = type("PurePython", (), {"dump": staticmethod(original)})  # type: ignore[assignment]
    try:
        load_dags(pure, root, tmp_path / "sql")
    finally:
        module.yaml = yaml
    docs = {name: getattr(dag, "doc_md", None) for name, dag in plain.items()}
    assert docs and all(docs.values())
    assert docs == {name: getattr(dag, "doc_md", None) for name, dag in pure.items()}


def test_a_parse_with_unchanged_specs_takes_the_last_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_dags validates once per content: unchanged specs, schema and templates are not
    validated again; an edited spec or template is, and a cache file cut short is ignored."""
    from streamline import dagloader

    root = make_project(tmp_path)
    sql = tmp_path / "sql"
    calls: list[int] = []
    real = dagloader.validate_paths

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dagloader, "validate_paths", counted)

    def parse() -> dict[str, object]:
        found: dict[str, object] = {}
        dagloader.load_dags(found, root, sql)
        return found

    first = parse()
    assert set(first) == {"customers", "orders"} and len(calls) == 1
    assert set(parse()) == set(first) and len(calls) == 1  # the same content: no validation
    spec = root / "pipelines" / "orders.yaml"
    spec.write_text(spec.read_text().replace("key: [order_id]", "key: [no_such_column]"))
    broken = parse()
    assert len(calls) == 2 and ERROR_DAG_ID in broken and "orders" not in broken
    assert ERROR_DAG_ID in parse() and len(calls) == 2  # the errors are kept too
    template = next((root / "templates").rglob("*.j2"))
    template.write_text(template.read_text() + "\n")
    parse()
    assert len(calls) == 3
    [kept] = (sql / dagloader.VALIDATED_FOLDER).glob("*.pickle")  # only the newest
    kept.write_bytes(kept.read_bytes()[:10])  # a parse killed while writing (or a stray file)
    assert ERROR_DAG_ID in parse() and len(calls) == 4


def test_a_spec_changed_during_validation_is_not_kept_under_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec rewritten between the key's read and the validation's (a sync or checkout in
    progress): that validation is not kept, so the original content is validated again."""
    from streamline import dagloader

    root = make_project(tmp_path)
    spec = root / "pipelines" / "customers.yaml"
    original = spec.read_text()
    real = dagloader.validate_paths

    def racing(*args: object, **kwargs: object) -> object:
        spec.write_text(original.replace("feed: customers\n", "feed: Customers!!\n"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dagloader, "validate_paths", racing)
    first: dict[str, object] = {}
    assert dagloader.load_dags(first, root, tmp_path / "sql") == []
    monkeypatch.setattr(dagloader, "validate_paths", real)
    spec.write_text(original)
    again: dict[str, object] = {}
    assert sorted(dagloader.load_dags(again, root, tmp_path / "sql")) == ["customers", "orders"]


def _fingerprints(found: dict[str, object]) -> dict[str, str]:
    """Each DAG's schema fingerprint, as its claim task checks it."""
    return {
        name: dag.get_task("claim").op_kwargs["schema_version"]["fingerprint"]  # type: ignore[attr-defined]
        for name, dag in found.items()
    }


def _sql_files(sql: Path) -> dict[str, str]:
    return {str(path.relative_to(sql)): path.read_text() for path in sorted(sql.glob("*/*.sql"))}


def test_a_feed_is_rendered_once_per_content_and_its_sql_kept_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first parse writes the SQL the validation's template check rendered (one render per
    feed, not two); the next renders nothing while each feed's SQL files are in place and the
    same, and renders again a feed whose file went missing or was changed."""
    from streamline import dagloader, generation, rendering
    from streamline.project import find_project

    root = make_project(tmp_path)
    sql = tmp_path / "sql"
    rendered: list[str] = []
    real = rendering.render_feed

    def counted(project: Any, feed: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
        rendered.append(feed.feed)
        return real(project, feed, *args, **kwargs)

    monkeypatch.setattr(rendering, "render_feed", counted)
    monkeypatch.setattr(generation, "render_feed", counted)

    def parse() -> dict[str, str]:
        found: dict[str, object] = {}
        assert sorted(dagloader.load_dags(found, root, sql)) == ["customers", "orders"]
        return _fingerprints(found)

    first = parse()
    assert sorted(rendered) == ["customers", "orders"]
    files = _sql_files(sql)
    plain = tmp_path / "plain"  # what write_feed_sql writes, as load_dags did before
    project = find_project(root)
    feeds = dagloader.validate_paths(project, base=root).feeds
    fingerprints = {f.feed: generation.write_feed_sql(project, f, feeds, plain) for f in feeds}
    assert files == _sql_files(plain) and len(files) == 6
    assert first == fingerprints
    rendered.clear()
    assert parse() == first
    assert rendered == []
    (sql / "orders" / "load.sql").unlink()
    (sql / "customers" / "ddl.sql").write_text("-- edited by hand\n")
    assert parse() == first
    assert sorted(rendered) == ["customers", "orders"]
    assert _sql_files(sql) == files


def test_other_render_settings_render_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept validation holds the SQL's digests for the render settings it was made with: a
    parse with another lake URL writes SQL with that URL; an invalid one fails each feed's DAG
    as before, naming the URL."""
    from streamline import dagloader

    root = make_project(tmp_path)
    sql = tmp_path / "sql"
    monkeypatch.setenv("STREAMLINE_LAKE_URL", "s3://first-lake")
    dagloader.load_dags({}, root, sql)
    assert "s3://first-lake" in (sql / "orders" / "ddl.sql").read_text()
    monkeypatch.setenv("STREAMLINE_LAKE_URL", "s3://second-lake")
    assert sorted(dagloader.load_dags({}, root, sql)) == ["customers", "orders"]
    ddl = (sql / "orders" / "ddl.sql").read_text()
    assert "s3://second-lake" in ddl and "s3://first-lake" not in ddl
    monkeypatch.setenv("STREAMLINE_LAKE_URL", "not a url")
    built, lines = _built(tmp_path, root)
    assert built == []
    assert [line for line in lines if "could not be built" in line] == [
        f"pipelines/{name}.yaml:1:1: $: DAG could not be built: lake URL 'not a url' is not of "
        "the form s3://bucket[/prefix]"
        for name in ("customers", "orders")
    ]
