"""The package's layers import only downwards (docs/architecture.md).

core/ (pure values and rules) < ops/ (sans-IO operations) < io/ (stores, runners)
< listener/; cli/, compat/, migration/, testing/ and bench/ sit beside them and
use them. Every module under ``luminora_redis/`` is parsed with ``ast`` and
every import it makes is checked: at module level, inside functions, and under
``if TYPE_CHECKING:`` alike (an import for types is still a dependency).
Neither core/ nor ops/ may import redis-py or asyncio: an operation that could
do I/O would no longer be one code path for both stores. No layer imports the
package root, which re-exports io/ and listener/.

One exception, in `ALLOWED`: core/errors.py names redis-py's exception classes,
because the library's errors must stay catchable as Redis's own (OutOfMemory is a
redis-py OutOfMemoryError) and the follow-ups of ops/ catch Redis's errors after a
commit. It imports nothing else of redis-py and no I/O happens there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "luminora_redis"
SIDE = ("cli", "compat", "migration", "testing", "bench")


def _inside(*packages: str) -> tuple[str, ...]:
    return tuple(f"luminora_redis.{package}" for package in packages)


#: Layer -> the imports its modules may not make (a name and everything under it).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": ("redis", "asyncio", *_inside("ops", "io", "listener", *SIDE)),
    "ops": ("redis", "asyncio", *_inside("io", "listener", *SIDE)),
    "io": _inside("listener", *SIDE),
    "listener": _inside(*SIDE),
}

#: (module, forbidden import) -> why it is allowed there.
ALLOWED: dict[tuple[str, str], str] = {
    ("luminora_redis.core.errors", "redis"): (
        "the one place that names redis-py's exception classes: OutOfMemory subclasses "
        "redis-py's OutOfMemoryError, and FOLLOW_UP_ERRORS names RedisError"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every module a module's source imports, as absolute dotted names. ``from a import b``
    counts ``a`` and, when ``a.b`` is a module of the package, ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names
                         if f"{origin}.{alias.name}" in MODULES)
    return found


def violations(module: str, imported: set[str]) -> set[str]:
    """The forbidden imports among ``imported`` for ``module``'s layer."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in FORBIDDEN:
        return set()
    bad = {name for name in imported
           if any(name == rule or name.startswith(rule + ".") for rule in FORBIDDEN[parts[1]])}
    if "luminora_redis" in imported:
        bad.add("luminora_redis")
    return {next((rule for rule in FORBIDDEN[parts[1]]
                  if name == rule or name.startswith(rule + ".")), name) for name in bad}


def _violations_of(module: str) -> set[str]:
    path = MODULES[module]
    return violations(module, imports_of(module, path.read_text("utf-8"),
                                         path.name == "__init__.py"))


LAYERED = sorted(name for name in MODULES if name.count(".") >= 1
                 and name.split(".")[1] in FORBIDDEN)


@pytest.mark.parametrize("module", LAYERED)
def test_layer_imports_only_downwards(module: str) -> None:
    unexplained = {name for name in _violations_of(module) if (module, name) not in ALLOWED}
    assert unexplained == set(), f"{module} imports {sorted(unexplained)} (docs/architecture.md)"


def test_core_errors_imports_only_redis_exceptions() -> None:
    """The allowed exception stays narrow: redis-py's exceptions, nothing that does I/O."""
    path = MODULES["luminora_redis.core.errors"]
    names = {alias.name if isinstance(node, ast.Import) else f"{node.module}"
             for node in ast.walk(ast.parse(path.read_text("utf-8")))
             if isinstance(node, (ast.Import, ast.ImportFrom))
             for alias in node.names}
    assert {name for name in names if name.split(".")[0] == "redis"} <= {
        "redis", "redis.exceptions"}


def test_every_layer_has_modules() -> None:
    assert {name.split(".")[1] for name in LAYERED} == set(FORBIDDEN)


def test_the_rules_catch_a_violation() -> None:
    """A TYPE_CHECKING import, a relative import and a function-level import all count."""
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from luminora_redis.io.store import SessionStore\n"
              "from ..listener import sweeper\n"
              "def f():\n    import redis.asyncio\n"
              "from luminora_redis import SessionStore as S\n")
    module = "luminora_redis.ops.example"
    assert violations(module, imports_of(module, source)) == {
        "luminora_redis.io", "luminora_redis.listener", "redis", "luminora_redis"}
    assert violations("luminora_redis.listener.example", imports_of(module, source)) == {
        "luminora_redis"}
