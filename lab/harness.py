"""A BGP-only lab as a context manager: namespaces plus real daemons, always torn down.

The real-daemon tests use it; `calicc lab up` runs the same steps and records them instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.lab.bird import both_tables, wait_established, wait_routes
from calicc.lab.expect import lab_routes, needs_tunnel_device, own_block_leaks
from calicc.lab.network import create_topology, remove_namespaces
from calicc.lab.routing import (
    Daemons,
    add_tunnel_device,
    start_gobgp_reflectors,
    start_node_birds,
)
from calicc.lab.topology import Topology, plan_topology


@dataclass(frozen=True)
class BgpLab:
    """A running BGP lab: the plan, its namespaces and its daemons."""

    plan: ClusterPlan
    topo: Topology
    daemons: Daemons

    def wait_sessions(self) -> dict[str, dict[str, str]]:
        """Wait until every node's BGP sessions are Established; return them per node."""
        return {n: wait_established(d.sock) for n, d in sorted(self.daemons.birds.items())}

    def wait_block_routes(self, node: str) -> set[tuple[str, str, str, str, bool]]:
        """Wait until `node` holds every expected block route; return the routes it has."""
        want = {r.key for r in lab_routes(self.plan, self.topo, node)}
        return wait_routes(self.topo.node(node).ns, want)

    def leaks(self, node: str) -> list[str]:
        """Return own blocks of `node` that BIRD installed in its kernel (must be empty)."""
        return own_block_leaks(self.plan.node(node), both_tables(self.topo.node(node).ns))


@contextmanager
def bgp_lab(
    cluster: Path, root: Path, lab: str | None = None, *, gobgp_peers: Collection[str] = ()
) -> Iterator[BgpLab]:
    """Compile `cluster`, wire its namespaces, start BIRD and GoBGP; remove it all on exit.

    GoBGP plays the external peers lab/speakers.py gives it (`gobgp_peers` as `--gobgp`); no
    BIRD ToR is started here. When the kernel has no ipip module, tunl0 is an ifb stand-in
    (routes only, no packets).
    """
    compiled = compile_cluster(load_cluster(cluster))
    topo = plan_topology(compiled.plan, lab or f"t{uuid.uuid4().hex[:8]}")
    daemons = Daemons()
    create_topology(topo)
    try:
        if needs_tunnel_device(compiled.plan):
            for host in topo.nodes:
                add_tunnel_device(host.ns)
        start_gobgp_reflectors(compiled.plan, topo, root, daemons, gobgp_peers=gobgp_peers)
        start_node_birds(compiled.plan, topo, compiled.files, root, daemons)
        yield BgpLab(compiled.plan, topo, daemons)
    finally:
        daemons.stop()
        remove_namespaces(topo.lab)
