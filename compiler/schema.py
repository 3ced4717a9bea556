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
from calicc.contract.manifest import ClusterIndex, ClusterPolicy, ClusterSettings, NodeFile

SCHEMAS: dict[str, type[BaseModel]] = {
    "cluster.schema.json": ClusterSpec,
    "node.schema.json": NodeFile,
    "cluster-settings.schema.json": ClusterSettings,
    "cluster-policy.schema.json": ClusterPolicy,
    "cluster-index.schema.json": ClusterIndex,
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
        "The node manifest a bundle holds (`rendered/nodes/<node>/node.json`): the node's own "
        "facts and the files it was built with. The agent assembles it with the cluster part "
        "(`rendered/cluster/`); see ../rendered-tree.md for the tree around it.",
    ),
    "cluster-settings.schema.json": (
        "cluster-json.md",
        "cluster/cluster.json reference",
        "The cluster settings every node's files follow from (`rendered/cluster/cluster.json`): "
        "the pools. node.json names it with its digest. See ../rendered-tree.md.",
    ),
    "cluster-policy.schema.json": (
        "policy-json.md",
        "cluster/policy.json reference",
        "Policy bindings and ipsets (`rendered/cluster/policy.json`), shared by every node. The "
        "node-address set lists no members here: they come from `cluster/nodes.tsv`.",
    ),
    "cluster-index.schema.json": (
        "cluster-index-json.md",
        "cluster/index.json reference",
        "The digest and install path of every other file of the cluster part "
        "(`rendered/cluster/index.json`): the agent checks each cluster file against it.",
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
