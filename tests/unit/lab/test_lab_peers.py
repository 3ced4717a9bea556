from __future__ import annotations

from pathlib import Path

from calicc.lab.agent import node_root
from calicc.lab.peers import STATE_DIR, mirror, share_endpoints


def records(root: Path, node: str) -> Path:
    path = node_root(root, node) / STATE_DIR / "endpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_every_node_sees_every_other_nodes_records(tmp_path: Path) -> None:
    (records(tmp_path, "a") / "cali1.json").write_text('{"address": "10.0.0.1"}')
    (records(tmp_path, "b") / "cali2.json").write_text('{"address": "10.0.1.1"}')
    share_endpoints(tmp_path, ["a", "b", "c"])
    peers_of_c = node_root(tmp_path, "c") / STATE_DIR / "peers"
    assert (peers_of_c / "a" / "endpoints" / "cali1.json").read_text() == '{"address": "10.0.0.1"}'
    assert (peers_of_c / "b" / "endpoints" / "cali2.json").exists()
    assert not (node_root(tmp_path, "a") / STATE_DIR / "peers" / "a").exists()  # not itself


def test_vanished_records_are_removed_and_temp_files_not_left(tmp_path: Path) -> None:
    source = records(tmp_path, "a")
    (source / "cali1.json").write_text("{}")
    target = tmp_path / "mirror"
    mirror(source, target)
    (source / "cali1.json").unlink()
    (source / "cali3.json").write_text("{}")
    mirror(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["cali3.json"]


def test_owners_without_records_make_nothing_and_vanished_ones_are_cleared(
    tmp_path: Path,
) -> None:
    (records(tmp_path, "a") / "cali1.json").write_text("{}")
    for node in ("b", "c"):
        node_root(tmp_path, node).mkdir(parents=True)
    share_endpoints(tmp_path, ["a", "b", "c"])
    assert not (node_root(tmp_path, "c") / STATE_DIR / "peers" / "b").exists()
    (records(tmp_path, "a") / "cali1.json").unlink()  # a's last pod went away
    share_endpoints(tmp_path, ["a", "b", "c"])
    for reader in ("b", "c"):
        held = node_root(tmp_path, reader) / STATE_DIR / "peers" / "a" / "endpoints"
        assert list(held.iterdir()) == []
