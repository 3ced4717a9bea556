"""Reference pages generated from JSON Schemas."""

from __future__ import annotations

from calicc.compiler.reference import markdown_reference
from calicc.compiler.schema import reference_texts, schema_texts

SCHEMA = {
    "title": "Top",
    "description": "The root.",
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 9, "description": "its name"},
        "mode": {"$ref": "#/$defs/Mode", "default": "A"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "default": []},
    },
    "$defs": {
        "Item": {"type": "object", "properties": {"port": {"type": "integer", "maximum": 9}}},
        "Mode": {"enum": ["A", "B|C"], "type": "string"},
        "Unused": {"type": "object", "properties": {}},
    },
}


def test_rows_link_definitions_in_the_order_reached() -> None:
    text = markdown_reference(SCHEMA, "T", "intro")
    assert "| `name` | string | required | its name (at most 9 characters) |" in text
    assert '| `mode` | [Mode](#mode) | `"A"` |  |' in text
    assert "| `items` | list of [Item](#item) | `[]` |  |" in text
    assert text.index("## Item") < text.index("## Mode")  # a walk in key order
    assert "## Unused" not in text
    assert "One of: `A`, `B|C`" in text


def test_every_schema_has_a_page_naming_each_top_level_key() -> None:
    schemas = schema_texts()
    pages = reference_texts(schemas)
    assert set(pages) == {
        "cluster-yaml.md",
        "node-json.md",
        "cluster-json.md",
        "policy-json.md",
        "cluster-index-json.md",
    }
    for key in ("network_cidr", "nodes", "bird_snippets"):
        assert f"| `{key}` |" in pages["cluster-yaml.md"]
    for page, key in (("node-json.md", "files"), ("cluster-json.md", "pools")):
        assert f"| `{key}` |" in pages[page]
    assert "| `policies` |" in pages["policy-json.md"]
