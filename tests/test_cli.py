"""The console script: the demo tells its story on a private redis-server and
leaves nothing running."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from conftest import require_redis_server


def test_the_demo_runs_on_a_private_server_and_stops_it() -> None:
    require_redis_server()
    result = subprocess.run([sys.executable, "-m", "luminora_redis.cli", "demo"],
                            capture_output=True, text=True, timeout=60, check=True)
    out = result.stdout
    port = int(re.search(r"private redis-server on redis://127\.0\.0\.1:(\d+)", out).group(1))
    assert "reason=idle, 4 messages kept" in out
    assert "returns False: it cannot be resurrected" in out
    assert "affinity 30 = acquaintance" in out and "= friend" in out
    assert out.rstrip().endswith("done.")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the private redis-server still runs"


def test_the_console_script_lists_its_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "luminora_redis.cli", "--help"],
                            capture_output=True, text=True, timeout=30, check=True)
    assert "demo" in result.stdout and "listen" in result.stdout


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["nonsense"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "luminora_redis.cli", *argv],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage:" in result.stderr
