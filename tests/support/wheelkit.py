"""calicc's wheel, built from the checkout and installed into a fresh venv outside it.

The build runs on a copy of the checkout (pip writes build/ and *.egg-info into the source
tree, and other work shares this one). Build requirements and dependencies come from a
wheelhouse kept in the user's cache: pip installs from it offline, and only when something is
missing there does it download into it (from the indexes pip is configured with) and retry. A
run with a current wheelhouse needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
WHEELHOUSE = CACHE / "calicc" / "test-wheelhouse"
VENV_PYTHON = "/usr/bin/python3"  # Debian's, as scripts/setup uses
TOP_SKIP = {".git", ".venv", "tests", "examples", "bench", "build", "dist", ".hypothesis"}
ANY_SKIP = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
ENV_DROP = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the test interpreter's pip (the fresh venv gets none of its own)."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def from_wheelhouse(args: list[str], needs: list[str]) -> None:
    """Run `pip args` offline from the wheelhouse; on a miss, download `needs` and retry."""
    offline = [*args, "--no-index", "--find-links", str(WHEELHOUSE)]
    if pip(*offline).returncode == 0:
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    fetched = pip("download", "--quiet", "--dest", str(WHEELHOUSE), *needs)
    assert fetched.returncode == 0, fetched.stderr
    again = pip(*offline)
    assert again.returncode == 0, again.stdout + again.stderr


def copy_source(dest: Path) -> Path:
    """Copy what a wheel is built from (the checkout without tests, examples and caches)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == ROOT
        return {
            n
            for n in names
            if n in ANY_SKIP or (top and (n in TOP_SKIP or n.endswith(".egg-info")))
        }

    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    return dest


def build_wheel(out: Path) -> Path:
    """Build calicc's wheel from a copy of the checkout into `out`; return its path."""
    source = copy_source(out / "source")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    args = ["wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)]
    from_wheelhouse(args, requires)
    (wheel,) = out.glob("calicc-*.whl")
    return wheel


def requirements(wheel: Path) -> list[str]:
    """Return the wheel's run-time requirements (Requires-Dist without extras)."""
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(meta).decode().splitlines()
    return [
        line.removeprefix("Requires-Dist: ")
        for line in lines
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    ]


@dataclass(frozen=True)
class Installed:
    """A venv holding only the installed wheel, and a work directory outside the checkout."""

    venv: Path
    wheel: Path
    work: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin/python")

    @property
    def calicc(self) -> str:
        return str(self.venv / "bin/calicc")

    def env(self) -> dict[str, str]:
        """Return an environment with the venv first on PATH and nothing of the checkout."""
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        env["XDG_CACHE_HOME"] = str(self.work / "cache")  # calicc build's up-to-date cache
        return env

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the venv's calicc (or, when args[0] is a path, that program) outside the checkout."""
        command = list(args) if args[0].startswith("/") else [self.calicc, *args]
        return subprocess.run(
            command,
            cwd=cwd or self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )


def install(wheel: Path, base: Path) -> Installed:
    """Make a fresh venv under `base` (no system site-packages) and install `wheel` into it."""
    venv, work = base / "venv", base / "work"
    subprocess.run([VENV_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    work.mkdir()
    args = ["--python", str(venv / "bin/python"), "install", "--quiet", "--no-compile"]
    from_wheelhouse([*args, str(wheel)], requirements(wheel))
    return Installed(venv, wheel, work)
