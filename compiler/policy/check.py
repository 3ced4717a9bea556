"""Semantic checks of one NetworkPolicy, after the models validated; each yields Problems."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.load import Loc
from calicc.compiler.policy.model import (
    IPBlock,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
)

Locate = Callable[[Loc, str], Problem]


def check_ip_block(block: IPBlock, loc: Loc, locate: Locate) -> Iterator[Problem]:
    """Every `except` CIDR must lie strictly inside the block's cidr (so be of its family)."""
    for index, excluded in enumerate(block.except_):
        if excluded.version != block.cidr.version:
            yield locate(
                (*loc, "except", index),
                f"{excluded} is IPv{excluded.version} but cidr {block.cidr} is "
                f"IPv{block.cidr.version}; an except entry must be a smaller range within "
                f"{block.cidr}",
            )
        elif excluded == block.cidr or not excluded.subnet_of(block.cidr):  # type: ignore[arg-type]
            yield locate(
                (*loc, "except", index),
                f"{excluded} is not inside cidr {block.cidr}; an except entry must be a "
                f"smaller range within {block.cidr}",
            )


def check_port(port: NetworkPolicyPort, loc: Loc, locate: Locate) -> Iterator[Problem]:
    """Check that endPort has a numeric port not above it."""
    if port.endPort is None:
        return
    if not isinstance(port.port, int):
        what = f"named port {port.port!r}" if port.port is not None else "no port"
        yield locate(
            (*loc, "endPort"),
            f"endPort {port.endPort} needs a numeric port, not {what}; write port: <first>",
        )
    elif port.endPort < port.port:
        yield locate(
            (*loc, "endPort"),
            f"endPort {port.endPort} is below port {port.port}; use {port.port}-65535",
        )


def _check_peers(
    peers: tuple[NetworkPolicyPeer, ...], loc: Loc, locate: Locate
) -> Iterator[Problem]:
    for index, peer in enumerate(peers):
        if peer.ipBlock is not None:
            yield from check_ip_block(peer.ipBlock, (*loc, index, "ipBlock"), locate)


def check_policy(policy: NetworkPolicy, locate: Locate) -> Iterator[Problem]:
    """Yield every semantic problem of a policy, located by `locate(loc, message)`."""
    spec = policy.spec
    rules = [("ingress", "from", r.from_, r.ports) for r in spec.ingress]
    rules += [("egress", "to", r.to, r.ports) for r in spec.egress]
    counters = {"ingress": 0, "egress": 0}
    for direction, peer_key, peers, ports in rules:
        index = counters[direction]
        counters[direction] += 1
        base: Loc = ("spec", direction, index)
        yield from _check_peers(peers, (*base, peer_key), locate)
        for p, port in enumerate(ports):
            yield from check_port(port, (*base, "ports", p), locate)
