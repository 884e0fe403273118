"""The docs name files and code that exist.

README.md and every docs/*.md name files (``lua/chat_turn.lua``,
``luminora_redis/io/runner.py``, ``core/``), functions (``touch()``), module
members (``archive.archive_session``) and methods (``SessionStore.chat_turn``,
``store.delivery_backlog()``). A rename in the code leaves such a name stale
without any other test noticing; this one parses the docs and resolves every
name against the repository:

- a path in backticks exists under the repository root, the package, or the
  document's folder (a bare file or folder name: anywhere in the repository);
  a link target exists relative to its document;
- ``a.b.c`` resolves through the named module (``scans.scan_due``: a
  module ``scans`` that defines ``scan_due``), a class of the package
  (``ExpiryListener.wait_live``, with its bases), an instance name the docs use
  for one (``store``, ``listener``: `INSTANCES`) or an installed library
  (`EXTERNAL`), else fails;
- ``name()``, ``CamelCase``, ``_private`` and ``UPPER_CASE`` names are defined
  (or imported) somewhere in the repository's Python source, or are builtins or
  redis-py's (``ValueError``, ``Sentinel``, ``BusyLoadingError``).

Fenced code blocks are examples, not names, and are not read. Words in
backticks that look like code but are not ours go in `ALLOWED`.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import redis
import redis.exceptions

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "luminora_redis"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SKIP_DIRS = {".git", "__pycache__", "node_modules", "build", "dist"}

#: Names in backticks that look like code but name nothing of this repository.
ALLOWED = frozenset({
    # the peers the benchmarks compare with, and LuminoraCore's own classes
    "RedisChatMessageHistory", "RedisChatStore", "MessageHistory", "get_recent",
    "StorageV11Extension", "FlexibleRedisStorageV11",
})

#: The instance names the docs use, and the classes they stand for.
INSTANCES = {
    "store": ("SessionStore", "SyncSessionStore"),
    "listener": ("ExpiryListener",),
    "conversation": ("ArchivedConversation",),
}

#: Installed libraries whose names the docs may use, resolved by importing them.
EXTERNAL = frozenset({"redis", "asyncio", "math", "msgpack", "hiredis", "pydantic", "prometheus_client",
                      "click", "os", "time", "importlib", "zstandard", "pytest", "gc"})

#: Where a single name not defined in the repository may come from.
_LIBRARY_NAMESPACES = (builtins, BaseException, redis, redis.exceptions)

_CODE_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_PATH = re.compile(r"[\w.\-]+(?:/[\w.\-]+)*(?:\.(?:py|lua|md)|/)")
_CALL = re.compile(r"(?:await\s+)?\.?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(.*\)(?:\.\w+)*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_SINGLE = re.compile(r"_\w+|[A-Z][a-z]\w*[a-z]\w*|[A-Z][A-Z0-9]*_[A-Z0-9_]+")
_OTHER_FILE = re.compile(r"[\w.\-/]+\.(?:toml|json|png|txt|ya?ml|conf|sh|cfg|ini|html|csv)")


@dataclass
class _Class:
    members: set[str] = field(default_factory=set)
    bases: list[str] = field(default_factory=list)


@dataclass
class _Module:
    names: set[str] = field(default_factory=set)
    classes: dict[str, _Class] = field(default_factory=dict)


@dataclass
class Index:
    """What the repository's Python source defines."""

    modules: dict[str, _Module] = field(default_factory=dict)  # dotted path -> module
    classes: dict[str, list[_Class]] = field(default_factory=dict)  # name -> definitions
    names: set[str] = field(default_factory=set)  # anything bound anywhere
    strings: set[str] = field(default_factory=set)  # string constants (env var names)


def _sources() -> Iterator[Path]:
    """The Python files of the repository, this one left out (its names are made up)."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if path != Path(__file__).resolve() and not any(
                part in _SKIP_DIRS or part.startswith(".") for part in parts):
            yield path


def _bound(node: ast.AST) -> Iterator[str]:
    """Names a statement binds at its own level (defs, classes, assignments, imports)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    yield leaf.id
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield alias.asname or alias.name.split(".")[0]
    elif isinstance(node, (ast.If, ast.Try)):
        for child in ast.iter_child_nodes(node):
            yield from _bound(child)


def _class(node: ast.ClassDef) -> _Class:
    found = _Class(bases=[ast.unparse(base).split(".")[-1].split("[")[0] for base in node.bases])
    for child in node.body:
        found.members.update(_bound(child))
    for leaf in ast.walk(node):  # self.x = ... in any method
        if isinstance(leaf, ast.Attribute) and isinstance(leaf.ctx, ast.Store) \
                and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
            found.members.add(leaf.attr)
    return found


@cache
def index() -> Index:
    """Parse every Python file of the repository once."""
    built = Index()
    for path in _sources():
        tree = ast.parse(path.read_text("utf-8"), str(path))
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = built.modules.setdefault(".".join(parts), _Module())
        for statement in tree.body:
            module.names.update(_bound(statement))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                definition = _class(node)
                built.classes.setdefault(node.name, []).append(definition)
                module.classes.setdefault(node.name, definition)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                built.strings.add(node.value)
            built.names.update(_bound(node))
    for name in list(built.modules):  # a package knows its submodules
        head, _, tail = name.rpartition(".")
        if head in built.modules:
            built.modules[head].names.add(tail)
    return built


def _has_member(class_name: str, member: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a class of the repository (or a base of it) defines ``member``."""
    if class_name in seen:
        return False
    for definition in index().classes.get(class_name, []):
        if member in definition.members or any(
                _has_member(base, member, seen | {class_name}) for base in definition.bases):
            return True
    return False


def _in_module(module: _Module, rest: list[str]) -> bool:
    if rest[0] not in module.names:
        return False
    if len(rest) == 1:
        return True
    return len(rest) == 2 and rest[0] in module.classes and _has_member(rest[0], rest[1])


def _external(parts: list[str]) -> bool:
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def resolves(name: str) -> bool:
    """Whether a dotted or single name of code names something that exists."""
    if name in ALLOWED:
        return True
    parts = name.split(".")
    if len(parts) == 1:
        return (name in index().names or name in index().strings
                or any(hasattr(module, name) for module in _LIBRARY_NAMESPACES))
    if parts[0] in EXTERNAL:
        return _external(parts)
    if len(parts) == 2 and any(_has_member(cls, parts[1]) for cls in INSTANCES.get(parts[0], ())):
        return True
    if len(parts) == 2 and parts[0] in index().classes and _has_member(parts[0], parts[1]):
        return True
    for cut in range(len(parts), 0, -1):
        wanted = ".".join(parts[:cut])
        for dotted, module in index().modules.items():
            if dotted == wanted or dotted.endswith("." + wanted):
                if cut == len(parts) or _in_module(module, parts[cut:]):
                    return True
    return False


def _path_exists(text: str, document: Path) -> bool:
    relative = text.rstrip("/")
    if "/" not in relative:
        return any(not any(part in _SKIP_DIRS or part.startswith(".")
                           for part in found.relative_to(ROOT).parts)
                   and found.is_dir() == text.endswith("/")
                   for found in ROOT.rglob(relative))
    return any((base / relative).exists() for base in (ROOT, PACKAGE, document.parent))


def names_in(markdown: str) -> tuple[list[str], list[str]]:
    """The inline code spans and the link targets of a Markdown text, fenced blocks left out."""
    prose = _CODE_FENCE.sub("", markdown)
    spans = [match.group(2).strip() for match in _INLINE.finditer(prose)]
    links = [match.group(1) for match in _LINK.finditer(prose)]
    return spans, links


def stale_names(markdown: str, document: Path) -> list[str]:
    """Every name of a file or of code in ``markdown`` that the repository lacks."""
    spans, links = names_in(markdown)
    stale = []
    for target in links:
        if re.match(r"[a-z]+:|#", target):
            continue
        if not (document.parent / target.split("#")[0]).exists():
            stale.append(f"link {target}")
    for span in spans:
        if _PATH.fullmatch(span):
            if not _path_exists(span, document):
                stale.append(f"path {span}")
        elif _OTHER_FILE.fullmatch(span):
            continue
        elif call := _CALL.fullmatch(span):
            if not resolves(call.group(1)):
                stale.append(f"name {span}")
        elif _DOTTED.fullmatch(span) or _SINGLE.fullmatch(span):
            if not resolves(span):
                stale.append(f"name {span}")
    return stale


@pytest.mark.parametrize("document", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_named_file_and_function_exists(document: Path) -> None:
    assert stale_names(document.read_text("utf-8"), document) == []


def test_a_stale_name_fails() -> None:
    """The checker finds made-up names of every kind, and passes real ones."""
    made_up = ("`_listen_server`, `_CLUSTER_IDLE`, `listener/heartbeats.py`, `ops/nope/`, "
               "`store.no_such_method()`, `archive.no_such_function`, `redis.NoSuchThing`, "
               "`ExpiryListener.no_such_method`, `NoSuchClass`, `vanished()`, "
               "[gone](docs/gone.md)")
    assert len(stale_names(made_up, ROOT / "README.md")) == 11
    real = ("`CountingClusterNotifications`, `CLUSTER_IDLE`, `listener/heartbeat.py`, `ops/`, `lua/`, "
            "`store.delivery_backlog().quarantined_sessions`, `scans.scan_due`, "
            "`redis.asyncio.cluster.RedisCluster`, `ExpiryListener.wait_live`, "
            "`listener.live`, `Session.expires_at`, `touch()`, `luminora_redis.io.packing`, "
            "`await listener.wait_live(after=n)`, `pyproject.toml`, `CONFIG`, `sweep_interval`, "
            "[architecture](docs/architecture.md)\n```\nno_such_call()\n```")
    assert stale_names(real, ROOT / "README.md") == []
