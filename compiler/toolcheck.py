"""Syntax checks of rendered artifacts with the real tools, where they are installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from calicc.contract.names import BIRD_CONFIG
from calicc.contract.services import SERVICE_INCLUDES as SERVICE_INCLUDES_BY_FAMILY

INCLUDE = re.compile(r'^\s*include "([^"]+)";', re.MULTILINE)
SECRET_INCLUDE = re.compile(r"secrets/[A-Za-z0-9][A-Za-z0-9_.-]*\.conf")  # compiler/peering.py
SERVICE_INCLUDES = frozenset(SERVICE_INCLUDES_BY_FAMILY.values())  # contract/services.py
Checker = Callable[[str], str | None]


def bird_parse(config_text: str) -> str | None:
    """Parse a bird.conf with `bird -p`; return the error text or None when it parses.

    The compiler's own secret includes (`secrets/NAME.conf`) are satisfied with a placeholder
    password inside the scratch directory, as the agent writes them; any other include is left
    for BIRD to report, so nothing is ever written outside the scratch directory.
    """
    bird = shutil.which("bird")
    if bird is None:
        return None
    with tempfile.TemporaryDirectory(prefix="calicc-bird-") as tmp:
        conf = Path(tmp) / "bird.conf"
        conf.write_text(config_text, encoding="utf-8")
        for include in INCLUDE.findall(config_text):
            service = include in SERVICE_INCLUDES  # the agent's Local /32s: none is valid
            if not (service or SECRET_INCLUDE.fullmatch(include)):
                continue
            target = Path(tmp) / include
            target.parent.mkdir(parents=True, exist_ok=True)
            text = "" if service else 'password "placeholder-for-syntax-check";\n'
            target.write_text(text, encoding="utf-8")
        result = subprocess.run(
            [bird, "-p", "-c", str(conf)], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip().replace(str(conf), "bird.conf")
    return None


def bash_parse(script: str) -> str | None:
    """Parse a shell script with `bash -n` (no command runs); return the error or None."""
    bash = shutil.which("bash")
    if bash is None:
        return None
    result = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True, check=False)
    return result.stderr.strip() or None if result.returncode else None


def json_parse(text: str) -> str | None:
    """Parse a JSON document; return the error or None."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    return None


CHECKERS: dict[str, Checker] = {  # a file's name, or (starting with ".") how its name ends
    BIRD_CONFIG: bird_parse,  # nodes/<node>/bird.conf
    ".sh": bash_parse,  # cluster/routes.sh
    ".json": json_parse,  # node.json, cluster/cluster.json, policy.json, index.json
    ".conflist": json_parse,  # cluster/cni/mtu-<MTU>.conflist
}


def checkers_of(rel: str) -> list[Checker]:
    """Return the checkers of the file at `rel` (by its name; cluster/sysctl/*.conf has none)."""
    name = rel.rsplit("/", 1)[-1]
    return [
        checker
        for key, checker in CHECKERS.items()
        if (name.endswith(key) if key.startswith(".") else name == key)
    ]


def check_with_tools(files: dict[str, str]) -> list[tuple[str, str]]:
    """Check every artifact whose tool exists; return (file, error) per failure.

    Only checks that change nothing run here (`bird -p`, `bash -n`, JSON parsing); the
    iptables and ipset files are proved in scratch namespaces by the tests.
    """
    failures = []
    for rel in sorted(files):
        for checker in checkers_of(rel):
            error = checker(files[rel])
            if error:
                failures.append((rel, error))
    return failures
