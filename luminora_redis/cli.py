"""The ``luminora-redis`` console script: ``demo``, ``listen`` and ``bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from luminora_redis import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="luminora-redis",
        description="Redis-native sessions with real expiry and persistent user memory.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="a live tour; starts a private redis-server unless --url is given")
    demo.add_argument("--url", default=None,
                      help="use this Redis instead of a private one (keys under 'demo:')")
    demo.set_defaults(run=lambda args: _demo(args.url))
    from luminora_redis.listen_cli import add_listen_command

    add_listen_command(commands)
    bench = commands.add_parser(
        "bench", add_help=False, help="compare chat turns with the floor and peer libraries; "
        "archive lag (luminora-redis bench --help)")
    bench.set_defaults(run=lambda args: _bench([]))
    return parser


def _bench(rest: Sequence[str]) -> int:
    from luminora_redis.bench.cli import bench

    bench.main(list(rest), prog_name="luminora-redis bench")  # exits with click's code
    return 0


def _demo(url: str | None) -> int:
    from luminora_redis.demo import run_demo

    run_demo(url)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["bench"]:  # click parses its own options
        return _bench(rest[1:])
    args = _parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
