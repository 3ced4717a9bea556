"""Every example's fresh build equals its committed tree, byte for byte.

The committed trees are examples/<name>/rendered (with cluster.lock.yaml beside the input);
tests/golden/<name> links to each. Regenerate with
`pytest tests/unit/compiler/test_golden.py --update-goldens`, then review `git diff`.
"""

from __future__ import annotations

import difflib
import os

import pytest

from calicc.compiler.build import build, compile_cluster
from tests.support.examples import GOLDEN, example_names, load_example, tree

HINT = (
    "if this output change is intended, run `pytest tests/unit/compiler/test_golden.py "
    "--update-goldens` and review `git diff examples tests/golden` before committing"
)


def _diff(name: str, rel: str, want: str, got: str) -> str:
    lines = difflib.unified_diff(
        want.splitlines(keepends=True), got.splitlines(keepends=True), f"golden/{rel}", f"new/{rel}"
    )
    return f"{name}: {rel} differs:\n{''.join(list(lines)[:60])}"


@pytest.mark.parametrize("name", example_names())
def test_example_matches_golden(name: str, update_goldens: bool) -> None:
    inputs = load_example(name)
    rendered = inputs.base_dir / "rendered"
    if update_goldens:
        build(inputs, rendered)
        link = GOLDEN / name
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(rendered, link.parent))
        print(f"updated {rendered}; review `git diff` before committing")
    compiled = compile_cluster(inputs)
    golden = tree(GOLDEN / name)
    assert golden, f"no golden tree for example {name}; {HINT}"
    missing = sorted(set(golden) - set(compiled.files))
    extra = sorted(set(compiled.files) - set(golden))
    assert not missing, f"{name}: files missing from the build: {missing}; {HINT}"
    assert not extra, f"{name}: files not in the golden tree: {extra}; {HINT}"
    diffs = [
        _diff(name, rel, golden[rel], compiled.files[rel])
        for rel in sorted(golden)
        if golden[rel] != compiled.files[rel]
    ]
    assert not diffs, "\n".join(diffs[:3]) + f"\n({len(diffs)} files differ) {HINT}"
    lock = inputs.lock_path.read_text(encoding="utf-8")
    assert lock == compiled.lock_text, f"{name}: cluster.lock.yaml is stale; {HINT}"


def test_goldens_have_no_orphans() -> None:
    orphans = sorted(p.name for p in GOLDEN.iterdir() if p.name not in example_names())
    assert not [o for o in orphans if o != "errors"], f"golden trees without example: {orphans}"
