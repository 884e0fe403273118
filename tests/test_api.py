"""The public surface: names from the contract, two shells that cannot drift,
scripts that document themselves, take every key through KEYS and declare
whether they write, and one table of the status codes they reply with."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel

import luminora_redis
from luminora_redis import ExpiryListener, SessionStore, SyncSessionStore
from luminora_redis.core.context_messages import ContextMessage
from luminora_redis.core.errors import ReplyCode
from luminora_redis.core.scripts import lua_dir, script_flags, script_sources
from luminora_redis.listener import deliveries
from luminora_redis.listener import settings as listener_settings

CONTRACT = {
    "create_session", "get_session", "touch", "append_message", "get_history", "chat_turn",
    "is_session_expired", "list_user_sessions", "end_session", "delete_session",
    "get_expired_sessions", "cleanup_expired_sessions", "update_affinity", "get_affinity",
    "save_fact", "get_facts", "save_episode", "get_episodes", "get_evolution", "save_mood",
    "get_mood", "get_archived_conversations",
}


#: The extension API: run any operation generator of luminora_redis.ops through the
#: store's one runner (README, "Extending").
EXTENSION = {"run", "context"}
#: Deprecated aliases, kept for one release: old name -> the method that replaces it.
DEPRECATED = {"archive_expired": "cleanup_expired_sessions"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if not name.startswith("_") and inspect.isfunction(member)}


def public_names(cls: type) -> set[str]:
    """Every public attribute of a class and its bases: methods and properties."""
    return {name for klass in cls.__mro__[:-1] for name in vars(klass)
            if not name.startswith("_")}


def test_the_contract_names_exist_on_both_stores() -> None:
    assert CONTRACT <= set(public_methods(SessionStore))
    assert CONTRACT <= set(public_methods(SyncSessionStore))
    for name in ("SessionStore", "SyncSessionStore", "Session", "Message", "Affinity",
                 "SessionExpired", "InvalidInput", "LuminoraRedisError"):
        assert hasattr(luminora_redis, name)


def test_the_two_stores_have_the_same_methods_and_signatures() -> None:
    asynchronous = public_methods(SessionStore)
    blocking = public_methods(SyncSessionStore)
    asynchronous.pop("aclose")
    blocking.pop("close")
    assert asynchronous.keys() == blocking.keys()
    for name, signature in asynchronous.items():
        assert str(blocking[name]) == str(signature), name
        assert inspect.iscoroutinefunction(getattr(SessionStore, name)), name
        assert not inspect.iscoroutinefunction(getattr(SyncSessionStore, name)), name
        assert getattr(SyncSessionStore, name).__doc__ == getattr(SessionStore, name).__doc__


def test_every_public_method_says_what_it_does() -> None:
    for name in public_methods(SessionStore):
        assert getattr(SessionStore, name).__doc__, name


def test_the_extension_api_is_run_and_context_and_the_runner_is_private() -> None:
    for cls in (SessionStore, SyncSessionStore):
        names = public_names(cls)
        assert EXTENSION <= names, cls
        assert not {name for name in names if "runner" in name}, cls
        for name in EXTENSION:
            assert "extension API" in (getattr(cls, name).__doc__ or ""), (cls, name)


def test_deprecated_aliases_name_their_replacement_and_spare_the_contract() -> None:
    assert not DEPRECATED.keys() & CONTRACT
    for cls in (SessionStore, SyncSessionStore):
        methods = public_methods(cls)
        for old, new in DEPRECATED.items():
            assert old in methods and new in methods
            assert "Deprecated since 0.2.0" in (getattr(cls, old).__doc__ or "")
            assert new in (getattr(cls, old).__doc__ or "")
            assert new in inspect.getsource(getattr(cls, old)), "the alias calls the new path"
        for name in set(methods) - DEPRECATED.keys():
            assert "deprecated" not in (getattr(cls, name).__doc__ or "").lower(), name


def _classes(hint: Any) -> set[type]:
    found = {hint} if isinstance(hint, type) else set()
    for argument in typing.get_args(hint):
        found |= _classes(argument)
    return found


def test_every_model_a_public_method_takes_or_returns_is_exported() -> None:
    """A user never imports a store's argument or result type from an inner module."""
    seen: set[type] = set()
    for cls in (SessionStore, SyncSessionStore):
        for name in set(public_methods(cls)) - EXTENSION:
            for hint in typing.get_type_hints(getattr(cls, name)).values():
                seen |= _classes(hint)
    models = {kind for kind in seen if issubclass(kind, (BaseModel, Enum, ContextMessage))
              and kind.__module__.startswith("luminora_redis")}
    assert {"Session", "ArchiveSummary", "SessionView", "UserSummary"} <= {
        kind.__name__ for kind in models}
    for kind in models:
        assert kind.__name__ in luminora_redis.__all__, kind
        assert getattr(luminora_redis, kind.__name__) is kind
    assert luminora_redis.OnArchived is deliveries.OnArchived
    assert luminora_redis.ListenerObserver is listener_settings.ListenerObserver
    hints = typing.get_type_hints(ExpiryListener.__init__)
    assert hints["observer"] == luminora_redis.ListenerObserver | None


def test_every_exported_name_exists() -> None:
    assert sorted(set(luminora_redis.__all__)) == sorted(luminora_redis.__all__)
    for name in luminora_redis.__all__:
        assert hasattr(luminora_redis, name), name


def test_the_package_is_typed() -> None:
    assert (Path(luminora_redis.__file__).parent / "py.typed").is_file()


# -- script headers ---------------------------------------------------------------------
#
# Every script's first line is its shebang, "#!lua" or "#!lua flags=no-writes" (see
# luminora_redis.core.scripts); a block comment follows at once: its name, what it does, then one entry per
# KEYS[i] (its role) and ARGV[i] (its meaning, with a unit or range when it is a number),
# then "Replies:". An entry may be variadic: KEYS[1..n], KEYS[2+3i..], ARGV[4..]; "ARGV none"
# says the script takes no arguments. The tests below read the body and hold the header to it.

ENTRY = re.compile(r"^(KEYS|ARGV)(?:\[([^\]]+)\])?\s+(\S.*)$")
FIXED = re.compile(r"\d+")
VARIADIC = re.compile(r"(\d+)(?:\+\d+i)?\.\.(?:n)?")
UNIT = re.compile(r"\b(milliseconds|seconds|ms|messages|integer|points|how many|count)\b"
                  r"|\(\s*[<>]=?\s*-?\d|\(-1\b|-?\d+\s+to\s+-?\d+|-1[:\s]")


class Header(NamedTuple):
    fixed: dict[str, dict[int, str]]  # KEYS/ARGV -> index -> description
    variadic: dict[str, int]          # KEYS/ARGV -> first index a variadic entry covers
    none: set[str]                    # "ARGV none" / "KEYS none"
    replies: str


def split_script(name: str, source: str) -> tuple[str, str]:
    shebang, _, rest = source.partition("\n")
    assert shebang.startswith("#!lua"), f"{name}: the first line is not its #!lua shebang"
    assert rest.startswith("--[["), f"{name}: no header block right after the shebang"
    header, _, body = rest[len("--[["):].partition("]]")
    return header, body


def parse_header(name: str, header: str) -> Header:
    fixed: dict[str, dict[int, str]] = {"KEYS": {}, "ARGV": {}}
    variadic: dict[str, int] = {}
    none: set[str] = set()
    replies: list[str] = []
    current: list[str] | None = None
    for line in header.splitlines():
        entry = ENTRY.match(line)
        if line.startswith("Replies:"):
            current = replies
            replies.append(line[len("Replies:"):].strip())
        elif entry:
            kind, index, text = entry.groups()
            current = None
            if index is None:
                assert text.strip() == "none", f"{name}: {line!r} has no index"
                none.add(kind)
            elif FIXED.fullmatch(index):
                assert int(index) not in fixed[kind], f"{name}: {kind}[{index}] twice"
                fixed[kind][int(index)] = text
            else:
                span = VARIADIC.fullmatch(index)
                assert span, f"{name}: cannot read the index of {line!r}"
                variadic[kind] = int(span.group(1))
                fixed[kind].setdefault(-int(span.group(1)), text)
        elif current is not None and line.strip():
            current.append(line.strip())
    return Header({k: {i: t for i, t in v.items() if i > 0} for k, v in fixed.items()},
                  variadic, none, " ".join(replies).strip())


class Uses(NamedTuple):
    fixed: set[int]  # literal indexes: KEYS[3]
    dynamic: bool    # KEYS[k], KEYS[k + 1], ipairs(KEYS), #KEYS, unpack(KEYS)


def uses(body: str, kind: str) -> Uses:
    fixed = {int(n) for n in re.findall(rf"\b{kind}\[(\d+)\]", body)}
    dynamic = bool(re.search(rf"\b{kind}\[(?!\d+\])", body)
                   or re.search(rf"#{kind}\b|ipairs\({kind}\)|unpack\({kind}\b", body))
    return Uses(fixed, dynamic)


SCRIPTS = sorted(script_sources())


def check_documented(name: str, source: str) -> None:
    header_text, body = split_script(name, source)
    assert header_text.startswith(f"\n{name}:"), "the header names the operation first"
    header = parse_header(name, header_text)
    assert header.replies, f"{name}: the header has no Replies section"
    for kind in ("KEYS", "ARGV"):
        used = uses(body, kind)
        documented = header.fixed[kind]
        # An entry may say "(unused" when callers keep passing it for the signature's sake.
        kept = {i for i, text in documented.items() if "(unused" in text}
        start = header.variadic.get(kind)
        covered = set(documented) | ({i for i in used.fixed if i >= start} if start else set())
        assert used.fixed <= covered, f"{name}: {kind} {sorted(used.fixed - covered)} undocumented"
        if used.dynamic:
            assert start is not None, f"{name}: {kind} indexed by a variable, no {kind}[n..] entry"
        if kind in header.none:
            assert not used.fixed and not used.dynamic, f"{name}: says {kind} none, uses it"
        else:
            assert documented or start, f"{name}: no {kind} entry (write '{kind} none')"
        if documented:
            assert sorted(documented) == list(range(1, max(documented) + 1)), (
                f"{name}: {kind} entries {sorted(documented)} are not 1..n")
            unused = set(documented) - used.fixed - kept
            assert used.dynamic or not unused, f"{name}: {kind} {sorted(unused)} documented, unused"
        if kind == "KEYS" and used.fixed and not start:
            assert max(documented) == max(used.fixed | kept), (
                f"{name}: documents {max(documented)} keys, the body uses KEYS[{max(used.fixed)}]")


def role(text: str) -> str:
    """What an entry says besides the key pattern it may show (``lr:{b}:s:<sid>``)."""
    return re.sub(r"\S*lr:\S*", "", text).strip()


def check_roles_and_units(name: str, source: str) -> None:
    header_text, body = split_script(name, source)
    header = parse_header(name, header_text)
    for index, text in header.fixed["KEYS"].items():
        assert len(re.findall(r"[a-z]{3,}", role(text))) >= 1, f"{name}: KEYS[{index}] has no role"
    numeric = {int(n) for n in re.findall(r"tonumber\(ARGV\[(\d+)\]\)", body)}
    for index, text in header.fixed["ARGV"].items():
        assert len(re.findall(r"[a-z]{2,}", text)) >= 2, f"{name}: ARGV[{index}] says nothing"
        if index in numeric:
            assert UNIT.search(text), f"{name}: ARGV[{index}] is a number with no unit: {text!r}"


# Commands whose key arguments are not only the first one.
ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH"}
TWO_KEYS = {"RENAME", "RENAMENX", "LMOVE", "RPOPLPUSH", "SMOVE", "COPY", "BLMOVE"}
KEYLESS = {"TIME", "PING", "ECHO"}
CALL_OPEN = re.compile(r"redis\.p?call\(")
BIND = re.compile(r"local\s+([\w\s,]+?)\s*=\s*(.+)")
LOOP = re.compile(r"for\s+\w+\s*,\s*(\w+)\s+in\s+ipairs\(KEYS\)")


def call_arguments(body: str, start: int) -> list[str]:
    """The top-level arguments of the call whose '(' ends at ``start``."""
    depth, current, arguments, quote = 0, "", [], ""
    for char in body[start:]:
        if quote:
            current += char
            quote = "" if char == quote else quote
            continue
        if char in "'\"":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            if depth == 0:
                arguments.append(current.strip())
                return arguments
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append(current.strip())
            current = ""
            continue
        current += char
    raise AssertionError("unbalanced redis.call")


def key_names(body: str) -> set[str]:
    """Locals that hold a KEYS element and are never assigned anything else."""
    names: set[str] = set(LOOP.findall(body))
    for targets, values in BIND.findall(body):
        targets_list = [t.strip() for t in targets.split(",")]
        values_list = [v.strip() for v in values.split(",")]
        for position, target in enumerate(targets_list):
            value = values_list[position] if position < len(values_list) else ""
            if re.fullmatch(r"KEYS\[[^\]]+\]", value):
                names.add(target)
    for name in list(names):
        for value in re.findall(rf"(?<![\w.])(?:local\s+)?{name}\s*=(?!=)\s*([^\n]+)", body):
            if not re.match(r"KEYS\[[^\]]+\]", value.strip()):
                names.discard(name)
    return names


def is_key(expression: str, names: set[str]) -> bool:
    """A key argument must be KEYS[...] or a local bound to one: never built with '..'."""
    if ".." in expression or "'" in expression.split(" and ")[-1]:
        return False
    choice = re.fullmatch(r".+?\s+and\s+(.+?)\s+or\s+(.+)", expression)
    if choice:
        return all(is_key(part.strip(), names) for part in choice.groups())
    return bool(re.fullmatch(r"KEYS\[[^\]]+\]", expression)) or expression in names


def check_keys_arrive_through_keys(name: str, source: str) -> None:
    _, body = split_script(name, source)
    names = key_names(body)
    calls = 0
    for match in CALL_OPEN.finditer(body):
        arguments = call_arguments(body, match.end())
        command = arguments[0].strip("'\"").upper()
        calls += 1
        if command in KEYLESS:
            continue
        assert re.fullmatch(r"[A-Z]+", command), f"{name}: command name built at run time"
        keys = (arguments[1:] if command in ALL_KEYS
                else arguments[1:3] if command in TWO_KEYS else arguments[1:2])
        for key in keys:
            assert is_key(key, names), f"{name}: {command} on {key!r}, not a KEYS element"
    assert calls > 0, f"{name}: no redis.call found"


#: Commands that never write, and the only ones a script flagged no-writes may call: any
#: other command counts as a write, so a write missing here cannot slip into a no-writes
#: script. test_oom holds this list to the server's own COMMAND INFO.
READS = frozenset({
    "EXISTS", "GET", "HGET", "HGETALL", "HLEN", "HMGET", "HSCAN", "LINDEX", "LLEN", "LRANGE",
    "PEXPIRETIME", "PTTL", "TIME", "TYPE", "ZCARD", "ZCOUNT", "ZRANGE", "ZRANGEBYSCORE",
    "ZRANK", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCORE",
})
#: Scripts that run when Redis is over maxmemory although they may write; the header of
#: each says why.
ALLOW_OOM = {"claim_layout",
             # LangGraph store reads: they only drop expired items and move deadlines.
             "lg_store_get", "lg_store_scan", "lg_store_namespaces"}


def commands(body: str) -> set[str]:
    """The commands a script body calls."""
    return {call_arguments(body, match.end())[0].strip("'\"").upper()
            for match in CALL_OPEN.finditer(body)}


def check_flags(name: str, source: str) -> None:
    """A script that only reads is flagged no-writes (so it runs when Redis is over
    maxmemory); one that may write is not (so Redis refuses it before it runs)."""
    _, body = split_script(name, source)
    flags = script_flags(name, source)
    assert flags <= {"no-writes", "allow-oom"}, f"{name}: unexpected flags {sorted(flags)}"
    writes = sorted(commands(body) - READS)
    if "no-writes" in flags:
        assert not writes, f"{name}: flagged no-writes, but calls {writes}"
    else:
        assert writes, f"{name}: calls no write command; flag it no-writes"
    assert ("allow-oom" in flags) == (name in ALLOW_OOM), f"{name}: allow-oom is {sorted(flags)}"


CHECKS = [check_documented, check_roles_and_units, check_keys_arrive_through_keys, check_flags]


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_every_script_header_holds(name: str, check: Callable[[str, str], None]) -> None:
    """Header entries match the body; a key built inside Lua would break on Cluster."""
    check(name, script_sources()[name])


GOOD = """#!lua
--[[
demo: set a field.

KEYS[1] the user hash         lr:{b}:u:<uid>
KEYS[2] the user's sessions   lr:{b}:u:<uid>:sessions
ARGV[1] session id
ARGV[2] idle timeout, milliseconds (> 0)
Replies:
  {1}
]]
local userKey, sessionsKey = KEYS[1], KEYS[2]
redis.call('HSET', userKey, 'idle', tonumber(ARGV[2]))
redis.call('ZADD', sessionsKey, 1, ARGV[1])
return {1}
"""

BROKEN = {
    "an undocumented key": ("KEYS[2] the user's sessions   lr:{b}:u:<uid>:sessions\n", ""),
    "a key documented but unused": ("= KEYS[1], KEYS[2]", "= KEYS[1], KEYS[1]"),
    "a key with no role": ("KEYS[1] the user hash        ", "KEYS[1]"),
    "an undocumented argument": ("ARGV[1] session id\n", ""),
    "an argument with no meaning": ("ARGV[1] session id", "ARGV[1] id"),
    "a number with no unit": ("idle timeout, milliseconds (> 0)", "idle timeout"),
    "keys taken by a variable index": ("= KEYS[1], KEYS[2]", "= KEYS[1], KEYS[#KEYS]"),
    "no Replies section": ("Replies:\n  {1}\n", ""),
    "a key built in Lua": ("redis.call('ZADD', sessionsKey,", "redis.call('ZADD', userKey .. ':x',"),
    "a key local reassigned": ("return {1}", "sessionsKey = 'lr:x'\nredis.call('DEL', sessionsKey)\n"
                               "return {1}"),
    "a key in a second position": ("redis.call('ZADD', sessionsKey, 1, ARGV[1])",
                                   "redis.call('ZADD', sessionsKey, 1, ARGV[1])\n"
                                   "redis.call('RENAME', userKey, 'lr:other')"),
    "no shebang": ("#!lua\n", ""),
    "a shebang below the header": ("#!lua\n--[[", "--[[\n#!lua"),
    "a writing script flagged no-writes": ("#!lua\n", "#!lua flags=no-writes\n"),
    "a reading script not flagged no-writes": (
        "redis.call('HSET', userKey, 'idle', tonumber(ARGV[2]))\n"
        "redis.call('ZADD', sessionsKey, 1, ARGV[1])",
        "redis.call('HGET', userKey, tonumber(ARGV[2]))\nredis.call('ZSCORE', sessionsKey, ARGV[1])"),
    "an unknown flag": ("#!lua\n", "#!lua flags=no-writes,allow-stale\n"),
    "allow-oom on a script not meant to write under OOM": ("#!lua\n", "#!lua flags=allow-oom\n"),
}


def test_a_well_documented_script_passes_every_check() -> None:
    for check in CHECKS:
        check("demo", GOOD)


@pytest.mark.parametrize("flaw", sorted(BROKEN))
def test_the_header_checks_catch_each_flaw(flaw: str) -> None:
    old, new = BROKEN[flaw]
    assert old in GOOD
    broken = GOOD.replace(old, new)
    failures = 0
    for check in CHECKS:
        try:
            check("demo", broken)
        except AssertionError:
            failures += 1
    assert failures, f"no check noticed {flaw}"


# -- one table of reply codes -----------------------------------------------------------

#: The first element of a reply a header documents, when it is a literal status code:
#: "{1, now_ms}", "{-4, segs}", "{0}"; not "{now_ms, ...}" or "{n}".
DOCUMENTED_CODE = re.compile(r"\{\s*(-?\d+)\s*[,}]")
#: A reply's status compared with a bare number instead of a ReplyCode.
BARE_COMPARISON = re.compile(r"reply\[0\]\s*(?:==|!=|<=|>=|<|>)\s*-?\d|"
                             r"reply\[0\]\s+(?:not\s+)?in\s+\([^)]*-?\d")


def documented_codes() -> dict[int, set[str]]:
    """Every status code some script header documents, with the scripts that reply it."""
    codes: dict[int, set[str]] = {}
    for name, source in script_sources().items():
        header = parse_header(name, split_script(name, source)[0])
        for code in DOCUMENTED_CODE.findall(header.replies):
            codes.setdefault(int(code), set()).add(name)
    return codes


def test_every_documented_reply_code_is_in_the_one_table_and_none_other() -> None:
    documented = documented_codes()
    table = {int(code) for code in ReplyCode}
    assert not set(documented) - table, (
        f"codes no ReplyCode names: { {c: sorted(documented[c]) for c in set(documented) - table} }")
    assert not table - set(documented), (
        f"ReplyCode members no script replies: {sorted(ReplyCode(c).name for c in table - set(documented))}")
    assert len(ReplyCode) == len(table), "two ReplyCode names share a value"


def test_the_reply_code_check_reads_headers() -> None:
    documented = documented_codes()
    assert documented[ReplyCode.STALE] >= {"archive_segment", "delete_session", "compact_archive"}
    assert documented[ReplyCode.QUARANTINED] >= {"claim_delivery", "retry_delivery", "sweep_failed"}
    assert ReplyCode.OK in documented and 8 not in documented


def test_python_compares_reply_codes_by_name() -> None:
    package = Path(luminora_redis.__file__).parent
    bare = [f"{path.relative_to(package)}:{number}: {line.strip()}"
            for path in sorted(package.rglob("*.py"))
            for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
            if BARE_COMPARISON.search(line)]
    assert not bare, "compare with ReplyCode, not a bare number:\n" + "\n".join(bare)
    assert BARE_COMPARISON.search("if reply[0] == -2:")
    assert BARE_COMPARISON.search("if reply[0] in (1, 2):")
    assert not BARE_COMPARISON.search("if reply[0] != ReplyCode.STALE:")


def test_the_adapters_scripts_load_from_their_own_folder() -> None:
    compat = {path.stem for path in (lua_dir() / "compat").glob("*.lua")}
    assert compat and all(name.startswith("compat_") for name in compat)
    assert compat <= set(script_sources())
    assert not [path.name for path in lua_dir().glob("compat_*.lua")]
