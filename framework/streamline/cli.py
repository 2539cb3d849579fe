"""The `streamline` command line: validate, render and generate feed specs."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich_argparse import RawDescriptionRichHelpFormatter

from streamline import __version__
from streamline.errors import StreamlineError, UsageError, format_errors
from streamline.project import Project, find_project
from streamline.rendering import STEPS, RenderSettings, render_feed
from streamline.validation import ValidationResult, validate_paths

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


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

    render = command("render", cmd_render)
    render.add_argument("feed", help="feed name")
    render.add_argument("--batch-id", help="substitute this batch id (YYYYMMDDTHHMMSSZ)")
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
    generate.add_argument("--sqs-url-prefix", help="queue URL prefix for event-triggered feeds")
    generate.add_argument(
        "--check",
        action="store_true",
        help="then load the folder in Airflow's DagBag and fail on import errors",
    )
    _settings_args(generate)

    demo = command("demo", cmd_demo)
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of streaming (20)")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second (200)")
    demo.add_argument("--seed", type=int, default=42, help="generator seed (42)")
    demo.add_argument(
        "--duplicate-rate", type=float, default=0.05, help="share of duplicate events (0.05)"
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
    up.add_argument(
        "--workdir", type=Path, default=Path(".scratch/up"), help="scratch folder (.scratch/up)"
    )

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


def _settings(args: argparse.Namespace) -> RenderSettings:
    return RenderSettings(lake_url=args.lake_url, storage_integration=args.storage_integration)


def _validated(
    args: argparse.Namespace, paths: Sequence[Path] | None = None
) -> tuple[Project, ValidationResult]:
    project = find_project(args.project)
    return project, validate_paths(project, paths)


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


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole pipeline on this machine: moto and fakesnow servers, Firehose, real Airflow.

    Streams events for a while, runs every feed's DAG per batch, prints rows, rejected rows and
    latency per feed and batch, re-runs one batch to show it adds zero rows, and stops everything.
    """
    from streamline.local.demo import DemoOptions, run_demo

    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    options = DemoOptions(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        workdir=args.workdir,
    )
    return run_demo(project, result.feeds, options, out)


def cmd_up(args: argparse.Namespace) -> int:
    """Run the pipeline locally until Ctrl-C: the embedded stack and Airflow's own components.

    Starts moto and the warehouse, then Airflow's api-server, scheduler, dag-processor and
    triggerer on 127.0.0.1, streams events through Firehose and prints every finished batch with
    its end-to-end latency. Ctrl-C (or SIGTERM) stops everything; logs stay in --workdir.
    """
    from streamline.local.up import UpOptions, run_up

    if args.rate <= 0:
        raise UsageError("--rate must be positive")
    project, result = _validated(args)
    if result.errors:
        return _report_errors(result)
    options = UpOptions(
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        trigger=args.trigger,
        workdir=args.workdir,
        port=args.port,
    )
    return run_up(project, result.feeds, options, out)


def cmd_events(args: argparse.Namespace) -> int:
    """Stream synthetic customers and orders CSV events (the edge generator; --help for flags)."""
    from streamline_edge.cli import main as edge_main

    return edge_main(args.edge_args)


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
