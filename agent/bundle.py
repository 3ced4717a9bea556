"""Read a node bundle: node.json, checked against its version and every listed file's digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agent import AgentError
from compiler.model.manifest import BUNDLE_VERSION, NodeManifest

MANIFEST = "node.json"
IPTABLES_FILE = "iptables/iptables.rules"


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory, manifest and the digest of node.json itself."""

    directory: Path
    manifest: NodeManifest
    digest: str

    def text(self, rel: str) -> str:
        """Return the text of a listed bundle file (digest already verified)."""
        return (self.directory / rel).read_text(encoding="utf-8")

    def has(self, rel: str) -> bool:
        """Return whether the manifest lists `rel`."""
        return rel in self.manifest.files


def file_digest(data: bytes) -> str:
    """Return the digest in the compiler's format ("sha256:<hex>")."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse(path: Path, raw: bytes) -> NodeManifest:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AgentError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    version = data.get("bundle_version") if isinstance(data, dict) else None
    if version != BUNDLE_VERSION:
        raise AgentError(
            f"{path}: bundle_version {version!r} is not one this agent knows "
            f"(it reads bundle_version {BUNDLE_VERSION}); rebuild with a matching calicc"
        )
    try:
        return NodeManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise AgentError(f"{path}: {field}: {first['msg']} ({exc.error_count()} problems)") from exc


def _verify_files(directory: Path, manifest: NodeManifest) -> None:
    for rel, entry in sorted(manifest.files.items()):
        path = directory / rel
        if not path.is_file():
            raise AgentError(f"{directory / MANIFEST}: files.{rel}: {path} is missing")
        actual = file_digest(path.read_bytes())
        if actual != entry.digest:
            raise AgentError(
                f"{path}: digest {actual} does not match {entry.digest} in node.json "
                "(the bundle was changed after the build; rebuild or recopy it)"
            )


def load_bundle(directory: Path) -> Bundle:
    """Read and verify the bundle in `directory`.

    Raises:
        AgentError: node.json is missing, invalid, of an unknown bundle_version, or a listed
            file is missing or differs from its digest.
    """
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AgentError(f"{path}: cannot read the bundle manifest: {exc.strerror}") from exc
    manifest = _parse(path, raw)
    _verify_files(directory, manifest)
    return Bundle(directory=directory, manifest=manifest, digest=file_digest(raw))
