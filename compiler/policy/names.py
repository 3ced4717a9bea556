"""Deterministic, length-limited names of policy chains and ipsets.

iptables chain names are at most 28 characters, ipset names at most 31 (kernel limits).
Every name is a fixed prefix plus a stable hash, so it never depends on input order and a
policy keeps its chain name for as long as its namespace/name stays the same.
"""

from __future__ import annotations

from calicc.compiler.policy.selectors import stable_id

CHAIN_MAX = 28
IPSET_MAX = 31
INGRESS_PREFIX = "cali-pi-"
EGRESS_PREFIX = "cali-po-"
SELECTOR_SET_PREFIX = "cali40s:"
NAMED_PORT_SET_PREFIX = "cali40n:"
IPBLOCK_SET_PREFIX = "cali40b:"
ALL_POOLS_SET = "cali40all-ipam-pools"
MASQ_POOLS_SET = "cali40masq-ipam-pools"
ALL_HOSTS_SET = "cali40all-hosts-net"


def policy_chain(prefix: str, namespace: str, name: str) -> str:
    """Return the chain of one policy direction: `cali-pi-`/`cali-po-` + hash of ns/name.

    Examples:
        >>> len(policy_chain(INGRESS_PREFIX, "default", "default-deny-ingress"))
        28
    """
    return prefix + stable_id(f"{namespace}/{name}", CHAIN_MAX - len(prefix))


def set_name(prefix: str, identity: object) -> str:
    """Return an ipset name: prefix + hash of the set's identity, 31 characters in all."""
    return prefix + stable_id(identity, IPSET_MAX - len(prefix))
