"""JSON Schemas generated from the pydantic models, and reference pages from the schemas.

Neither is written by hand; `calicc schema --check` (CI) fails when either is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from calicc.compiler.emit import dump_json, write_atomic
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.reference import markdown_reference
from calicc.contract.manifest import NodeManifest

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


REFERENCES = {
    "cluster.schema.json": (
        "cluster-yaml.md",
        "cluster.yaml reference",
        "Every key of `cluster.yaml`: what `calicc build` reads. Unknown keys are errors. ICP "
        "config.yaml keys are accepted where they mean the same (`calico_ipip_mode`, "
        "`calico_tunnel_mtu`, `calico_ip_autodetection_method`); see ../cluster-yaml.md.",
    ),
    "node.schema.json": (
        "node-json.md",
        "node.json reference",
        "The node manifest a bundle holds (`rendered/nodes/<node>/node.json`): what the agent "
        "and the CNI plugin read. See ../rendered-tree.md for the tree around it.",
    ),
}


def reference_texts(schemas: dict[str, str]) -> dict[str, str]:
    """Return {file name: Markdown} of the reference page of each schema."""
    return {
        page: markdown_reference(json.loads(schemas[name]), title, intro)
        for name, (page, title, intro) in REFERENCES.items()
    }


def write_schemas(out: Path, docs: Path, check: bool = False) -> list[Path]:
    """Write stale schema files to `out` and their reference pages to `docs`.

    With `check`, only report them. Return the stale paths.
    """
    schemas = schema_texts()
    wanted = {out / name: text for name, text in schemas.items()}
    wanted |= {docs / name: text for name, text in reference_texts(schemas).items()}
    stale = []
    for path, text in sorted(wanted.items()):
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            write_atomic(path, text)
    return stale
