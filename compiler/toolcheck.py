"""Syntax checks of rendered artifacts with the real tools, where they are installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

INCLUDE = re.compile(r'^\s*include "([^"]+)";', re.MULTILINE)


def bird_parse(config_text: str) -> str | None:
    """Parse a bird.conf with `bird -p`; return the error text or None when it parses.

    Secret includes are satisfied with a placeholder password, as the agent writes them.
    """
    bird = shutil.which("bird")
    if bird is None:
        return None
    with tempfile.TemporaryDirectory(prefix="calicc-bird-") as tmp:
        conf = Path(tmp) / "bird.conf"
        conf.write_text(config_text, encoding="utf-8")
        for include in INCLUDE.findall(config_text):
            target = Path(tmp) / include
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text('password "placeholder-for-syntax-check";\n', encoding="utf-8")
        result = subprocess.run(
            [bird, "-p", "-c", str(conf)], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip().replace(str(conf), "bird.conf")
    return None


def check_with_tools(files: dict[str, str]) -> list[str]:
    """Check every artifact whose tool exists; return one line per failure."""
    failures = []
    for rel in sorted(files):
        if rel.endswith("bird/bird.conf"):
            error = bird_parse(files[rel])
            if error:
                failures.append(f"{rel}: {error}")
    return failures
