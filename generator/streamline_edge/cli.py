"""The `python -m streamline_edge` command line: flags -> GeneratorConfig -> run() -> summary.

`add_arguments` and `config_from_args` are public so the `streamline` CLI can offer the same flags.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from streamline_edge import __version__
from streamline_edge.errors import ConfigError, EdgeError
from streamline_edge.runner import TARGETS, GeneratorConfig, run
from streamline_edge.stats import GeneratorStats

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
examples:
  python -m streamline_edge --target local --out ./lake --count 100000 --seed 42
  python -m streamline_edge --target firehose --rate 500 --duration 60 \\
      --stream-template streamline-{feed} --region eu-west-1
  python -m streamline_edge --target s3 --bucket my-lake --mbps 1 --duration 300 \\
      --endpoint-url http://127.0.0.1:5000 --region us-east-1 --json
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the generator's flags to `parser` (its dest names are GeneratorConfig's fields)."""
    what = parser.add_argument_group("what to emit")
    what.add_argument(
        "--feeds",
        default="customers,orders",
        help="feeds and optional weights, e.g. customers,orders or customers:1,orders:5 "
        "(default: customers,orders = 1 customer event per 5 order events)",
    )
    what.add_argument("--seed", type=int, help="random seed (default: random, shown in the stats)")
    what.add_argument(
        "--bootstrap-customers",
        type=_count,
        default=10,
        metavar="N",
        help="customer events emitted before anything else (default: 10)",
    )
    what.add_argument(
        "--duplicate-rate",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of lines that re-send an earlier line unchanged (default: 0)",
    )
    what.add_argument(
        "--malformed-rate",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of lines with a wrong column count or non-numeric amount (default: 0)",
    )
    how = parser.add_argument_group("how fast and how long")
    pace = how.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive_float, metavar="N", help="lines per second")
    pace.add_argument(
        "--mbps", type=_positive_float, metavar="X", help="MB (10^6 bytes) per second"
    )
    how.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    how.add_argument("--count", type=_count, metavar="N", help="stop after N lines")
    how.add_argument(
        "--progress",
        dest="progress_seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="print a progress line to stderr every S seconds (default: off)",
    )
    where = parser.add_argument_group("where to send it")
    where.add_argument("--target", choices=TARGETS, required=True, help="destination kind")
    where.add_argument(
        "--stream-template",
        default="streamline-{feed}",
        metavar="T",
        help="firehose: delivery stream per feed (default: streamline-{feed})",
    )
    where.add_argument(
        "--pack-bytes",
        type=_count,
        default=0,
        metavar="N",
        help="firehose: pack whole lines into records of up to N bytes (default: 0 = a record "
        "per line; 5000 matches Firehose's 5 KB billing step)",
    )
    where.add_argument("--bucket", help="s3: bucket to write landing/<prefix>/... into")
    where.add_argument(
        "--out", metavar="DIR", help="local: folder to write landing/<prefix>/... into"
    )
    where.add_argument(
        "--prefix-template",
        default="{feed}",
        metavar="T",
        help="s3/local: lake prefix per feed (default: {feed})",
    )
    where.add_argument(
        "--flush-seconds",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="ship a feed's buffer at most S seconds after its first line (default: 1)",
    )
    where.add_argument(
        "--flush-bytes",
        type=int,
        default=8 * 1024 * 1024,
        metavar="N",
        help="s3/local: write an object once a feed's buffer holds N bytes (default: 8 MiB)",
    )
    where.add_argument(
        "--max-retries",
        type=_count,
        default=8,
        metavar="N",
        help="retries of failed records or calls, with capped exponential backoff (default: 8)",
    )
    where.add_argument(
        "--endpoint-url", help="AWS endpoint, e.g. moto's (default: boto3's, or AWS_ENDPOINT_URL)"
    )
    where.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    where.add_argument(
        "--run-id", help="s3/local: id in object names (default: random 8 hex digits)"
    )


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    """The GeneratorConfig named by parsed flags."""
    names = GeneratorConfig.__dataclass_fields__
    return GeneratorConfig(**{name: value for name, value in vars(args).items() if name in names})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m streamline_edge`."""
    parser = _Parser(
        prog="python -m streamline_edge",
        description="Emit synthetic customers and orders CSV events to Firehose, S3 or a folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"streamline-edge {__version__}")
    parser.add_argument("--json", action="store_true", help="print the final stats as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    add_arguments(parser)
    return parser


def _report_progress(stats: GeneratorStats) -> None:
    print(
        f"{stats.elapsed_seconds:8.1f} s  {stats.lines:>12,} lines  {stats.bytes:>15,} bytes  "
        f"{stats.lines_per_second:>10,.1f} lines/s  {stats.mb_per_second:.3f} MB/s",
        file=sys.stderr,
        flush=True,
    )


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (systemd, docker stop) into KeyboardInterrupt, which ends a run cleanly."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run, print the stats; exit 0 when done, 1 on failed delivery, 2 on usage."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        config = config_from_args(args)
        config.check()
        _stop_on_sigterm()
        stats = run(config, on_progress=_report_progress)
    except ConfigError as error:
        if debug:
            raise
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except EdgeError as error:
        if debug:
            raise
        partial = getattr(error, "stats", None)
        if isinstance(partial, GeneratorStats):
            print(partial.to_json() if args.json else partial.format_text())
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(stats.to_json() if args.json else stats.format_text())
    return EXIT_OK
