"""The ``luminora-redis`` console script: a click group, one module per command.

``demo`` and ``listen`` run things; ``sessions``, ``users``, ``stats`` and
``check`` look at and manage what is in Redis; ``acl`` prints the ACL rules a
restricted user needs. ``migrate`` and ``bench`` join
the group when their packages are importable. Exit codes: 0 ok, 1 a problem
found or an operation failed, 2 usage error, 3 Redis unreachable, 4 not found.
"""

from __future__ import annotations

import importlib

import click

from luminora_redis import __version__
from luminora_redis.cli.acl import acl
from luminora_redis.cli.check import check
from luminora_redis.cli.common import LuminoraGroup
from luminora_redis.cli.demo import demo
from luminora_redis.cli.listen import listen
from luminora_redis.cli.sessions import sessions
from luminora_redis.cli.stats import stats
from luminora_redis.cli.users import users

__all__ = ["main"]

#: Commands other packages provide: (module, command object), added when importable.
OPTIONAL = (("luminora_redis.migration.cli", "migrate"), ("luminora_redis.bench.cli", "bench"))


@click.group(cls=LuminoraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="luminora-redis")
def main() -> None:
    """Redis-native sessions with real expiry and persistent user memory.

    Exit codes: 0 ok, 1 problem found or operation failed, 2 usage error,
    3 Redis unreachable, 4 not found.
    """


for _command in (demo, listen, sessions, users, stats, check, acl):
    main.add_command(_command)

for _module, _name in OPTIONAL:
    try:
        main.add_command(getattr(importlib.import_module(_module), _name))
    except ImportError:
        pass
