"""The Lua scripts, and the steps an operation asks a store to run.

Scripts ship inside the wheel as ``luminora_redis/lua/*.lua``, those only the
drop-in adapters call (``compat_*``) in its ``compat/`` subfolder. In a source
checkout (an editable install) they live in the repository's top-level
``lua/`` folder, so the loader falls back to that when the package has no
``lua`` folder of its own. A script's name is its file name without ``.lua``,
whichever folder holds it, so names are unique across folders.

Every script's first line, and only that line, is its Redis 7 shebang:
``#!lua flags=no-writes`` for a script that only reads, ``#!lua`` for one that
may write. Redis refuses a script without ``no-writes`` before it runs when it
is over ``maxmemory`` (a script without a shebang would be refused only at its
first command that Redis marks deny-oom, which ``PEXPIREAT`` or ``DEL`` are
not), and runs a ``no-writes`` one whatever the memory, refusing any write it
attempts. A shebang script reaches only keys of one slot on a cluster, as ours
do by design. The header block (KEYS, ARGV, replies) follows on the second line.

An operation is written once, as a generator: it yields a ``Call`` (one
script, run by ``redis-py``'s ``Script``: EVALSHA, reloaded on NOSCRIPT) or a
``Batch`` of calls (one pipeline, grouped per node on a cluster), receives
the reply, and finally returns its result. The asyncio and blocking stores
only differ in how they run a step.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

__all__ = ["SHEBANG", "Batch", "Call", "Op", "Step", "alongside", "lua_dir", "script_flags",
           "script_sources"]

T = TypeVar("T")
U = TypeVar("U")

#: How every script's first line begins.
SHEBANG = "#!lua"


class Call(NamedTuple):
    """Run one script: EVALSHA ``script`` with ``keys`` and ``args``."""

    script: str
    keys: Sequence[str]
    args: Sequence[Any]


class Batch(NamedTuple):
    """Run several calls in one round trip per node; the reply is the list of replies."""

    calls: Sequence[Call]


Step = Call | Batch
Op = Generator[Step, Any, T]


def alongside(first: Op[T], second: Op[U]) -> Op[tuple[T, U]]:
    """Run two operations side by side: each round trip carries the next step of both
    (one ``Batch``), so the pair takes as many round trips as the longer one. For
    operations that do not depend on each other; an error of either propagates."""
    ops: list[Op[Any]] = [first, second]
    results: list[Any] = [None, None]
    steps: dict[int, Step] = {}
    for index, op in enumerate(ops):
        try:
            steps[index] = next(op)
        except StopIteration as done:
            results[index] = done.value
    while steps:
        calls: list[Call] = []
        starts: dict[int, int] = {}  # op -> its first call in the Batch
        for index, step in steps.items():
            starts[index] = len(calls)
            calls.extend(step.calls if isinstance(step, Batch) else (step,))
        replies = yield Batch(calls)
        for index, start in starts.items():
            step = steps[index]
            reply = replies[start:start + len(step.calls)] if isinstance(step, Batch) \
                else replies[start]
            try:
                steps[index] = ops[index].send(reply)
            except StopIteration as done:
                results[index] = done.value
                del steps[index]
    return results[0], results[1]


def lua_dir() -> Path:
    """Where the ``.lua`` files are: inside the package, else the source checkout."""
    packaged = resources.files("luminora_redis").joinpath("lua")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "lua"


@cache
def script_sources() -> dict[str, str]:
    """Every script's source text, by name (the file name without ``.lua``), from the
    script folder and its subfolders; a RuntimeError when two files share a name."""
    folder = lua_dir()
    sources: dict[str, str] = {}
    for path in sorted(folder.rglob("*.lua")):
        if path.stem in sources:
            raise RuntimeError(f"two scripts are named {path.stem!r} in {folder}")
        sources[path.stem] = path.read_text("utf-8")
    if not sources:
        raise RuntimeError(f"no Lua scripts found in {folder}")
    for name, source in sources.items():
        script_flags(name, source)
    return sources


def script_flags(name: str, source: str) -> frozenset[str]:
    """The flags a script declares on its first line (``#!lua flags=no-writes``); a
    RuntimeError when that line is not a ``#!lua`` shebang."""
    first = source.partition("\n")[0]
    words = first.split()
    if not words or words[0] != SHEBANG or any(not word.startswith("flags=") for word in words[1:]):
        raise RuntimeError(f"{name}.lua: the first line must be {SHEBANG!r} or "
                           f"'{SHEBANG} flags=...', not {first!r}")
    return frozenset(flag for word in words[1:] for flag in word[len("flags="):].split(",") if flag)
