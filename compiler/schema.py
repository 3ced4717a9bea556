"""JSON Schemas generated from the pydantic models (never written by hand)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from calicc.compiler.emit import dump_json, write_atomic
from calicc.compiler.model.manifest import NodeManifest
from calicc.compiler.model.spec import ClusterSpec

SCHEMAS: dict[str, type[BaseModel]] = {
    "cluster.schema.json": ClusterSpec,
    "node.schema.json": NodeManifest,
}


def schema_texts() -> dict[str, str]:
    """Return {file name: JSON text} for every schema."""
    texts = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema(by_alias=False)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://calicc.dev/schemas/{name}"
        texts[name] = dump_json(schema)
    return texts


def write_schemas(out: Path, check: bool = False) -> list[Path]:
    """Write stale schema files (or, with check, only report them); return their paths."""
    stale = []
    for name, text in sorted(schema_texts().items()):
        path = out / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            write_atomic(path, text)
    return stale
