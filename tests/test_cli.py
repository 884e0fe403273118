"""The console script as a process: the demo tells its story on a private
redis-server and leaves nothing running; the listener archives under any
prefix and hands conversations to a hook; expected failures are one line
with a documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from luminora_redis import SyncSessionStore
from luminora_redis.testing import free_port

from conftest import require_redis_server, wait_until

CLI = [sys.executable, "-m", "luminora_redis.cli"]


def run(*argv: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=timeout,
                          **kwargs)  # type: ignore[call-overload]


@pytest.mark.slow
def test_the_demo_runs_on_a_private_server_and_stops_it() -> None:
    require_redis_server()
    result = run("demo", check=True)
    out = result.stdout
    port = int(re.search(r"private redis-server on redis://127\.0\.0\.1:(\d+)", out).group(1))
    assert "reason=idle, 4 messages kept" in out
    assert "returns False: it cannot be resurrected" in out
    assert "affinity 30 = acquaintance" in out and "= friend" in out
    assert out.rstrip().endswith("done.")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the private redis-server still runs"


def test_the_console_script_lists_its_commands() -> None:
    result = run("--help", check=True)
    for command in ("demo", "listen", "sessions", "users", "stats", "check"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["nonsense"], ["users", "show"],
                                  ["sessions", "list", "--limit", "0"],
                                  ["listen", "--sweep-interval", "0"]])
def test_bad_arguments_are_refused_with_usage(argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 2 and "Usage:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["stats"], ["check"], ["sessions", "list"],
                                  ["users", "show", "carlos"], ["users", "erase", "carlos"],
                                  ["listen"]])
def test_redis_down_is_one_line_and_exit_3(argv: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run(*argv, "--url", url)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "cannot reach Redis" in result.stderr
    assert "REDIS_URL" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_redis_url_comes_from_the_environment() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run("stats", env={**os.environ, "REDIS_URL": url})
    assert result.returncode == 3 and str(url.split(":")[2].split("/")[0]) in result.stderr


@pytest.mark.slow
def test_a_bad_url_is_a_usage_error() -> None:
    result = run("stats", "--url", "http://example.com")
    assert result.returncode == 2 and result.stderr.startswith("luminora-redis: bad Redis URL")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_listen_archives_under_its_prefix_and_calls_the_hook(redis_url: str,
                                                            tmp_path: Path) -> None:
    (tmp_path / "sink.py").write_text(textwrap.dedent(f"""
        import json

        def record(conversation):
            with open({str(tmp_path / 'seen.jsonl')!r}, "a") as out:
                out.write(json.dumps({{"sid": conversation.session_id,
                                      "n": len(conversation.messages)}}) + "\\n")
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [*CLI, "listen", "--url", redis_url, "--prefix", "app", "--buckets", "4",
         "--hook", "sink:record", "--sweep-interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        client = redis.Redis.from_url(redis_url)
        wait_until(lambda: client.exists("app:layout"), timeout=30)
        assert client.hget("app:layout", "buckets") == b"4"
        with SyncSessionStore.from_url(redis_url, prefix="app") as store:
            sid = store.create_session("carlos", "alicia", {"ttl": 0.2})
            store.append_message(sid, "user", "hola")
            seen = tmp_path / "seen.jsonl"
            wait_until(lambda: seen.exists() and seen.read_text(), timeout=30)
            assert json.loads(seen.read_text()) == {"sid": sid, "n": 1}
            assert [c.session_id for c in store.get_archived_conversations("carlos")] == [sid]
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "prefix 'app'" in err and "SIGTERM received" in err


def _one_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.stderr.startswith("luminora-redis: ") and result.stderr.count("\n") == 1, \
        result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("argv, words", [
    (["listen", "--prefix", "bad:prefix"], "bad --prefix 'bad:prefix'"),
    (["listen", "--buckets", "4"], "was created with 8 buckets"),
    (["sessions", "show", "not-a-session"], "not a session id of this store"),
    (["sessions", "end", "xyz"], "not a session id of this store"),
    (["stats", "--prefix", "bad:prefix"], "bad --prefix"),
])
def test_invalid_input_is_one_line_and_exit_2(redis_url: str, argv: list[str],
                                              words: str) -> None:
    with SyncSessionStore.from_url(redis_url, buckets=8) as store:
        store.create_session("carlos", "alicia")
    result = run(*argv, "--url", redis_url)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    _one_line(result)


@pytest.mark.slow
def test_listen_on_a_metrics_port_in_use_is_one_line_and_exit_2(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("listen", "--url", redis_url, "--metrics-port", str(port))
    assert result.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    _one_line(result)


def test_listen_replaces_a_listener_that_fails(redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import importlib

    from click.testing import CliRunner

    from luminora_redis.cli import main

    listen_module = importlib.import_module("luminora_redis.cli.listen")
    runs: list[str] = []

    class Failing:
        """Fails twice (a Redis error, then a bug), then runs until the stop signal."""

        def __init__(self, store: object, **options: object) -> None:
            self.name = f"failing-{len(runs)}"
            self.stopped = asyncio.Event()

        async def run(self) -> None:
            runs.append(self.name)
            if len(runs) == 1:
                raise redis.ConnectionError("Redis went away")
            if len(runs) == 2:
                raise RuntimeError("a bug in a loop")
            signal.raise_signal(signal.SIGTERM)
            await self.stopped.wait()

        async def stop(self) -> None:
            self.stopped.set()

    frozen: list[int] = []
    monkeypatch.setattr(listen_module, "ExpiryListener", Failing)
    monkeypatch.setattr(listen_module, "RESTART_DELAY", 0.01)
    # What the process holds once set up leaves the collector's reach, once, before the
    # first listener runs (not frozen for real here: it is the test process).
    monkeypatch.setattr(listen_module.gc, "freeze", lambda: frozen.append(len(runs)))
    result = CliRunner().invoke(main, ["listen", "--url", redis_url])
    assert result.exit_code == 0, result.output
    assert runs == ["failing-0", "failing-1", "failing-2"]
    assert frozen == [0]
    failures = [record for record in caplog.records if "a new one starts" in record.getMessage()]
    assert [record.exc_info[1].__class__ for record in failures if record.exc_info] == [
        redis.ConnectionError, RuntimeError]


@pytest.mark.slow
def test_listen_refuses_a_hook_it_cannot_load(redis_url: str) -> None:
    result = run("listen", "--url", redis_url, "--hook", "no_such_module_here:fn")
    assert result.returncode == 2 and "cannot load the hook" in result.stderr
    result = run("listen", "--url", redis_url, "--hook", "json")
    assert result.returncode == 2 and "module:function" in result.stderr


@pytest.mark.slow
def test_listen_stops_on_sigint_within_seconds(redis_url: str) -> None:
    process = subprocess.Popen([*CLI, "listen", "--url", redis_url, "--no-notifications"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(lambda: client.exists("lr:layout"), timeout=30)
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and time.monotonic() - started < 30, err


def test_the_listen_command_parses_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    listen_module = importlib.import_module("luminora_redis.cli.listen")
    monkeypatch.delenv("REDIS_URL", raising=False)

    seen: dict[str, object] = {}

    async def fake(url: str, cluster: bool, prefix: str, buckets: int | None,
                   options: dict[str, object]) -> None:
        seen.update(url=url, cluster=cluster, prefix=prefix, buckets=buckets, **options)

    monkeypatch.setattr(listen_module, "_listen", fake)
    monkeypatch.setattr(listen_module, "make_client", lambda url, cluster: _Up())
    from click.testing import CliRunner

    from luminora_redis.cli import main

    result = CliRunner().invoke(main, [
        "listen", "--url", "redis://h:1/2", "--prefix", "app", "--buckets", "64",
        "--sweep-interval", "0.5", "--full-sweep-interval", "12", "--sweep-batch", "7",
        "--no-notifications",
        "--no-configure-notifications", "--hook", "json:dumps", "--name", "L1",
        "--log-level", "debug"])
    assert result.exit_code == 0, result.output
    assert seen == {"url": "redis://h:1/2", "cluster": False, "prefix": "app", "buckets": 64,
                    "on_archived": json.dumps, "notifications": False,
                    "configure_notifications": False, "sweep_interval": 0.5,
                    "full_sweep_interval": 12.0, "sweep_batch": 7,
                    "name": "L1", "observer": None}
    seen.clear()
    assert CliRunner().invoke(main, ["listen"]).exit_code == 0
    assert (seen["url"], seen["prefix"], seen["buckets"], seen["sweep_interval"],
            seen["full_sweep_interval"], seen["notifications"]) == (
        "redis://localhost:6379/0", "lr", None, 0.25, 30.0, True)
    for bad in (["--sweep-interval", "nan"], ["--metrics-port", "70000"],
                ["--log-level", "loud"], ["--buckets", "0"]):
        assert CliRunner().invoke(main, ["listen", *bad]).exit_code == 2, bad


class _Up:
    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass
