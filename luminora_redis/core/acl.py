"""The least-privilege ACL: the rules a Redis user needs to run the stores and the
listener, and which rule a refusal of Redis's ACL asks for.

`acl_rules` is the one place the rules are written; ``luminora-redis acl`` prints
them, the README shows them and the suite runs everything under exactly them.
What each part is for, found in the code and checked on a real server:

- **Keys**: ``~<prefix>:*``. Every key of the store, the listener and the
  LuminoraCore adapter's alias records starts with the prefix (``core/keys.py``,
  ``compat/lc_aliases.py``); a prefix is letters, digits, ``_``, ``.`` and ``-``,
  none of them a glob character.
- **Channels**: ``&__keyevent@<db>__:expired``, the one channel the listener
  subscribes to (``listener/subscriptions.py``; db 0 on a cluster, on every
  node, since each node has its own ACL). ``resetchannels`` first, since Redis
  6.2 gives a new user every channel.
- **Commands**: ``-@all``, then ``EVALSHA`` and ``SCRIPT LOAD`` (the runners
  send EVALSHA; redis-py's ``Script`` loads a script the server lacks; nothing
  sends EVAL), every command the scripts call (`SCRIPT_COMMANDS`: a script runs
  with its caller's rights, ``TIME`` included), ``SUBSCRIBE`` and ``PING`` (the
  listener's subscription, and its keep-alive after a silence; the CLI pings
  before anything else). ``HELLO`` needs no right. A cluster client also reads
  the slot map (``CLUSTER SLOTS``) and the command table (``COMMAND``).
- Optional: ``CONFIG GET`` and ``CONFIG SET`` let the listener merge the
  ``Ex`` notification flags itself and the store read ``maxmemory-policy``;
  without them an administrator presets the flags, and both go on.
  ``INFO`` is for ``check`` and ``stats``.

Left out on purpose: ``CLIENT NO-EVICT`` (the listener asks it for its pub/sub
connection and goes on when refused), ``CLIENT SETINFO`` (redis-py sends it at
connect on Redis 7.2+ and ignores a refusal; 7.0 lacks it, so granting it would
make the rules fail there), and anything in ``@dangerous``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache

from luminora_redis.core.scripts import script_sources

__all__ = ["CLIENT_COMMANDS", "CLUSTER_COMMANDS", "CONFIG_COMMANDS", "INFO_COMMANDS",
           "SCRIPT_COMMANDS",
           "Denial", "acl_rules", "channel_rule", "denial_of", "expired_channel", "key_rule",
           "scripts_commands"]

#: What the scripts call (``redis.call``/``redis.pcall`` in ``lua/``); a test holds this
#: list and the scripts to each other.
SCRIPT_COMMANDS = (
    "del", "exists", "get", "hdel", "hget", "hgetall", "hincrby", "hlen", "hmget", "hscan",
    "hset", "hsetnx", "lindex", "llen", "lrange", "ltrim", "pexpire", "pexpireat", "pexpiretime",
    "pttl", "rename", "rpush", "set", "time", "type", "unlink", "zadd", "zcard", "zcount",
    "zrange", "zrangebyscore", "zrank", "zrem", "zremrangebyscore", "zrevrange",
    "zrevrangebyscore", "zrevrank", "zscore",
)
#: What the stores and the listener send themselves.
CLIENT_COMMANDS = ("evalsha", "script|load", "subscribe", "ping")
#: What a cluster client sends to learn the cluster.
CLUSTER_COMMANDS = ("cluster|slots", "command")
#: Optional: the listener merges the notification flags, the store reads the eviction policy.
CONFIG_COMMANDS = ("config|get", "config|set")
#: Optional: ``check`` and ``stats`` read the server's INFO.
INFO_COMMANDS = ("info",)

_CALL = re.compile(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]")


def expired_channel(db: int = 0) -> str:
    """The channel Redis publishes expired keys of database ``db`` on."""
    return f"__keyevent@{db}__:expired"


def key_rule(prefix: str) -> str:
    """The key pattern that covers every key under ``prefix``."""
    return f"~{prefix}:*"


def channel_rule(db: int = 0) -> str:
    """The channel rule for the listener's subscription on database ``db``."""
    return f"&{expired_channel(db)}"


def acl_rules(prefix: str = "lr", db: int = 0, config: bool = False, info: bool = False, *,
              cluster: bool = False) -> list[str]:
    """The ``ACL SETUSER`` rules (after the user name) that let a user run the stores,
    the listener and the drop-in adapters on ``prefix`` and nothing else: keys,
    channels, then commands. ``config`` adds ``CONFIG GET``/``SET`` (the listener
    sets the notification flags itself), ``info`` adds ``INFO`` (``check``,
    ``stats``) and ``cluster`` what a cluster client needs (db 0 there). They reset
    the user's keys, channels and commands, and leave its passwords and on/off state
    alone."""
    commands = [*CLIENT_COMMANDS, *SCRIPT_COMMANDS]
    if cluster:
        commands += CLUSTER_COMMANDS
    if config:
        commands += CONFIG_COMMANDS
    if info:
        commands += INFO_COMMANDS
    return ["resetkeys", key_rule(prefix), "resetchannels", channel_rule(0 if cluster else db),
            "-@all", *(f"+{command}" for command in commands)]


def scripts_commands(source: str) -> list[str]:
    """The commands a script's source calls, lower case, in order of first call."""
    return list(dict.fromkeys(name.lower() for name in _CALL.findall(source)))


@cache
def _scripts_by_sha() -> dict[str, tuple[str, str]]:
    return {hashlib.sha1(source.encode()).hexdigest(): (name, source)
            for name, source in script_sources().items()}


@dataclass(frozen=True)
class Denial:
    """What Redis's ACL refused: a ``command`` (lower case, ``config|get`` form), a
    ``key`` or a ``channel``; ``script`` names the script it ran in, if any."""

    command: str | None = None
    key: bool = False
    channel: bool = False
    script: str | None = None


# Redis 6.2-8 and Valkey word their refusals differently; these match each wording:
#   top level: "this user has no permissions to run the 'get' command [or its subcommand]",
#              "User app has no permissions to run the 'get' command",
#              "... access one of the keys used as arguments" / "No permissions to access a key"
#   in a script (7.2+): "ACL failure in script: <one of the above> script: <sha>, on @user_script:<n>."
#   in a script (6.2, 7.0): "The user executing the script can't run this command or
#              subcommand script: <sha>, on @user_script:<n>." (7.0),
#              "Error running script (call to f_<sha>): @user_script:<n>: ..." (6.2)
_COMMAND = re.compile(r"permissions to run the '([^']+)' command")
_KEY = re.compile(r"permissions to access (?:one of the keys|a key)", re.IGNORECASE)
_CHANNEL = re.compile(r"permissions to access (?:one of the channels|a channel)", re.IGNORECASE)
_IN_SCRIPT = re.compile(r"can't run this command or subcommand|ACL failure in script")
_SHA_LINE = re.compile(r"(?:script: |f_)([0-9a-f]{40})\b.*?@user_script:\s*(\d+)")


def denial_of(message: str) -> Denial | None:
    """What an error reply says the ACL refused, or None when it is no ACL refusal.
    A script's refusal that does not name the command (Redis 6.2 and 7.0) is traced to
    the line of the script it names."""
    in_script = _IN_SCRIPT.search(message) is not None
    found = _SHA_LINE.search(message)
    script = line = None
    if found is not None:
        known = _scripts_by_sha().get(found.group(1))
        if known is not None:
            script, source = known
            lines = source.split("\n")
            number = int(found.group(2))
            line = lines[number - 1] if 0 < number <= len(lines) else None
    if (named := _COMMAND.search(message)) is not None:
        command = named.group(1).lower()
        if command == "script" and not in_script:
            command = "script|load"  # 6.2 names the parent command; SCRIPT LOAD is ours
        return Denial(command=command, script=script)
    if _KEY.search(message):
        return Denial(key=True, script=script)
    if _CHANNEL.search(message):
        return Denial(channel=True, script=script)
    if not in_script:
        return None
    called = scripts_commands(line) if line is not None else []
    return Denial(command=called[0] if len(called) == 1 else None, script=script)
