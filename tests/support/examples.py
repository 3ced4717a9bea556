"""Discovery of examples/ and how each one is loaded."""

from __future__ import annotations

from pathlib import Path

from calicc.compiler.build import Inputs, load_cluster
from calicc.compiler.icp import load_icp
from tests.conftest import EXAMPLES, ROOT

GOLDEN = ROOT / "tests" / "golden"


def example_names() -> list[str]:
    return sorted(
        p.name
        for p in EXAMPLES.iterdir()
        if (p / "cluster.yaml").exists() or (p / "config.yaml").exists()
    )


def load_example(name: str) -> Inputs:
    base = EXAMPLES / name
    if (base / "cluster.yaml").exists():
        return load_cluster(base / "cluster.yaml")
    return load_icp(base / "config.yaml", base / "hosts")


def tree(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {
        p.relative_to(path).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }
