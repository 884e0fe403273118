"""The ``luminora-redis`` console script: ``demo``, ``listen`` and ``migrate``."""

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
    commands.add_parser("migrate", add_help=False,
                        help="upgrade our layout, or import LuminoraCore's data "
                             "(--from-luminoracore); see `migrate --help`")
    return parser


def _demo(url: str | None) -> int:
    from luminora_redis.demo import run_demo

    run_demo(url)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["migrate"]:
        import click

        from luminora_redis.migration.cli import migrate

        try:
            migrate.main(arguments[1:], prog_name="luminora-redis migrate",
                         standalone_mode=False)
        except click.exceptions.Abort:
            return 1
        except click.ClickException as error:
            error.show()
            return error.exit_code
        return 0
    args = _parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
