"""The `streamline` command line: validate, render, generate, deploy, run and watch feeds."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich_argparse import RawDescriptionRichHelpFormatter

from streamline import __version__
from streamline.errors import StreamlineError, UsageError, format_errors
from streamline.mwaa import DEFAULT_AIRFLOW_VERSION, MWAA_IMAGES
from streamline.project import Project, find_project
from streamline.rendering import STEPS, RenderSettings, render_feed
from streamline.validation import ValidationResult, validate_paths

MWAA_VERSIONS = tuple(MWAA_IMAGES)

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_PENDING = 2
"""`streamline plan`: changes wait to be applied (so CI can gate on it)."""
UP_WORKDIR = Path(".scratch/up")
"""Where `streamline up` keeps its stack, logs and metadata db unless told otherwise."""

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _warehouse_settings_args(parser: argparse.ArgumentParser) -> None:
    """--lake-url and --storage-integration where the stage is made in the warehouse (plan,
    apply, deploy --migrate): the lake URL defaults to the DAGs' lake bucket, never to a guess."""
    parser.add_argument(
        "--lake-url",
        help="lake URL the stage reads (default: $STREAMLINE_LAKE_URL, else s3:// and the DAGs' "
        "lake bucket, the Airflow Variable streamline_lake_bucket)",
    )
    parser.add_argument(
        "--storage-integration",
        default=RenderSettings.from_env().storage_integration,
        help="base name of the feeds' Snowflake storage integrations "
        "($STREAMLINE_STORAGE_INTEGRATION; see infra-sql)",
    )
    parser.add_argument(
        "--snowflake-conn-id",
        default=os.environ.get("STREAMLINE_DDL_CONN_ID"),
        metavar="CONN_ID",
        help="the Airflow connection to run the DDL through, for every feed "
        "($STREAMLINE_DDL_CONN_ID; default: each feed's DAG connection). In production, one "
        "whose role owns the feeds' objects (infra-sql's admin role): ALTER TABLE needs it",
    )


def _warehouse_settings(args: argparse.Namespace, lake_bucket: str | None) -> RenderSettings:
    lake_url = args.lake_url or os.environ.get("STREAMLINE_LAKE_URL")
    if not lake_url:
        bucket = lake_bucket or os.environ.get("AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET")
        if not bucket:
            raise UsageError(
                "say which lake the stages read: --lake-url s3://BUCKET (or $STREAMLINE_LAKE_URL, "
                "or the DAGs' $AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET); on the local stack, --local"
            )
        lake_url = f"s3://{bucket}"
    return RenderSettings(lake_url=lake_url, storage_integration=args.storage_integration)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each sub-command's help is its function's docstring."""
    parser = _Parser(
        prog="streamline",
        description="Declarative CSV feeds into Snowflake through Airflow.",
        formatter_class=RawDescriptionRichHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"streamline {__version__}")
    parser.add_argument(
        "--project", type=Path, help="project folder (default: found upwards from here)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func: object) -> argparse.ArgumentParser:
        doc = inspect.cleandoc(func.__doc__ or "")
        sub = commands.add_parser(
            name,
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=RawDescriptionRichHelpFormatter,
        )
        sub.set_defaults(func=func)
        return sub

    validate = command("validate", cmd_validate)
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="spec files or folders (default: pipelines/)",
    )
    validate.add_argument(
        "--airflow-version",
        choices=MWAA_VERSIONS,
        help="also refuse what this MWAA Airflow version cannot run (e.g. event mode on 2.x)",
    )

    render = command("render", cmd_render)
    render.add_argument("feed", help="feed name")
    render.add_argument(
        "--batch-id", help="substitute this batch id (e.g. 20260101T000000.000000Z)"
    )
    render.add_argument(
        "--step",
        choices=STEPS,
        action="append",
        help="render only this step (repeatable; default: all)",
    )
    _settings_args(render)

    generate = command("generate", cmd_generate)
    generate.add_argument(
        "--out",
        type=Path,
        default=Path("build/dags"),
        help="dags folder to write (default: build/dags)",
    )
    generate.add_argument(
        "--sqs-url-prefix",
        default=os.environ.get("STREAMLINE_SQS_URL_PREFIX"),
        help="queue URL prefix for event-triggered feeds (default: $STREAMLINE_SQS_URL_PREFIX)",
    )
    generate.add_argument(
        "--check",
        action="store_true",
        help="then load the folder in Airflow's DagBag and fail on import errors",
    )
    _settings_args(generate)

    deploy = command("deploy", cmd_deploy)
    deploy.add_argument(
        "--bucket", help="the MWAA environment's S3 bucket ($STREAMLINE_DAG_BUCKET)"
    )
    deploy.add_argument(
        "--prefix", help="key prefix of the bundle in the bucket ($STREAMLINE_DAG_PREFIX; none)"
    )
    deploy.add_argument(
        "--out",
        type=Path,
        default=Path("build/mwaa"),
        help="bundle folder to build (default: build/mwaa)",
    )
    deploy.add_argument(
        "--airflow-version",
        default=os.environ.get("STREAMLINE_AIRFLOW_VERSION", DEFAULT_AIRFLOW_VERSION),
        choices=MWAA_VERSIONS,
        help="Airflow version of the MWAA environment; chooses the constraint files in "
        "infra/mwaa/ ($STREAMLINE_AIRFLOW_VERSION; default: %(default)s)",
    )
    deploy.add_argument(
        "--mwaa-environment",
        default=os.environ.get("STREAMLINE_MWAA_ENVIRONMENT"),
        help="MWAA environment to ask (airflow:GetEnvironment) whether it runs the wheel that DAG "
        "files were held back for; they go once it does ($STREAMLINE_MWAA_ENVIRONMENT)",
    )
    deploy.add_argument(
        "--environment-updated",
        action="store_true",
        help="release the DAG files held back for a new wheel: the environment runs it",
    )
    deploy.add_argument(
        "--python-version",
        help="Python version of the MWAA environment: the MWAA image's (3.11 for 2.10.3, else "
        "3.12), the only one its constraint files fit; another is refused",
    )
    deploy.add_argument(
        "--sqs-url-prefix",
        help="queue URL prefix for event-triggered feeds ($STREAMLINE_SQS_URL_PREFIX)",
    )
    deploy.add_argument("--endpoint-url", help="S3 endpoint URL (for S3-compatible test servers)")
    deploy.add_argument(
        "--dry-run", action="store_true", help="list what would change; upload nothing"
    )
    deploy.add_argument(
        "--delete",
        action="store_true",
        help="delete files under dags/ that a deploy uploaded and the bundle no longer has "
        "(files no deploy uploaded are left alone)",
    )
    deploy.add_argument(
        "--build-only", action="store_true", help="build the bundle; compare and upload nothing"
    )
    _warehouse_settings_args(deploy)
    deploy.add_argument(
        "--migrate",
        action="store_true",
        help="first plan and apply the specs' warehouse changes (as `streamline apply`), through "
        "the DAGs' Snowflake connections; a refused change stops the deploy before any upload",
    )
    deploy.add_argument(
        "--check",
        action="store_true",
        help="install the bundle as MWAA would in a cached environment of --airflow-version and "
        "run each DAG once there against the embedded stack; stop on any failure",
    )

    infra_vars = command("infra-vars", cmd_infra_vars)
    infra_vars.add_argument(
        "--out",
        type=Path,
        help="file to write (default: infra/feeds.auto.tfvars.json in the project)",
    )
    infra_vars.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the file differs from what pipelines/ gives",
    )

    infra_sql = command("infra-sql", cmd_infra_sql)
    infra_sql.add_argument("--lake-bucket", required=True, help="lake bucket (terraform output)")
    infra_sql.add_argument(
        "--storage-role-arns",
        required=True,
        metavar="JSON",
        help="feed -> IAM role of its storage integration: "
        '"$(terraform -chdir=infra output -json snowflake_storage_role_arns)"',
    )
    infra_sql.add_argument(
        "--external-id",
        required=True,
        help="STORAGE_AWS_EXTERNAL_ID of every integration: Terraform's snowflake_external_id, "
        "a random value you choose (e.g. `openssl rand -hex 16`)",
    )
    infra_sql.add_argument(
        "--storage-integration",
        default="streamline_lake",
        help="each feed's integration is <this>_<feed> (default: %(default)s)",
    )
    infra_sql.add_argument(
        "--admin-role", default="streamline_admin", help="(default: %(default)s)"
    )
    infra_sql.add_argument(
        "--loader-role", default="streamline_loader", help="(default: %(default)s)"
    )
    infra_sql.add_argument("--warehouse", default="streamline_wh", help="(default: %(default)s)")
    infra_sql.add_argument("--warehouse-size", default="XSMALL", help="(default: %(default)s)")
    infra_sql.add_argument(
        "--service-user", default="streamline_svc", help="(default: %(default)s)"
    )
    infra_sql.add_argument(
        "--rsa-public-key-file",
        type=Path,
        help="PEM public key of the service user (default: set it later with ALTER USER)",
    )
    infra_sql.add_argument(
        "--setup-only",
        action="store_true",
        help="leave out the feeds' DDL (file formats, stages, raw and mart tables)",
    )

    demo = command("demo", cmd_demo)
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of streaming (20)")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second (200)")
    demo.add_argument("--seed", type=int, default=42, help="generator seed (42)")
    demo.add_argument(
        "--duplicate-rate", type=float, default=0.05, help="share of duplicate events (0.05)"
    )
    demo.add_argument(
        "--malformed-rate",
        type=float,
        default=0.01,
        help="share of malformed lines (0.01): each must end in quarantine, with its reason",
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path(".scratch/demo"), help="scratch folder (.scratch/demo)"
    )

    up = command("up", cmd_up)
    up.add_argument("--rate", type=float, default=200.0, help="events per second (200)")
    up.add_argument("--duration", type=float, help="seconds of streaming (default: until Ctrl-C)")
    up.add_argument("--seed", type=int, help="generator seed (default: random)")
    up.add_argument(
        "--duplicate-rate", type=float, default=0.05, help="share of duplicate events (0.05)"
    )
    up.add_argument(
        "--trigger",
        choices=("poll", "event"),
        help="run every feed in this trigger mode (a copy of the specs; pipelines/ is untouched)",
    )
    up.add_argument("--port", type=int, help="API server and UI port (default: a free one)")
    up.add_argument("--workdir", type=Path, default=UP_WORKDIR, help="scratch folder (.scratch/up)")

    fidelity = command("fidelity", cmd_fidelity)
    fidelity.add_argument("--json", action="store_true", help="print the results as JSON")
    fidelity.add_argument(
        "--workdir", type=Path, default=Path(".scratch/fidelity"),
        help="scratch folder (.scratch/fidelity)",
    )  # fmt: skip

    plan = command("plan", cmd_plan)
    plan.add_argument("feeds", nargs="*", metavar="FEED", help="feeds to plan (default: all)")
    plan.add_argument("--json", action="store_true", help="print the plans as JSON")
    _warehouse_settings_args(plan)
    _connection_args(plan)

    apply = command("apply", cmd_apply)
    apply.add_argument("feeds", nargs="*", metavar="FEED", help="feeds to apply (default: all)")
    _warehouse_settings_args(apply)
    _connection_args(apply)

    status = command("status", cmd_status)
    status.add_argument("feeds", nargs="*", metavar="FEED", help="feeds to report (default: all)")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument(
        "--latest", type=int, default=5, help="latest batches per feed to list (default: 5)"
    )
    _connection_args(status)

    quarantine = command("quarantine", cmd_quarantine)
    quarantine.add_argument("feed", help="feed name")
    quarantine.add_argument("--batch", metavar="BATCH_ID", help="only this batch's rows")
    quarantine.add_argument(
        "--limit", type=_positive, default=100, help="most rows to print (default: 100)"
    )
    quarantine.add_argument("--json", action="store_true", help="print the rows as JSON")
    _connection_args(quarantine)

    reprocess = command("reprocess", cmd_reprocess)
    reprocess.add_argument("feed", help="feed name")
    reprocess.add_argument(
        "batch_ids",
        nargs="*",
        metavar="BATCH_ID",
        help="the batch, e.g. 20260101T000000.000000Z; several run one after another",
    )
    reprocess.add_argument(
        "--from",
        dest="start",
        metavar="BATCH_ID",
        help="every batch from this id on (inclusive); need not be a batch: any UTC time in "
        "batch id form, e.g. 20261130T000000Z",
    )
    reprocess.add_argument(
        "--to",
        dest="end",
        metavar="BATCH_ID",
        help="every batch up to this id (inclusive); with --from, those in between",
    )
    reprocess.add_argument(
        "--dry-run",
        action="store_true",
        help="list the batches it would reprocess, in order, and exit",
    )
    reprocess.add_argument(
        "--keep-going",
        action="store_true",
        help="with several batches: go on past a batch that does not publish (default: stop)",
    )
    reprocess.add_argument(
        "--quarantine",
        action="append",
        default=[],
        metavar="FILE=REASON",
        help="set this file of the batch aside (its key relative to the batch folder) with a "
        "reason, instead of loading it (repeatable)",
    )
    api = reprocess.add_mutually_exclusive_group()
    api.add_argument(
        "--airflow-url",
        default=os.environ.get("STREAMLINE_AIRFLOW_URL"),
        help="the Airflow API server ($STREAMLINE_AIRFLOW_URL); user and password from "
        "$STREAMLINE_AIRFLOW_USERNAME / $STREAMLINE_AIRFLOW_PASSWORD, or a token from "
        "$STREAMLINE_AIRFLOW_TOKEN",
    )
    api.add_argument(
        "--mwaa-environment",
        default=os.environ.get("STREAMLINE_MWAA_ENVIRONMENT"),
        help="an Amazon MWAA environment, called with InvokeRestApi ($STREAMLINE_MWAA_ENVIRONMENT)",
    )
    reprocess.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for each run (1800)"
    )
    reprocess.add_argument(
        "--no-wait",
        action="store_true",
        help="trigger the run and exit without waiting (one batch only)",
    )
    _connection_args(reprocess)

    events = commands.add_parser(
        "events",
        help=inspect.cleandoc(cmd_events.__doc__ or "").splitlines()[0],
        add_help=False,
        prefix_chars="\0",  # every flag goes to the generator, --help included
    )
    events.add_argument("edge_args", nargs=argparse.REMAINDER)
    events.set_defaults(func=cmd_events)
    return parser


def _settings_args(parser: argparse.ArgumentParser) -> None:
    defaults = RenderSettings.from_env()
    parser.add_argument(
        "--lake-url",
        default=defaults.lake_url,
        help="lake bucket URL for the stage (default: $STREAMLINE_LAKE_URL or %(default)s)",
    )
    parser.add_argument(
        "--storage-integration",
        default=defaults.storage_integration,
        help="Snowflake storage integration of the stage",
    )


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        action="store_true",
        help="use a running `streamline up` (its lake, warehouse and API server)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=UP_WORKDIR,
        help="with --local: the `streamline up` --workdir (.scratch/up)",
    )
    parser.add_argument(
        "--bucket",
        help="the lake bucket (default: $AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET, else streamline-lake)",
    )


def _use_local(args: argparse.Namespace) -> dict[str, Any] | None:
    """With --local, take the running `up`'s connections into this process's environment."""
    if not args.local:
        return None
    from streamline.local.stack import StackError, read_stack_file

    try:
        stack = read_stack_file(args.workdir.resolve())
    except StackError as exc:
        raise UsageError(str(exc)) from None
    os.environ.update(stack["env"])
    return stack


def _batch_id_arg(text: str) -> str:
    """A batch id given on the command line; a malformed one is a usage error."""
    from streamline.batches import check_batch_id
    from streamline.errors import BatchError

    try:
        return check_batch_id(text)
    except BatchError as exc:
        raise UsageError(str(exc)) from None


def _reprocess_target(args: argparse.Namespace) -> str:
    """The flags a reprocess hint needs to reach the Airflow this status read from."""
    if not args.local:
        return "--airflow-url URL (or --mwaa-environment NAME)"
    workdir = "" if args.workdir == UP_WORKDIR else f" --workdir {args.workdir}"
    return "--local" + workdir


def _lake_bucket(args: argparse.Namespace) -> str:
    bucket: str = (
        args.bucket or os.environ.get("AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET") or "streamline-lake"
    )
    return bucket


@contextlib.contextmanager
def _quiet_airflow(args: argparse.Namespace) -> Iterator[None]:
    """Around Airflow hooks: its logs kept to warnings (all with --debug) on stderr, so stdout
    holds only the report (and --json stays parseable); its deprecation warnings hidden (shown
    with --debug); a connection that is not defined is a usage error naming what to set."""
    if not args.debug:  # before Airflow is imported: it sets its logging up then
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        if not args.debug:  # Airflow's DeprecatedImportWarning is a FutureWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            yield
        except AirflowNotFoundException as exc:
            raise UsageError(
                f"{exc}: define it (an AIRFLOW_CONN_<CONN_ID> environment variable or Airflow's "
                "secrets backend), or add --local to use a running `streamline up`"
            ) from None


def _hooks() -> tuple[Any, Any]:
    """The connections the DAGs use, by conn id: S3 clients and Snowflake hooks, made once each."""
    from functools import cache

    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from streamline.tasks import s3_client

    @cache
    def s3(conn_id: str) -> Any:
        return s3_client(conn_id)

    @cache
    def warehouse(conn_id: str) -> Any:
        return SnowflakeHook(snowflake_conn_id=conn_id)

    return s3, warehouse


def _positive(text: str) -> int:
    """An argument that is a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _settings(args: argparse.Namespace) -> RenderSettings:
    return RenderSettings(lake_url=args.lake_url, storage_integration=args.storage_integration)


def _validated(
    args: argparse.Namespace, paths: Sequence[Path] | None = None
) -> tuple[Project, ValidationResult]:
    project = find_project(args.project)
    return project, validate_paths(
        project, paths, airflow_version=getattr(args, "airflow_version", None)
    )


def _report_errors(result: ValidationResult) -> int:
    err.print(format_errors(result.errors), markup=False)
    return EXIT_INVALID


def cmd_validate(args: argparse.Namespace) -> int:
    """Check specs against the schema and the cross-feed rules; print every error as file:line:col.

    Exit 0 when every spec is valid, 1 when any is not, 2 on a usage error.
    """
    _, result = _validated(args, args.paths or None)
    if not result.files and not result.errors:
        raise UsageError("no spec files found (looked for *.yaml and *.yml)")
    if result.errors:
        return _report_errors(result)
    count = len(result.files)
    out.print(
        f"{count} spec{'s' if count != 1 else ''} valid: "
        + ", ".join(f.feed for f in result.feeds),
        markup=False,
    )
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    """Print the exact SQL a DAG run of FEED executes (a dry run; nothing is executed).

    Without --batch-id the batch id stays the Airflow expression the run substitutes.
    """
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    feeds = {f.feed: f for f in result.feeds}
    if args.feed not in feeds:
        raise UsageError(f"no feed named '{args.feed}'; feeds: {', '.join(sorted(feeds))}")
    steps = args.step or list(STEPS)
    from streamline.errors import BatchError

    try:
        rendered = render_feed(
            project,
            feeds[args.feed],
            result.feeds,
            batch_id=args.batch_id,
            settings=_settings(args),
            steps=steps,
        )
    except (BatchError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    for index, (step, sql) in enumerate(rendered.items()):
        if len(rendered) > 1:
            out.print(
                ("\n" if index else "") + f"-- ===== {args.feed}/{step}.sql =====", markup=False
            )
        out.print(sql, end="", markup=False)
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a dags folder: the loader file, rendered SQL and a dag-factory config per feed.

    Point Airflow's dags folder at --out (or copy it there); the loader rebuilds the DAGs from
    pipelines/ at parse time, so editing a spec needs no new generate.
    """
    from streamline.generation import generate

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    try:
        written = generate(project, result.feeds, args.out, _settings(args), args.sqs_url_prefix)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out.print(
        f"{len(result.feeds)} feeds -> {args.out}: {len(written.changed)} files written, "
        f"{len(written.unchanged)} unchanged",
        markup=False,
    )
    if args.check:
        from streamline.dagloader import check_dags_folder

        dags, import_errors = check_dags_folder(args.out.resolve())
        for dag_id, tasks in dags.items():
            out.print(f"  DAG {dag_id}: {' -> '.join(tasks)}", markup=False)
        for path, message in import_errors.items():
            err.print(f"import error in {path}:\n{message}", markup=False)
        if import_errors:
            return EXIT_INVALID
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    """Build the Amazon MWAA bundle and upload what changed to the environment's S3 bucket.

    Every spec is validated first, for --airflow-version: an invalid one stops the deploy. The
    bundle (--out) holds dags/ (the loader, pipelines/, templates/, schemas/, .airflowignore),
    requirements.txt (the Airflow constraint line and pins for --airflow-version), plugins.zip
    (the framework wheel) and startup.sh. --check installs it as MWAA would and runs each DAG
    once. Only files whose content changed are uploaded; files under dags/ that a deploy uploaded
    and the bundle no longer has are listed, and removed with --delete (others are never
    touched). When the wheel changes while DAGs already run, dags/ is held back: update the
    environment to the printed object versions of requirements.txt and plugins.zip, then deploy
    again. --dry-run lists what would be added, changed, held, deleted or left alone.
    --migrate first applies the specs' warehouse changes, as `streamline apply` (with --dry-run:
    prints the plan); a refused change stops the deploy before anything is applied or uploaded.
    """
    from streamline.deploy import DeployOptions, run_deploy

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    if args.migrate:
        if args.build_only:
            raise UsageError("--migrate changes the warehouse; --build-only changes nothing")
        # deploy's --bucket is the environment's, not the lake's
        runner_for = _runner_for(args.snowflake_conn_id)
        planned = _plan(
            args, project, result.feeds, runner_for, settings=_warehouse_settings(args, None)
        )
        if refused := _refusals(project, planned):
            err.print(format_errors(refused), markup=False)
            err.print("nothing was applied and nothing uploaded", markup=False)
            return EXIT_INVALID
        if args.dry_run:
            for feed, _, plan in planned:
                _print_plan(feed, plan)
        elif (applied := _apply(args, planned, runner_for)) != EXIT_OK:
            return applied
    options = DeployOptions(
        bucket=args.bucket,
        prefix=args.prefix,
        out=args.out,
        airflow_version=args.airflow_version,
        python_version=args.python_version,
        sqs_url_prefix=args.sqs_url_prefix,
        endpoint_url=args.endpoint_url,
        dry_run=args.dry_run,
        delete=args.delete,
        build_only=args.build_only,
        check=args.check,
        mwaa_environment=args.mwaa_environment,
        environment_updated=args.environment_updated,
    )
    return run_deploy(project, result.feeds, options, out)


def cmd_infra_vars(args: argparse.Namespace) -> int:
    """Write infra/feeds.auto.tfvars.json, the Terraform feed variables, from pipelines/.

    Terraform creates each feed's Firehose stream, queues and permissions with for_each over this
    file, so a new spec needs no Terraform edit: run this, review the diff, commit, apply.
    """
    from streamline.infra import render_tfvars, tfvars_path
    from streamline.loading import display_path

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    path: Path = args.out or tfvars_path(project)
    shown = display_path(path)
    text = render_tfvars(result.feeds, project.root)
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.check:
        if current != text:
            err.print(
                f"{shown} is stale for {len(result.feeds)} feeds: run `streamline infra-vars`",
                markup=False,
            )
            return EXIT_INVALID
        out.print(f"{shown}: up to date ({len(result.feeds)} feeds)", markup=False)
        return EXIT_OK
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    state = "written" if current != text else "unchanged"
    out.print(f"{len(result.feeds)} feeds -> {shown}: {state}", markup=False)
    return EXIT_OK


def cmd_infra_sql(args: argparse.Namespace) -> int:
    """Print the Snowflake setup SQL: roles, warehouse, databases, schemas, a storage integration
    per feed, grants and service user for the feeds in pipelines/, then every feed's DDL.

    Run it as a user who may use ACCOUNTADMIN, SECURITYADMIN and SYSADMIN; every statement is
    idempotent. Nothing is executed here.
    """
    from streamline.infra import (
        SnowflakeSetup,
        parse_role_arns,
        public_key_body,
        render_snowflake_setup,
    )

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    key = None
    if args.rsa_public_key_file:
        try:
            key = public_key_body(args.rsa_public_key_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read {args.rsa_public_key_file}: {exc}") from exc
    setup = SnowflakeSetup(
        lake_bucket=args.lake_bucket,
        storage_role_arns=parse_role_arns(args.storage_role_arns),
        external_id=args.external_id,
        storage_integration=args.storage_integration,
        admin_role=args.admin_role,
        loader_role=args.loader_role,
        warehouse=args.warehouse,
        warehouse_size=args.warehouse_size.upper(),
        service_user=args.service_user,
        rsa_public_key=key,
    )
    sql = render_snowflake_setup(project, result.feeds, setup, with_ddl=not args.setup_only)
    out.print(sql, end="", markup=False)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole pipeline on this machine: moto and fakesnow servers, Firehose, real Airflow.

    Streams events for a while, runs every feed's DAG per batch, prints rows, rejected rows and
    latency per feed and batch, re-runs one batch to show it adds zero rows, and stops everything.
    """
    from streamline.local.demo import run_demo
    from streamline.local.runtime import RuntimeOptions

    if args.rate <= 0 or args.duration <= 0:
        raise UsageError("--rate and --duration must be positive")
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    options = RuntimeOptions(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        malformed_rate=args.malformed_rate,
        workdir=args.workdir,
    )
    return run_demo(project, result.feeds, options, out)


def cmd_fidelity(args: argparse.Namespace) -> int:
    """Run the fidelity probes on the local warehouse: how many Snowflake behaviours the
    pipeline depends on it shows as Snowflake documents them (streamline.local.fidelity).

    Starts moto and the warehouse in --workdir, runs every probe, stops both. Exit 0 when every
    probe passes but the known gaps, 1 otherwise.
    """
    from streamline.local.fidelity import run_probes
    from streamline.local.stack import embedded_stack
    from streamline.reporting import print_json, print_probes

    with embedded_stack(args.workdir) as stack:
        s3 = stack.boto3_client("s3")
        bucket = "streamline-fidelity"
        s3.create_bucket(Bucket=bucket)
        results = run_probes(
            stack.connect,
            lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
            bucket,
        )
    if args.json:
        print_json([{"probe": r.probe.name, "passed": r.passed, "got": r.got, "gap": r.probe.gap,
                     "doc": r.probe.doc} for r in results], out)  # fmt: skip
    else:
        if not out.is_terminal:
            out.width = max(out.width, 160)
        print_probes(results, out)
    unexpected = [r for r in results if r.passed == bool(r.probe.gap)]
    return EXIT_INVALID if unexpected else EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    """Run the pipeline locally until Ctrl-C: the embedded stack and Airflow's own components.

    Starts moto and the warehouse, then Airflow's api-server, scheduler, dag-processor and
    triggerer on 127.0.0.1, streams events through Firehose and prints every finished batch with
    its end-to-end latency. Ctrl-C (or SIGTERM) stops everything; logs stay in --workdir.
    """
    from streamline.local.up import LocalRuntimeError, RuntimeOptions, check_workdir, run_up

    if args.rate <= 0:
        raise UsageError("--rate must be positive")
    try:
        check_workdir(args.workdir.resolve())
    except LocalRuntimeError as exc:
        raise UsageError(str(exc)) from exc
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    options = RuntimeOptions(
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        trigger=args.trigger,
        workdir=args.workdir,
        port=args.port,
    )
    return run_up(project, result.feeds, options, out)


def cmd_plan(args: argparse.Namespace) -> int:
    """Show the DDL that would bring the warehouse to the specs, per feed (a dry run of apply).

    Reads each feed's tables (DESCRIBE TABLE), file format and stage (SHOW) and its schema
    version through the connection its DAG uses (or, with --local, a running `streamline up`'s)
    and compares them with the DDL its spec renders. Safe changes are listed with their DDL: new
    tables and objects, a nullable column added, a VARCHAR or NUMBER widened, NOT NULL dropped,
    file format or stage options. Others are refused, as spec errors with the manual path: a
    column dropped or renamed, a type narrowed or changed, NOT NULL added, the key changed, a
    table moved. Exit 0 when every feed is up to date, 2 when changes are pending, 1 when one is
    refused.
    """
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    planned = _plan(args, project, result.feeds, _runner_for(args.snowflake_conn_id), args.feeds)
    if args.json:
        from streamline.reporting import print_json
        from streamline.schema_versions import plan_json

        print_json([plan_json(plan) for _, _, plan in planned], out)
    else:
        for feed, _, plan in planned:
            _print_plan(feed, plan)
    refused = _refusals(project, planned)
    if refused:
        err.print(format_errors(refused), markup=False)
        return EXIT_INVALID
    pending = sum(not plan.up_to_date for _, _, plan in planned)
    if not args.json:
        feeds = f"{len(planned)} feed{'s' * (len(planned) != 1)}"
        todo = f"{pending} to apply (`streamline apply`)" if pending else "up to date"
        out.print(f"{feeds}: {todo}", markup=False)
    return EXIT_PENDING if pending else EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    """Make the changes `streamline plan` shows, and record each feed's new schema version.

    Nothing is applied when any selected feed has a refused change (exit 1). Each statement is
    safe to run again, so an apply that stopped half way is finished by running it again. A DAG
    run checks, before it claims files, that the warehouse holds the schema version of the spec
    it was made from: deploy the edited specs too (`streamline deploy --migrate` does both).
    Exit 0 when every feed is up to date afterwards.
    """
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    runner_for = _runner_for(args.snowflake_conn_id)  # one connection each, plan and apply
    planned = _plan(args, project, result.feeds, runner_for, args.feeds)
    if refused := _refusals(project, planned):
        err.print(format_errors(refused), markup=False)
        err.print("nothing was applied", markup=False)
        return EXIT_INVALID
    return _apply(args, planned, runner_for)


def _plan(
    args: argparse.Namespace,
    project: Project,
    feeds: Sequence[Any],
    runner_for: Any,
    names: Sequence[str] = (),
    settings: RenderSettings | None = None,
) -> list[Any]:
    """The plans of the named feeds (all by default) against the warehouse: the --local stack's,
    or the one the DAGs' connections name. settings: the stage's lake URL and integration
    (default: _warehouse_settings, with --bucket as the lake's)."""
    from streamline.schema_versions import plan_feeds

    if getattr(args, "local", False):
        if args.lake_url:
            raise UsageError("--local plans against the running stack's lake: leave out --lake-url")
        _use_local(args)
        settings = RenderSettings(lake_url=f"s3://{_lake_bucket(args)}")  # the stack's lake
    elif settings is None:
        settings = _warehouse_settings(args, args.bucket)
    with _quiet_airflow(args):
        return plan_feeds(runner_for, project, feeds, _select(feeds, names), settings)


def _apply(args: argparse.Namespace, planned: list[Any], runner_for: Any) -> int:
    from streamline.schema_versions import ApplyError, apply_feeds

    todo = [item for item in planned if not item[2].up_to_date]
    with _quiet_airflow(args):
        try:
            versions = apply_feeds(runner_for, todo)
        except ApplyError as exc:
            err.print(f"error: {exc}", markup=False)
            return EXIT_INVALID
    for feed, _, plan in planned:
        if feed.feed in versions:
            ran = len(plan.statements)
            out.print(
                f"{feed.feed}: schema version {versions[feed.feed]} ({plan.fingerprint}), "
                f"{ran} statement{'s' * (ran != 1)} run",
                markup=False,
            )
        else:
            out.print(f"{feed.feed}: up to date", markup=False)
    return EXIT_OK


def _runner_for(override: str | None = None) -> Any:
    """Runner per Snowflake connection id (a feed's DAG connection, or override for every
    feed): one open connection each, opened at first use and kept for the command (a plan and
    the apply after it share it)."""
    from functools import cache

    from streamline.ledger import ConnectionRunner

    @cache
    def connect(conn_id: str) -> Any:  # Airflow is imported here, inside _quiet_airflow
        return ConnectionRunner(_hooks()[1](conn_id).get_conn())

    def runner(conn_id: str) -> Any:
        return connect(override or conn_id)

    return runner


def _print_plan(feed: Any, plan: Any) -> None:
    live = plan.recorded.describe() if plan.recorded else "none (never applied)"
    if plan.up_to_date:
        out.print(f"{feed.feed}: up to date at schema version {live}", markup=False)
        return
    out.print(
        f"{feed.feed} ({feed.spec_file}): schema version {live} -> {plan.next_version} "
        f"({plan.fingerprint})",
        markup=False,
    )
    for change in plan.changes:
        mark = "safe   " if change.safe else "REFUSED"
        out.print(f"  {mark} {change.kind}: {change.detail}", markup=False)
        if change.ddl:
            out.print(textwrap.indent(change.ddl, "      "), markup=False)
    if not plan.changes:
        out.print("  no DDL: the new version is recorded", markup=False)


def _refusals(project: Project, planned: list[Any]) -> list[Any]:
    """Each refused change as a spec error at the spec's line and column, with its hint."""
    from streamline.errors import SpecError, json_path
    from streamline.loading import load_spec

    errors = []
    for feed, _, plan in planned:
        if not plan.refused:
            continue
        path = Path(feed.spec_file)
        loaded = load_spec(path if path.exists() else project.root / path)
        for change in plan.refused:
            line, col = (1, 1) if isinstance(loaded, SpecError) else loaded.locate(change.path)
            where = (
                f" in {change.table}" if change.column and change.table not in change.detail else ""
            )
            errors.append(SpecError(
                feed.spec_file, line, col, json_path(change.path),
                f"{change.kind} refused{where}: {change.detail}", change.hint,
            ))  # fmt: skip
    return sorted(errors)


def cmd_status(args: argparse.Namespace) -> int:
    """Report every feed's batches: latest, failed and stuck ones, and the landing backlog.

    Reads the batch ledger and the lake through the connections the DAGs use (Airflow
    connections: AIRFLOW_CONN_* or the configured secrets backend), or, with --local, those of a
    running `streamline up`. Exit 0 when every feed is healthy; 1 when a batch failed or is stuck
    (unfinished after batch.stuck_after_seconds) or data waited in landing/ longer than
    batch.landing_stale_after_seconds, or the warehouse does not hold the schema version of a
    feed's spec (its DAG runs claim nothing until `streamline apply`), so it can drive an alert.
    """
    from streamline.reporting import print_json, print_status
    from streamline.schema_versions import spec_fingerprint
    from streamline.status import collect_status

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    feeds = _select(result.feeds, args.feeds)
    _use_local(args)
    with _quiet_airflow(args):
        s3, warehouse = _hooks()
        report = collect_status(
            feeds,
            lambda feed: s3(feed.dag.aws_conn_id),
            lambda feed: warehouse(feed.dag.snowflake_conn_id),
            _lake_bucket(args),
            latest=args.latest,
            target=_reprocess_target(args),
            fingerprints={f.feed: spec_fingerprint(project, f, result.feeds) for f in feeds},
        )
    if args.json:
        print_json(report.to_json(), out)
    else:
        if not out.is_terminal:
            out.width = max(out.width, 120)  # a batch row, whole, in a pipe or a log
        print_status(report, out)
    return EXIT_OK if report.healthy else EXIT_INVALID


def cmd_quarantine(args: argparse.Namespace) -> int:
    """Print a feed's quarantined rows: batch, file, row, column, why, and the row as read.

    Reads the feed's quarantine table through the DAGs' warehouse connection (or, with --local,
    a running `streamline up`'s). Exit 0 when there are none, 1 when rows are printed.
    """
    from streamline.ledger import count_quarantine, read_quarantine
    from streamline.reporting import print_json, print_quarantine

    _, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    [feed] = _select(result.feeds, [args.feed])
    batch_id = _batch_id_arg(args.batch) if args.batch else None
    _use_local(args)
    with _quiet_airflow(args):
        _, warehouse = _hooks()  # a hook opens and closes a connection per query
        hook = warehouse(feed.dag.snowflake_conn_id)
        rows = read_quarantine(hook, feed.layout.quarantine, batch_id, args.limit)
        total = len(rows)
        if total == args.limit:
            total = count_quarantine(hook, feed.layout.quarantine, batch_id)
    if args.json:
        print_json([row.to_json() for row in rows], out)
    else:
        if not out.is_terminal:
            out.width = max(out.width, 160)
        print_quarantine(feed.feed, rows, out, total)
    return EXIT_INVALID if rows else EXIT_OK


def cmd_reprocess(args: argparse.Namespace) -> int:
    """Run a batch through its feed's DAG again (after a fix) and report the outcome.

    Triggers a DAG run with conf {"batch_id": BATCH_ID} through Airflow's REST API: a running
    `streamline up` (--local), an API server (--airflow-url) or an MWAA environment
    (--mwaa-environment); then waits for it and reads the batch's row in the ledger. The run
    takes the batch over from the run that claimed it, finishes its claim, and loads, transforms,
    checks and publishes it; re-running a published batch adds no rows. Exit 0 when the batch is
    published, 1 otherwise.

    Several BATCH_IDs, or a range (--from and/or --to, inclusive), backfill after a spec change:
    the batches the lake holds (published in processed/, or open in processing/) are reprocessed
    in batch order, one DAG run at a time (when the DAG allows one active run, the next batch's
    run waits queued behind the running one), with a line per batch and a table at the end. An
    open batch held by a queued or running DAG run is refused by id and left out of a range. The
    first batch that does not publish stops the rest unless --keep-going; exit 0 only when every
    batch is published. --dry-run lists the batches and exits. --quarantine and --no-wait take
    one batch only.
    """
    from streamline.airflowapi import (
        ApiError,
        run_state,
        trigger_run,
        wait_for_run,
    )

    _, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    [feed] = _select(result.feeds, [args.feed])
    if len(args.batch_ids) != 1 or args.start or args.end or args.dry_run:
        return _reprocess_batches(args, feed)
    batch_id = _batch_id_arg(args.batch_ids[0])
    quarantine: dict[str, str] = {}
    for item in args.quarantine:
        name, sep, reason = item.partition("=")
        if not sep or not name or not reason.strip():
            raise UsageError(f"--quarantine takes FILE=REASON, got {item!r}")
        quarantine[name] = reason.strip()
    if not (args.local or args.mwaa_environment or args.airflow_url):
        raise UsageError("say where Airflow runs: --local, --airflow-url or --mwaa-environment")
    stack = _use_local(args)
    with _quiet_airflow(args):
        owner = _check_reprocess(args, feed, batch_id, quarantine)
    api = _airflow_api(args, stack)
    conf: dict[str, Any] = {"batch_id": batch_id}
    if quarantine:
        conf["quarantine"] = quarantine
    dag_id = feed.dag.dag_id
    busy = run_state(api, dag_id, owner) if owner else None
    if busy in ("queued", "running"):
        raise UsageError(
            f"batch {batch_id} is held by DAG run {owner}, which is {busy}: a reprocess now "
            "would race it; wait for it to end (or mark it failed in Airflow), then reprocess"
        )
    try:
        run_id = trigger_run(api, dag_id, conf)
        out.print(f"triggered DAG run {run_id} of {dag_id} for batch {batch_id}", markup=False)
        if args.no_wait:
            return EXIT_OK
        outcome = wait_for_run(
            api,
            dag_id,
            run_id,
            timeout=args.timeout,
            on_state=lambda state: out.print(f"  run {run_id}: {state}", markup=False),
        )
    except ApiError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_INVALID
    with _quiet_airflow(args):
        row = _ledger_row(feed, batch_id)
    status_command = f"streamline status {feed.feed}{' --local' * args.local}"
    if row is not None and row.run_id != run_id:
        err.print(
            f"batch {batch_id}: the ledger has no record of run {run_id} (the run stopped before "
            f"taking the batch over; the batch's last run, {row.run_id}, left it {row.status}); "
            "the run's task logs in Airflow say why",
            markup=False,
        )
        published = False
    elif row is not None:
        out.print(_batch_summary(row), markup=False)
        published = row.finished
    else:  # the ledger could not be read from here: the run's state decides
        published = True
    if outcome.state == "success" and published:
        return EXIT_OK
    err.print(
        f"batch {batch_id} is not published: DAG run {run_id} is {outcome.state} after "
        f"{outcome.seconds:.0f} s; `{status_command}` shows the batch",
        markup=False,
    )
    return EXIT_INVALID


def _airflow_api(args: argparse.Namespace, stack: dict[str, Any] | None) -> Any:
    """The Airflow REST API that reprocess calls: the local stack's, MWAA's or a server's."""
    from streamline.airflowapi import MwaaApi, RestApi

    if stack is not None:
        if not stack.get("api_url"):
            raise UsageError(f"the local stack in {args.workdir} has no Airflow API server")
        return RestApi(stack["api_url"])
    if args.mwaa_environment:
        return MwaaApi(args.mwaa_environment)
    return RestApi(
        args.airflow_url,
        username=os.environ.get("STREAMLINE_AIRFLOW_USERNAME"),
        password=os.environ.get("STREAMLINE_AIRFLOW_PASSWORD"),
        token=os.environ.get("STREAMLINE_AIRFLOW_TOKEN"),
    )


def _reprocess_batches(args: argparse.Namespace, feed: Any) -> int:
    """`reprocess` of several batches or a range, or --dry-run (see streamline.backfill)."""
    from streamline.airflowapi import run_state
    from streamline.backfill import AirflowRuns, check_request, run_batches, select_batches
    from streamline.batches import batch_time
    from streamline.errors import BatchError
    from streamline.lake import list_batches, open_batch_owner
    from streamline.reporting import print_backfill, print_selection

    ids = [_batch_id_arg(b) for b in args.batch_ids]
    start = _batch_id_arg(args.start) if args.start else None
    end = _batch_id_arg(args.end) if args.end else None
    check_request(ids, start, end)
    several = "a range (--from/--to)" if start or end else "several batches" if ids[1:] else ""
    if args.quarantine and several:
        raise UsageError(
            f"--quarantine sets files of one batch aside: give one BATCH_ID, not {several} "
            "(reprocess the others without it)"
        )
    if args.quarantine:
        raise UsageError("--dry-run takes no --quarantine: it lists batches and exits")
    if args.no_wait and several and not args.dry_run:
        raise UsageError(
            f"--no-wait triggers one batch's run; {several} run one after another, each waited "
            "for: leave --no-wait out"
        )
    if not (args.local or args.mwaa_environment or args.airflow_url):
        raise UsageError("say where Airflow runs: --local, --airflow-url or --mwaa-environment")
    stack = _use_local(args)
    api = _airflow_api(args, stack)
    dag_id, layout, bucket = feed.dag.dag_id, feed.layout.lake, _lake_bucket(args)
    ordered = sorted(ids, key=batch_time)
    low, high = (ordered[0], ordered[-1]) if ordered else (start, end)
    with _quiet_airflow(args):
        s3 = _hooks()[0](feed.dag.aws_conn_id)
        try:
            held = list_batches(s3, bucket, layout, low, high)
        except Exception as exc:
            raise BatchError(
                f"could not list the batches of {feed.feed} in s3://{bucket}: {exc}"
            ) from exc
        selection = select_batches(
            feed.feed, held, batch_ids=ids, start=start, end=end,
            run_state=lambda run_id: run_state(api, dag_id, run_id), where=f"s3://{bucket}",
        )  # fmt: skip
    if not out.is_terminal:
        out.width = max(out.width, 120)  # a batch's row, whole, in a pipe or a log
    if args.dry_run:
        print_selection(selection, out)
        return EXIT_OK
    batches = [b.batch_id for b in selection.batches]
    queue_next = feed.dag.max_active_runs == 1
    out.print(
        f"reprocessing {len(batches)} batches of {feed.feed}, one DAG run at a time"
        + (" (the next one queued behind it)" if queue_next else "")
        + f": {batches[0]} to {batches[-1]}",
        markup=False,
    )
    for batch, state in selection.left_out:
        out.print(f"left out: {batch.batch_id}, held by DAG run {batch.run_id}, which is {state}",
                  markup=False)  # fmt: skip

    def owner_state(batch_id: str) -> tuple[str | None, str | None]:
        try:
            with _quiet_airflow(args):
                owner = open_batch_owner(s3, bucket, layout, batch_id)
        except Exception as exc:  # the DAG run checks the batch again
            err.print(f"could not read the lake from here ({exc}); the DAG run checks the batch",
                      markup=False)  # fmt: skip
            return "", None
        return owner, run_state(api, dag_id, owner) if owner else None

    def read_row(batch_id: str) -> Any:
        with _quiet_airflow(args):
            return _ledger_row(feed, batch_id)

    position = {batch_id: f"[{n}/{len(batches)}]" for n, batch_id in enumerate(batches, 1)}
    waiting: list[str] = []  # runs triggered and not finished

    def on_triggered(batch_id: str, run_id: str) -> None:
        waiting.append(run_id)
        out.print(f"{position[batch_id]} triggered DAG run {run_id} of {dag_id} for batch "
                  f"{batch_id}", markup=False)  # fmt: skip

    def on_done(run: Any) -> None:
        if run.run_id in waiting:
            waiting.remove(run.run_id)
        if run.row is not None:
            line = _batch_summary(run.row)
        else:
            line = f"batch {run.batch_id}: {run.outcome}" + (f": {run.detail}" * bool(run.detail))
        out.print(f"{position[run.batch_id]} {line}", markup=False)

    runs = AirflowRuns(
        api, dag_id, owner_state, read_row, timeout=args.timeout, on_triggered=on_triggered,
        on_state=lambda run_id, state: out.print(f"  run {run_id}: {state}", markup=False),
        on_done=on_done,
    )  # fmt: skip
    try:
        result = run_batches(feed.feed, dag_id, batches, runs, keep_going=args.keep_going,
                             queue_next=queue_next)  # fmt: skip
    except KeyboardInterrupt:
        going = f": DAG runs {', '.join(waiting)} go on in Airflow" if waiting else ""
        err.print(f"interrupted{going}; `{_status_command(args, feed)}` shows the batches",
                  markup=False)  # fmt: skip
        raise
    print_backfill(result, out)
    if result.published:
        return EXIT_OK
    err.print(f"`{_status_command(args, feed)}` shows the batches", markup=False)
    return EXIT_INVALID


def _status_command(args: argparse.Namespace, feed: Any) -> str:
    return f"streamline status {feed.feed}{' --local' * args.local}"


def _batch_summary(row: Any) -> str:
    """One line on a batch's ledger row, e.g. `batch B: published, 10 rows loaded from 2 files`."""
    parts = [f"batch {row.batch_id}: {row.status}"]
    if row.rows_loaded is not None:
        files = f" from {row.files_loaded} files" if row.files_loaded is not None else ""
        parts.append(f"{row.rows_loaded} rows loaded{files}")
    if row.files_skipped:
        parts.append(f"{row.files_skipped} files skipped or set aside")
    if row.status == "failed":
        parts.append(f"failed at {row.failed_step or 'an unknown step'}: {row.error}")
    return ", ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:])


def _check_reprocess(
    args: argparse.Namespace, feed: Any, batch_id: str, quarantine: dict[str, str]
) -> str | None:
    """Refuse, before any DAG run, a batch the lake does not hold and --quarantine names that
    are not files of the batch; the DAG run holding the batch when it is open, else None.
    When the lake cannot be read from here, the DAG run checks."""
    from streamline.lake import batch_manifest, no_batch, open_batch_owner

    s3, _ = _hooks()
    bucket = _lake_bucket(args)
    layout = feed.layout.lake
    try:
        manifest = batch_manifest(s3(feed.dag.aws_conn_id), bucket, layout, batch_id)
    except Exception as exc:  # no credentials here, say: the DAG's detect and claim check it
        err.print(f"could not read the lake from here ({exc}); the DAG run checks the batch")
        return None
    if manifest is None:
        raise UsageError(
            f"{no_batch(feed.feed, bucket, layout, batch_id)}; "
            f"`streamline status {feed.feed}{' --local' * args.local}` lists its batches"
        )
    if unknown := manifest.unknown_files(quarantine):
        raise UsageError(
            f"--quarantine {unknown[0]!r} is not a file of batch {batch_id}; its files: "
            + manifest.file_list()
        )
    return open_batch_owner(s3(feed.dag.aws_conn_id), bucket, layout, batch_id) or None


def _select(feeds: Sequence[Any], names: Sequence[str]) -> list[Any]:
    by_name = {f.feed: f for f in feeds}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(f"no feed named '{unknown[0]}'; feeds: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names] if names else list(feeds)


def _ledger_row(feed: Any, batch_id: str) -> Any:
    """The batch's ledger row, when the warehouse can be reached from here; else None."""
    from streamline.ledger import read_batch

    _, warehouse = _hooks()
    try:
        return read_batch(
            warehouse(feed.dag.snowflake_conn_id), feed.layout.ledger, feed.feed, batch_id
        )
    except Exception as exc:  # reported, not fatal: the run's state has been printed
        err.print(f"could not read the batch ledger from here: {exc}", markup=False)
        return None


def cmd_events(args: argparse.Namespace) -> int:
    """Stream synthetic customers and orders CSV events (the edge generator; --help for flags)."""
    from streamline_edge.cli import main as edge_main

    return int(edge_main(args.edge_args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamline` console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_USAGE
        code: int = args.func(args)
        return code
    except UsageError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except StreamlineError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            markup=False,
        )
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
