"""Shared fixtures: golden-file updating, root-only network namespaces, tool detection."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.lab.netns import ns_add, ns_delete

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SERVER_LOCK = "var/run/calicc/cni-server.lock"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden and examples/*/rendered from a fresh build; review git diff",
    )


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point calicc's user cache (no-op build records) at a temporary directory.

    Set in the environment, so every calicc the tests start inherits it; the user's own
    ~/.cache/calicc is never read or written by a test.
    """
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def no_cni_server_left(tmp_path: Path) -> Iterator[None]:
    """Stop the on-demand CNI servers that a test's launchers started under its tmp_path.

    A launcher that finds no agent starts one (agent/cni/server.py) that would otherwise stay
    for its idle time; removing its socket makes it answer what is queued and exit.
    """
    yield
    locks = [p for depth in range(4) for p in tmp_path.glob("*/" * depth + SERVER_LOCK)]
    if locks:
        from calicc.agent.cni.server import stop_on_demand

        for lock in locks:
            assert stop_on_demand(lock.parents[3]), f"CNI server under {lock.parents[3]} stayed"


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(
        request.config.getoption("--update-goldens") or os.environ.get("CALICC_UPDATE_GOLDENS")
    )


def is_root() -> bool:
    return os.geteuid() == 0


def need_root() -> None:
    if not is_root():
        pytest.skip("needs root for network namespaces")


def need_tool(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")


@pytest.fixture
def make_ns() -> Iterator[object]:
    """Factory of throwaway namespaces named calicc-t-<random>-<suffix>; all removed after."""
    need_root()
    created: list[str] = []
    tag = uuid.uuid4().hex[:6]

    def factory(suffix: str) -> str:
        name = f"calicc-t-{tag}-{suffix}"
        ns_add(name)
        created.append(name)
        return name

    yield factory
    for name in reversed(created):
        ns_delete(name)
