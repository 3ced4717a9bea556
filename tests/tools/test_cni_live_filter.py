"""The agent's cached filter table (agent/cni/live_filter.py) against real iptables in a netns:
computed updates equal what iptables-save then prints, reads reuse the text while the nftables
generation holds, and a change by anyone else forces a new iptables-save."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.agent import drift
from calicc.agent.cni.live_filter import FilterCache, Snapshot, iptables_backend
from calicc.agent.cni.netns import in_netns
from calicc.agent.cni.rtnl import nft_generation
from calicc.contract.endpoint import (
    add_restore,
    del_restore,
    endpoint_rules,
    policies_for_pod,
)
from calicc.contract.names import IPTABLES_FILE
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.cni import compiled
from tests.tools.treekit import role_text

pytestmark = [pytest.mark.root, pytest.mark.tools]
IFACE = "cali0123456789a"
DISPATCH = ("-A cali-from-wl-dispatch ", "-A cali-to-wl-dispatch ")


def shape(text: str) -> tuple[set[str], dict[str, int], list[str]]:
    """Declared chains, rules per chain, the dispatch rules in order (what ADD and DEL read).

    iptables-save orders chains its own way and prints endpoint rules in its canonical form.
    """
    declared = {ln.split()[0] for ln in text.splitlines() if ln.startswith(":")}
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("-A "):
            counts[line.split()[1]] = counts.get(line.split()[1], 0) + 1
    dispatch = [ln for ln in text.splitlines() if ln.startswith(DISPATCH)]
    return declared, counts, dispatch


def test_cache_follows_own_restores_and_rereads_after_foreign_changes(
    make_ns: Callable[[str], str], tmp_path: Path
) -> None:
    need_tool("iptables-restore", "iptables-save", "ipset")
    if iptables_backend() != "nft":
        pytest.skip("the cache needs the nf_tables backend's generation id")
    node = make_ns("nd")
    files = compiled(tmp_path).files
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    rules_file = role_text(files, "node-1", IPTABLES_FILE)
    ns_run(node, ["iptables-restore", "--noflush"], input_text=rules_file)
    path = f"/var/run/netns/{node}"
    saves: list[str] = []

    def save() -> str:
        saves.append(ns_run(node, ["iptables-save", "-t", "filter"]).stdout)
        return saves[-1]

    cache = FilterCache(enabled=True)

    def read() -> Snapshot:
        return in_netns(path, lambda: cache.read(save))

    assert in_netns(path, nft_generation) == in_netns(path, drift.nft_generation)
    first = read()
    assert read() == first
    assert len(saves) == 1
    endpoint = endpoint_rules(IFACE, policies_for_pod((), "default", {}, {}))
    for adding in (True, False):
        live = read()
        text = add_restore(endpoint, live.text) if adding else del_restore(IFACE, live.text)
        assert text is not None
        ns_run(node, ["iptables-restore", "--noflush", "--wait"], input_text=text)
        in_netns(path, lambda live=live, text=text: cache.restored(live, text))
        computed = read()
        assert len(saves) == 1, "our own restore must not force a new iptables-save"
        real = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
        assert shape(computed.text) == shape(real)
        assert (f"-A cali-from-wl-dispatch -i {IFACE} " in real) == adding
    ns_run(node, ["iptables", "-N", "someone-else"])
    assert ":someone-else" in read().text
    assert len(saves) == 2
