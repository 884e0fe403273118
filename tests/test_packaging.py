"""The wheel carries the Lua scripts: build it, install it into a clean venv,
and load every script from the installed package."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from luminora_redis.core.scripts import script_sources

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

PROBE = """
import json, luminora_redis
from luminora_redis.core.scripts import lua_dir, script_sources
print(json.dumps({"package": luminora_redis.__file__, "lua": str(lua_dir()),
                  "scripts": script_sources()}))
"""


def test_the_wheel_ships_every_script(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("luminora_redis-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", purelib, str(wheel)], check=True, capture_output=True)
    # The clean venv borrows only the dependencies (redis, msgpack, pydantic) from this one;
    # they come after its own site-packages, so the installed wheel wins over the checkout.
    dependencies = [path for path in (*site.getsitepackages(), sysconfig.get_paths()["purelib"])]
    (Path(purelib) / "dependencies.pth").write_text("\n".join(dict.fromkeys(dependencies)) + "\n")
    result = subprocess.run([str(python), "-I", "-c", PROBE], check=True, capture_output=True,
                            text=True, cwd=tmp_path)
    found = json.loads(result.stdout)
    assert found["package"].startswith(purelib)
    assert found["lua"].startswith(purelib)
    assert found["scripts"] == script_sources()
