"""Check each mapped entry against calicc's own models, blaming the Calico resource it came from.

The whole result is planned again before writing (run.py); checking each pool, peer and node
entry first lets a value calicc refuses (a node name, a label, an AS number) be reported at the
exported resource's kind, name and line rather than at a cluster.yaml that is never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.load import Loc, format_loc
from calicc.compiler.model.bgp_filters import BgpFilter
from calicc.compiler.model.spec import Bgp, BgpPeer, Node, Pool

NODE_FIELDS: Mapping[str, Loc] = {
    "name": ("metadata", "name"),
    "labels": ("metadata", "labels"),
    "address": ("spec", "bgp", "ipv4Address"),
    "address_v6": ("spec", "bgp", "ipv6Address"),
    "as_number": ("spec", "bgp", "asNumber"),
    "route_reflector_cluster_id": ("spec", "bgp", "routeReflectorClusterID"),
}
POOL_FIELDS: Mapping[str, Loc] = {
    "name": ("metadata", "name"),
    "cidr": ("spec", "cidr"),
    "block_size": ("spec", "blockSize"),
    "node_selector": ("spec", "nodeSelector"),
}
PEER_FIELDS: Mapping[str, Loc] = {
    "peer_ip": ("spec", "peerIP"),
    "as_number": ("spec", "asNumber"),
    "node_selector": ("spec", "nodeSelector"),
    "filters": ("spec", "filters"),
}
FILTER_FIELDS: Mapping[str, Loc] = {
    "name": ("metadata", "name"),
    "export_v4": ("spec", "exportV4"),
    "import_v4": ("spec", "importV4"),
    "export_v6": ("spec", "exportV6"),
    "import_v6": ("spec", "importV6"),
}
CONFIG_FIELDS: Mapping[str, Loc] = {
    "as_number": ("spec", "asNumber"),
    "listen_port": ("spec", "listenPort"),
    "service_cluster_ips": ("spec", "serviceClusterIPs"),
    "service_external_ips": ("spec", "serviceExternalIPs"),
    "service_loadbalancer_ips": ("spec", "serviceLoadBalancerIPs"),
    "service_loadbalancer_aggregation": ("spec", "serviceLoadBalancerAggregation"),
    "communities": ("spec", "communities"),
    "prefix_advertisements": ("spec", "prefixAdvertisements"),
    "node_mesh_max_restart_time": ("spec", "nodeMeshMaxRestartTime"),
}
MODELS: Mapping[str, tuple[type[BaseModel], Mapping[str, Loc]]] = {
    "Node": (Node, NODE_FIELDS),
    "IPPool": (Pool, POOL_FIELDS),
    "BGPPeer": (BgpPeer, PEER_FIELDS),
    "BGPFilter": (BgpFilter, FILTER_FIELDS),
    "BGPConfiguration": (Bgp, CONFIG_FIELDS),
}


def entry_problems(res: Resource, entry: dict[str, Any]) -> list[Problem]:
    """Return what calicc's model refuses in `entry`, located at the resource's own field."""
    model, fields = MODELS[res.kind]
    try:
        model.model_validate(entry)
    except ValidationError as exc:
        return [_problem(res, fields, error) for error in exc.errors()]
    return []


def _problem(res: Resource, fields: Mapping[str, Loc], error: Any) -> Problem:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    where = fields.get(str(loc[0]), ()) if loc else ()
    return res.problem(where, f"calicc refuses it as {format_loc(loc) or 'a whole'}: {message}")
