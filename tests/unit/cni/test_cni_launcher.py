"""The CNI launchers (agent/cni/thin.py and thin.c): the agent's socket, the CNI server they start
on demand without an agent (one per root, gone when idle or when the agent takes over), and the
direct standalone fallback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from calicc.agent.cni.install import cache_dir, install_plugins
from calicc.agent.cni.server import CniServer, server_running, socket_path, stop_on_demand
from tests.support.poll import wait_for


def launch(root: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    env = {"CNI_COMMAND": command, "PATH": os.environ["PATH"]}
    return subprocess.run(
        [str(root / "opt/cni/bin/calicc")],
        input=b'{"cniVersion": "1.1.0"}',
        env=env,
        capture_output=True,
        check=False,
        cwd="/",
    )


@pytest.fixture(params=[False, True], ids=["python", "native"])
def native(request: pytest.FixtureRequest) -> bool:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("needs Debian's /usr/bin/python3")
    if request.param and shutil.which("cc") is None:
        pytest.skip("no C compiler for the native launcher")
    return bool(request.param)


def test_launcher_uses_agent_socket_else_standalone(tmp_path: Path, native: bool) -> None:
    tmp_path = tmp_path / 'odd "root" é'  # quoted into the launcher as a string literal
    install_plugins(tmp_path, "/nonexistent/python", native)  # standalone mode cannot work
    assert (tmp_path / "opt/cni/bin/calicc").read_bytes().startswith(b"\x7fELF") == native
    assert launch(tmp_path, "VERSION").returncode != 0
    server = CniServer(tmp_path)
    server.start()
    try:
        assert oct(server.path.stat().st_mode & 0o777) == "0o600"
        served = launch(tmp_path, "VERSION")
        assert served.returncode == 0, served.stderr
        assert json.loads(served.stdout)["cniVersion"] == "1.1.0"
    finally:
        server.stop()
    install_plugins(tmp_path, sys.executable, native)
    alone = launch(tmp_path, "VERSION")
    assert alone.returncode == 0, alone.stderr
    assert "supportedVersions" in json.loads(alone.stdout)
    assert install_plugins(tmp_path, sys.executable, native) == []


def test_launcher_reports_a_broken_connection_as_try_again(tmp_path: Path, native: bool) -> None:
    install_plugins(tmp_path, "/nonexistent/python", native)
    path = tmp_path / "var/run/calicc/cni.sock"
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        broken = launch(tmp_path, "ADD")
        thread.join()
    assert broken.returncode == 11
    assert json.loads(broken.stdout)["code"] == 11


def servers(root: Path) -> list[int]:
    """Return the pids of the on-demand CNI servers serving `root`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"calicc.agent.cni.server" in args and os.fsencode(root) in args:
            found.append(int(pid))
    return found


def test_without_an_agent_one_server_starts_on_demand_and_serves_later_calls(
    tmp_path: Path, native: bool
) -> None:
    install_plugins(tmp_path, sys.executable, native)
    assert not socket_path(tmp_path).exists()
    first = launch(tmp_path, "VERSION")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["cniVersion"] == "1.1.0"
    assert server_running(tmp_path)
    [pid] = servers(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: launch(tmp_path, "VERSION"), range(16)))
    assert [a.returncode for a in answers] == [0] * 16
    assert servers(tmp_path) == [pid]
    assert oct(socket_path(tmp_path).stat().st_mode & 0o777) == "0o600"
    assert stop_on_demand(tmp_path)
    assert servers(tmp_path) == []
    assert not socket_path(tmp_path).exists()


def test_concurrent_first_calls_start_exactly_one_server(tmp_path: Path, native: bool) -> None:
    install_plugins(tmp_path, sys.executable, native)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: launch(tmp_path, "VERSION"), range(12)))
    assert [a.returncode for a in answers] == [0] * 12, [a.stdout for a in answers]
    assert len(servers(tmp_path)) == 1


def test_an_idle_server_removes_its_socket_and_exits(tmp_path: Path, native: bool) -> None:
    install_plugins(tmp_path, sys.executable, native, idle=1)
    assert launch(tmp_path, "VERSION").returncode == 0
    assert server_running(tmp_path)
    wait_for(lambda: not server_running(tmp_path), limit=10, what="the idle server to exit")
    assert not socket_path(tmp_path).exists()
    assert launch(tmp_path, "VERSION").returncode == 0  # the next call starts a new one
    assert server_running(tmp_path)


def test_the_agent_takes_the_socket_over_and_the_on_demand_server_leaves(
    tmp_path: Path, native: bool
) -> None:
    install_plugins(tmp_path, "/nonexistent/python", native)  # only a live server can answer
    on_demand = subprocess.Popen(
        [sys.executable, "-I", "-m", "calicc.agent.cni.server", "--root", tmp_path, "--idle", "60"]
    )
    try:
        wait_for(lambda: socket_path(tmp_path).exists(), limit=10, what="the server's socket")
        agent = CniServer(tmp_path)
        agent.start()
        try:
            assert on_demand.wait(10) == 0
            assert agent.owns_socket()
            assert launch(tmp_path, "VERSION").returncode == 0
        finally:
            agent.stop()
        assert not socket_path(tmp_path).exists()
    finally:
        if on_demand.poll() is None:
            on_demand.kill()
            on_demand.wait()


def test_a_second_server_leaves_the_socket_to_the_first(tmp_path: Path) -> None:
    command = [sys.executable, "-I", "-m", "calicc.agent.cni.server", "--root", str(tmp_path)]
    first = subprocess.Popen([*command, "--idle", "60"])
    try:
        wait_for(lambda: socket_path(tmp_path).exists(), limit=10, what="the server's socket")
        before = socket_path(tmp_path).stat().st_ino
        second = subprocess.run([*command, "--idle", "60"], timeout=30, check=False)
        assert second.returncode == 0
        assert socket_path(tmp_path).stat().st_ino == before
        assert first.poll() is None
    finally:
        first.terminate()
        assert first.wait(10) == 0
    assert not socket_path(tmp_path).exists()


def test_idle_zero_runs_the_plugin_directly(tmp_path: Path, native: bool) -> None:
    install_plugins(tmp_path, sys.executable, native, idle=0)
    answer = launch(tmp_path, "VERSION")
    assert answer.returncode == 0, answer.stderr
    assert not server_running(tmp_path)
    assert not socket_path(tmp_path).exists()


def test_a_server_that_cannot_start_falls_back_at_once(tmp_path: Path, native: bool) -> None:
    install_plugins(tmp_path, "/nonexistent/python", native)
    start = time.monotonic()
    failed = launch(tmp_path, "VERSION")
    assert failed.returncode != 0
    assert time.monotonic() - start < 5  # not the launcher's 10 s wait for a server
    assert not server_running(tmp_path)


def test_one_compiled_launcher_serves_every_root_and_both_plugins(tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler for the native launcher")
    first, second = tmp_path / "node-a", tmp_path / "node b é"
    install_plugins(first, sys.executable)
    compiled = sorted(cache_dir().iterdir())
    install_plugins(second, sys.executable)
    assert sorted(cache_dir().iterdir()) == compiled  # no second compile
    binaries = {
        (root / "opt/cni/bin" / name).read_bytes()
        for root in (first, second)
        for name in ("calicc", "calicc-ipam")
    }
    assert len(binaries) == 1
    for root in (first, second):  # each finds its own root: its own on-demand server answers
        answer = launch(root, "VERSION")
        assert answer.returncode == 0, answer.stderr
        assert socket_path(root).exists()
