"""The public surface: names from the contract, two shells that cannot drift,
scripts that document themselves and take every key through KEYS."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import luminora_redis
from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.scripts import script_sources

CONTRACT = {
    "create_session", "get_session", "touch", "append_message", "get_history", "chat_turn",
    "is_session_expired", "list_user_sessions", "end_session", "delete_session",
    "get_expired_sessions", "cleanup_expired_sessions", "update_affinity", "get_affinity",
    "save_fact", "get_facts", "save_episode", "get_episodes", "get_evolution", "save_mood",
    "get_mood", "get_archived_conversations",
}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if not name.startswith("_") and inspect.isfunction(member)}


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


def test_the_package_is_typed() -> None:
    assert (Path(luminora_redis.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("name", sorted(script_sources()))
def test_every_script_opens_with_its_keys_arguments_and_replies(name: str) -> None:
    header = script_sources()[name].split("]]", 1)[0]
    assert header.startswith(f"--[[\n{name}:"), "the header names the operation first"
    assert "KEYS" in header and "ARGV" in header and "Repl" in header


LOCAL_FROM_KEYS = re.compile(r"local\s+([\w\s,]+?)\s*=\s*(KEYS\[\d+\][\w\s,\[\]]*)\n")
CALL = re.compile(r"redis\.call\('(\w+)'(?:,\s*([^,)]+))?")
KEYLESS = {"TIME"}


@pytest.mark.parametrize("name", sorted(script_sources()))
def test_every_key_a_script_touches_arrives_through_keys(name: str) -> None:
    """A key built inside Lua would break on Cluster and escape the layout."""
    source = script_sources()[name].split("]]", 1)[1]
    key_names = {"key"} if "in ipairs(KEYS)" in source else set()
    for names, _ in LOCAL_FROM_KEYS.findall(source):
        key_names.update(part.strip() for part in names.split(","))
    for command, first in CALL.findall(source):
        if command in KEYLESS:
            continue
        first = first.strip()
        assert first.startswith("KEYS[") or first in key_names or (
            first.startswith("s[3] == '1' and KEYS[")), f"{name}: {command} {first}"
