"""The wheel carries the Lua scripts: build it, install it into a clean venv,
and load every script from the installed package. The sdist carries what its tests
and README use, and both carry the version from ``luminora_redis/_version.py``."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from luminora_redis import __version__
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
    assert wheel.name.startswith(f"luminora_redis-{__version__}-")
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


def test_the_sdist_holds_what_its_tests_and_readme_use(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "hatchling", "build", "--target", "sdist",
                    "--directory", str(tmp_path)], check=True, capture_output=True, cwd=ROOT)
    (sdist,) = tmp_path.glob("luminora_redis-*.tar.gz")
    top = f"luminora_redis-{__version__}"
    assert sdist.name == f"{top}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    for wanted in ("benchmarks/soak.py", "benchmarks/soak_check.py", "docs/listener.md",
                   "examples/chat_server/app.py", "tests/conftest.py", ".ci/lowest.txt",
                   "setup.sh", "README.md", "pyproject.toml", "luminora_redis/_version.py"):
        assert wanted in names, wanted
    lua = {path.relative_to(ROOT).as_posix() for path in (ROOT / "lua").rglob("*") if path.is_file()}
    assert lua and lua <= names
