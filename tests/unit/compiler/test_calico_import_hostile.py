"""`calicc import` on exports with any field of the wrong type: an error or a report, no crash.

Every spec field (and every field one level below) of every exported resource is replaced in
turn by values of other types; the import must either succeed or raise calicc's own error.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.calico_import import run
from calicc.compiler.calico_import.run import import_calico
from calicc.compiler.errors import CaliccError
from calicc.compiler.lock import Lock, SafeDumper

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calico_import"
ODD_VALUES: tuple[Any, ...] = (None, True, "::", [{}], [[1]], {"a": [1]})


def _items(data: Any) -> list[dict[str, Any]]:
    """Return the resources of a fixture's data (a List, or a sequence of Lists)."""
    lists = data if isinstance(data, list) else [data]
    return [item for each in lists for item in each["items"]]


def _mutations(data: Any) -> Iterator[tuple[str, Any]]:
    """Yield (what was changed, the data with one field replaced): each kind's field once."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for index, item in enumerate(_items(data)):
        spec = item.get("spec") or {}
        paths = [(key,) for key in spec]
        paths += [(k, sub) for k, v in spec.items() if isinstance(v, dict) for sub in v]
        for path in paths:
            if (item["kind"], path) in seen:
                continue
            seen.add((item["kind"], path))
            for value in ODD_VALUES:
                mutated = copy.deepcopy(data)
                target = _items(mutated)[index]["spec"]
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = value
                yield f"{item['kind']} {item['metadata']['name']} {path}={value!r}", mutated


def test_odd_values_in_any_field_are_errors_or_reported_never_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the mapping is under test, not the build: the final planning step (its own checks)
    # is replaced by an empty lock, which keeps a thousand imports to a few seconds
    monkeypatch.setattr(run, "planned_lock", lambda files: Lock())
    crashes = []
    for name in ("calico.yaml", "ipam.yaml"):
        original = yaml.safe_load((FIXTURES / name).read_text())
        others = [FIXTURES / n for n in ("calico.yaml", "ipam.yaml") if n != name]
        for what, mutated in _mutations(original):
            path = tmp_path / name
            path.write_text(yaml.dump(mutated, Dumper=SafeDumper))
            try:
                import_calico([path, *others])
            except CaliccError:
                continue
            except Exception as exc:  # what the test looks for
                crashes.append(f"{what}: {type(exc).__name__}: {exc}")
    assert not crashes, "\n".join(crashes[:20])
