"""Cheap drift detection: the running agent reads iptables only when something may have changed.

With the nf_tables backend of iptables (Debian's default), every change to any table of the
network namespace, by anyone, commits an nftables transaction and bumps the ruleset's
generation id. The agent asks for it over netlink (NFT_MSG_GETGEN, about 1 ms, no command run).
When the generation, the bundle and the endpoint records are all as they were after the last
reconcile that found iptables in its desired state, `iptables-save` is skipped. A full read
still happens every `FULL_EVERY` intervals as a safety net, after every write of the agent's own
(so what it wrote is checked once), and always with the legacy backend (which has no
generation id; its `iptables-save` is cheap, about 2 ms).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETGEN, NFTSocket, nft_gen_msg

from calicc.agent.cni.live_filter import iptables_backend

FULL_EVERY = 10


def nft_generation() -> int | None:
    """Return the namespace's nftables ruleset generation id, or None when it cannot be read."""
    try:
        nft = NFTSocket()
    except (NetlinkError, OSError):
        return None
    try:
        reply = nft.request_get(nft_gen_msg(), NFT_MSG_GETGEN, msg_flags=NLM_F_REQUEST)
        return int(reply[0].get_attr("NFTA_GEN_ID"))
    except (NetlinkError, OSError, IndexError, TypeError, ValueError):
        return None
    finally:
        nft.close()


@dataclass
class Watch:
    """Remembers the inputs under which iptables last matched the bundle.

    `key` is whatever identifies those inputs (generation id, bundle digest, endpoint records);
    a key holding None (generation unreadable) never allows a skip.
    """

    enabled: bool
    full_every: int = FULL_EVERY
    known: Hashable | None = None
    skipped: int = 0

    def unchanged(self, key: tuple[Hashable, ...]) -> bool:
        """Return whether the read may be skipped (counting skips towards the next full read)."""
        if (
            not self.enabled
            or None in key
            or key != self.known
            or self.skipped + 1 >= self.full_every
        ):
            self.skipped = 0
            return False
        self.skipped += 1
        return True

    def settled(self, key: tuple[Hashable, ...] | None) -> None:
        """Record that iptables matched the bundle under `key` (None: check again next time)."""
        self.known = key


def make_watch() -> Watch:
    """Return a watch enabled when iptables uses nf_tables and its generation id is readable."""
    return Watch(enabled=iptables_backend() == "nft" and nft_generation() is not None)
