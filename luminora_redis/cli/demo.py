"""``luminora-redis demo``: a live tour (see ``luminora_redis.demo``)."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command()
@click.option("--url", envvar="REDIS_URL", default=None,
              help="use this Redis instead of a private one (keys under 'demo:'); "
                   "REDIS_URL works too")
def demo(url: str | None) -> None:
    """A live tour; starts a private redis-server unless --url is given."""
    from luminora_redis.demo import run_demo

    run_demo(url)
