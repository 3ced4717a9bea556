"""Deterministic, length-limited names of policy chains and ipsets.

iptables chain names are at most CHAIN_MAX characters, ipset names at most IPSET_MAX (kernel
limits; both, and the prefixes, are the contract's: contract/names.py). Every name is a fixed
prefix plus a stable hash, so it never depends on input order and a policy keeps its chain name
for as long as its namespace/name stays the same.
"""

from __future__ import annotations

from calicc.compiler.policy.selectors import stable_id
from calicc.contract.names import CHAIN_MAX, IPSET_MAX


def policy_chain(prefix: str, namespace: str, name: str) -> str:
    """Return the chain of one policy direction: `cali-pi-`/`cali-po-` + hash of ns/name.

    Examples:
        >>> len(policy_chain("cali-pi-", "default", "default-deny-ingress"))
        28
    """
    return prefix + stable_id(f"{namespace}/{name}", CHAIN_MAX - len(prefix))


def set_name(prefix: str, identity: object) -> str:
    """Return an ipset name: prefix + hash of the set's identity, 31 characters in all."""
    return prefix + stable_id(identity, IPSET_MAX - len(prefix))
