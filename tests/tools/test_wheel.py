"""calicc as a user gets it: the wheel built from the checkout, installed into a fresh venv
(Debian's python3 -m venv, no system site-packages) in a temporary directory, and every command
run from there with the working directory outside the checkout and no PYTHONPATH: build,
validate, schema, inventory, diff, push onto lab namespaces, lab up/check/down and the CNI
install. Nothing may be found through the checkout.

Slow (the wheel, the venv, a lab): about a minute and a half with a current wheelhouse
(tests/tools/wheelkit.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.compiler.build import build, load_cluster
from calicc.lab.down import lab_down
from calicc.lab.network import lab_namespaces
from tests.conftest import EXAMPLES, ROOT, need_root, need_tool
from tests.support.labkit import short_base
from tests.support.pushlab import MakeNs, blackholes, lab_hosts, stop_birds, write_inventory
from tests.support.wheelkit import VENV_PYTHON, Installed, build_wheel, install

pytestmark = [pytest.mark.tools]
EXAMPLE = EXAMPLES / "minikube-ipip"
PROBE = """
import importlib, importlib.resources, json, pkgutil, sys
import calicc
names = [m.name for m in pkgutil.walk_packages(calicc.__path__, "calicc.")]
for name in names:
    if not name.endswith("__main__"):
        importlib.import_module(name)
files = [getattr(m, "__file__", None) or "" for n, m in sorted(sys.modules.items())
         if n == "calicc" or n.startswith("calicc.")]
data = [str(importlib.resources.files(p)) for p in ("calicc.templates", "calicc.playbooks")]
print(json.dumps({"path": sys.path, "files": files, "data": data, "modules": names}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not Path(VENV_PYTHON).exists():
        pytest.skip(f"needs Debian's {VENV_PYTHON}")
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    return install(build_wheel(base / "dist"), base)


def copy_example(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLE / name, dest / name)
    return dest / "cluster.yaml"


def package_files(folder: str) -> set[str]:
    """Return the files of a top-level folder as the wheel names them (calicc/<folder>/...)."""
    return {
        f"calicc/{p.relative_to(ROOT).as_posix()}"
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_holds_one_package_and_its_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        (top,) = (n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top).decode().split() == ["calicc"]
    assert {n.split("/")[0] for n in names} == {"calicc", top.split("/")[0]}
    templates = {n for n in package_files("templates") if n.endswith(".j2")}
    assert templates
    assert templates <= names
    assert package_files("playbooks") <= names
    assert "calicc/agent/cni/thin.c" in names


def test_nothing_is_found_through_the_checkout(installed: Installed) -> None:
    probe = installed.run(installed.python, "-c", PROBE)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert "calicc.compiler.push" in found["modules"]
    assert "calicc.agent.cni.main" in found["modules"]
    assert (Path(found["data"][1]) / "connection_plugins/calicc_netns.py").is_file()
    places = [p for p in (*found["path"], *found["files"], *found["data"]) if p]
    assert not [p for p in places if Path(p).resolve().is_relative_to(ROOT)]
    site = installed.venv.resolve()
    assert all(Path(p).resolve().is_relative_to(site) for p in (*found["files"], *found["data"]))


def test_build_validate_schema_inventory(installed: Installed, tmp_path: Path) -> None:
    cluster = copy_example(installed.work / "build")
    built = installed.run("build", str(cluster))
    assert built.returncode == 0, built.stderr
    reference = load_cluster(copy_example(tmp_path / "reference"))
    build(reference, tmp_path / "reference/rendered")  # the checkout's own build of the same
    assert tree(cluster.parent / "rendered") == tree(tmp_path / "reference/rendered")
    checked = installed.run("validate", str(cluster))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    schemas = installed.work / "schema-out/schemas"
    written = installed.run("schema", "-o", str(schemas))
    assert written.returncode == 0, written.stderr
    assert {p.name for p in schemas.iterdir()} == {p.name for p in (ROOT / "schemas").iterdir()}
    for path in schemas.iterdir():
        assert json.loads(path.read_text())
    inventory = installed.run("inventory", str(cluster))
    assert inventory.returncode == 0, inventory.stderr
    for node in ("minikube", "minikube-m02", "minikube-m03"):
        assert f"{node}:" in inventory.stdout


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def git(repo: Path, *args: str) -> None:
    ident = ["-c", "user.name=calicc test", "-c", "user.email=test@calicc.invalid"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)


def test_diff_between_two_builds(installed: Installed) -> None:
    need_tool("git")
    cluster = copy_example(installed.work / "repo")
    repo = cluster.parent
    git(repo, "init", "--quiet")
    for message in ("three nodes", "a fourth node"):
        if message == "a fourth node":
            extra = "  - name: minikube-m04\n    address: 192.168.49.5/24\n"
            cluster.write_text(cluster.read_text() + extra)
        built = installed.run("build", str(cluster))
        assert built.returncode == 0, built.stderr
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", message)
    diff = installed.run("diff", "--repo", str(repo), "--from", "HEAD~1", "--to", "HEAD")
    assert diff.returncode == 0, diff.stderr
    assert "minikube-m04" in diff.stdout


def test_push_onto_lab_namespaces(installed: Installed, make_ns: MakeNs) -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset", "bird", "birdc")
    cluster = copy_example(installed.work / "push")
    built = installed.run("build", str(cluster))
    assert built.returncode == 0, built.stderr
    inputs = load_cluster(cluster)
    hosts = lab_hosts(inputs, make_ns, installed.work / "push-roots", installed.calicc)
    inventory = write_inventory(inputs, hosts, installed.work / "push-inventory.yaml")
    try:
        pushed = installed.run("push", str(cluster), "-i", str(inventory))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert "[1] minikube: changed: Run calicc apply" in pushed.stdout
        for host in hosts.values():
            assert "blackhole 10.244." in blackholes(host.netns)
    finally:
        stop_birds([Path(h.root) for h in hosts.values()])


@pytest.fixture
def lab_name() -> Iterator[str]:
    need_root()
    need_tool("bird", "birdc", "ping")
    name = f"w{uuid.uuid4().hex[:7]}"
    yield name
    assert lab_namespaces(name) == []


def test_lab_up_check_down(installed: Installed, lab_name: str) -> None:
    cluster = copy_example(installed.work / "lab")
    with short_base() as base:
        where = ["--name", lab_name, "--base", str(base)]
        try:
            up = installed.run("lab", "up", str(cluster), *where)
            assert up.returncode == 0, up.stdout + up.stderr
            check = installed.run("lab", "check", str(cluster), *where, "--skip-policy")
            assert check.returncode == 0, check.stdout + check.stderr
        finally:
            down = installed.run("lab", "down", str(cluster), *where)
            if lab_namespaces(lab_name):  # the installed lab down failed: clean up anyway
                lab_down(lab_name, base / lab_name)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_cni_install_and_a_launchers_version_answer(
    installed: Installed, tmp_path: Path, native: bool
) -> None:
    if native and shutil.which("cc") is None:
        pytest.skip("no C compiler for the native launcher")
    root = tmp_path / "root"
    script = (
        "import sys; from pathlib import Path; from calicc.agent.cni.install import "
        "install_plugins; install_plugins(Path(sys.argv[1]), native=sys.argv[2] == 'native')"
    )
    done = installed.run(installed.python, "-c", script, str(root), "native" if native else "-")
    assert done.returncode == 0, done.stderr
    launcher = root / "opt/cni/bin/calicc"
    assert launcher.read_bytes().startswith(b"\x7fELF") == native
    answer = subprocess.run(
        [str(launcher)],
        input=b'{"cniVersion": "1.0.0"}',
        env={"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]},
        capture_output=True,
        check=False,
        cwd="/",
    )
    assert answer.returncode == 0, answer.stderr
    assert "1.1.0" in json.loads(answer.stdout)["supportedVersions"]
