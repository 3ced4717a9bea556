"""BGP communities and filters in cluster.yaml, after Calico's BGPConfiguration and BGPFilter.

`bgp.communities` names values; `bgp.prefix_advertisements` (and a pool's `communities`) say
which exported prefixes carry which; `bgp.filters` are Calico's BGPFilter specs in snake_case,
attached to peers by name (`bgp.peers[].filters`, `bgp.global_filters`). Shapes and value
ranges are checked here; what needs the whole cluster (names, families, prefix lengths against
a rule's CIDR) is checked in compiler/check_bgp_filters.py.
"""

from __future__ import annotations

import re
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from calicc.contract.fields import Dns1123Label
from calicc.contract.manifest import Strict
from calicc.contract.text import cut

STANDARD_PART_MAX = 65_535
LARGE_PART_MAX = 4_294_967_295
COMMUNITY = re.compile(r"[0-9]{1,10}:[0-9]{1,10}(:[0-9]{1,10})?")
OPERATIONS_MAX = 10
PREPEND_MAX = 10
INTERFACE = re.compile(r"[A-Za-z0-9_.*?-]{1,15}")
HOST = {4: 32, 6: 128}  # a host route's length per IP version


def community_value(value: str) -> str:
    """Check a literal community: "aa:nn" (16-bit parts) or "aa:nn:mm" (32-bit parts)."""
    if not COMMUNITY.fullmatch(value):
        raise ValueError(
            f"{cut(value)!r} is not a community: write aa:nn (standard, each part 0-65535) "
            "or aa:nn:mm (large, each part 0-4294967295)"
        )
    parts = [int(p) for p in value.split(":")]
    top, kind = (STANDARD_PART_MAX, "standard") if len(parts) == 2 else (LARGE_PART_MAX, "large")  # noqa: PLR2004
    for part in parts:
        if part > top:
            raise ValueError(
                f"{value}: {part} is out of range; each part of a {kind} community is 0-{top}"
            )
    return ":".join(str(p) for p in parts)


def community_ref(value: str) -> str:
    """A community given by name (bgp.communities) or literally (aa:nn, aa:nn:mm)."""
    if ":" in value:
        return community_value(value)
    return value


CommunityValue = Annotated[
    str,
    AfterValidator(community_value),
    Field(description="aa:nn (standard, 16-bit parts) or aa:nn:mm (large, 32-bit parts)"),
]
CommunityRef = Annotated[
    str,
    AfterValidator(community_ref),
    Field(
        min_length=1,
        max_length=63,
        description="a name from bgp.communities, or a literal aa:nn / aa:nn:mm",
    ),
]
BgpFilterName = Dns1123Label


class Community(Strict):
    """A named community (Calico's BGPConfiguration communities)."""

    name: Dns1123Label = Field(description="how prefix advertisements and filters name it")
    value: CommunityValue


class PrefixAdvertisement(Strict):
    """Communities added to every exported route inside `cidr` (Calico's prefixAdvertisements)."""

    cidr: IPv4Network | IPv6Network = Field(description="exported routes inside it get them")
    communities: tuple[CommunityRef, ...] = Field(
        min_length=1, description="names from bgp.communities or literals aa:nn, aa:nn:mm"
    )


class FilterAction(StrEnum):
    """A rule's verdict on a route it matches."""

    ACCEPT = "Accept"
    REJECT = "Reject"


class MatchOperator(StrEnum):
    """How a route's prefix is compared with a rule's CIDR."""

    EQUAL = "Equal"
    NOT_EQUAL = "NotEqual"
    IN = "In"
    NOT_IN = "NotIn"


class FilterSource(StrEnum):
    """Where a route came from."""

    REMOTE_PEERS = "RemotePeers"


class PeerType(StrEnum):
    """Which sessions a rule applies to: eBGP (another AS) or iBGP (the same AS)."""

    EBGP = "eBGP"
    IBGP = "iBGP"


class PrefixLength(Strict):
    """Bounds on a matched route's prefix length (each defaults to the CIDR's and the host's)."""

    min: int | None = Field(None, ge=0, le=128, description="shortest (default: the CIDR's)")
    max: int | None = Field(None, ge=0, le=128, description="longest (default: 32 or 128)")


def length_range(cidr: IPv4Network | IPv6Network, bounds: PrefixLength | None) -> tuple[int, int]:
    """Return the prefix lengths a rule matches inside `cidr` (Calico's filterMatchPrefixLength).

    min is at least the CIDR's own length, max at most the host route's; unset, they are those.
    """
    host = HOST[cidr.version]
    low = bounds.min if bounds is not None and bounds.min is not None else 0
    high = bounds.max if bounds is not None and bounds.max is not None else host
    return max(cidr.prefixlen, low), min(host, high)


class CommunityMatch(Strict):
    """Routes carrying this community (exactly one value, as Calico allows)."""

    values: tuple[CommunityRef] = Field(description="one community, a name or a literal")


class AddCommunity(Strict):
    """The community to add."""

    value: CommunityRef = Field(description="a name from bgp.communities or a literal")


class PrependAsPath(Strict):
    """AS numbers put in front of the AS path, in this order."""

    prefix: tuple[Annotated[int, Field(ge=1, le=LARGE_PART_MAX)], ...] = Field(
        min_length=1, max_length=PREPEND_MAX, description="1 to 10 AS numbers, first first"
    )


class SetLocalPreference(Strict):
    """The route's BGP local preference (iBGP; higher wins)."""

    value: int = Field(ge=0, le=LARGE_PART_MAX, description="0-4294967295 (BIRD's default 100)")


class FilterOperation(Strict):
    """One change to an accepted route: exactly one of the fields."""

    add_community: AddCommunity | None = Field(None, description="add a community")
    prepend_as_path: PrependAsPath | None = Field(None, description="prepend AS numbers")
    set_local_preference: SetLocalPreference | None = Field(
        None, description="set the BGP local preference"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> FilterOperation:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an operation sets exactly one of add_community, prepend_as_path, "
                f"set_local_preference (this one sets {len(given)})"
            )
        return self


class FilterRule(Strict):
    """One rule: its matches are ANDed; the first rule that matches decides."""

    action: FilterAction = Field(description="Accept or Reject a route the rule matches")
    cidr: IPv4Network | IPv6Network | None = Field(None, description="with match_operator")
    match_operator: MatchOperator | None = Field(None, description="with cidr")
    prefix_length: PrefixLength | None = Field(None, description="with cidr")
    source: FilterSource | None = Field(None, description="RemotePeers: learned over BGP")
    peer_type: PeerType | None = Field(None, description="only on eBGP or on iBGP sessions")
    interface: str | None = Field(
        None, pattern=f"^{INTERFACE.pattern}$", description="the route's interface; * and ? glob"
    )
    communities: CommunityMatch | None = Field(None, description="the route carries it")
    as_path_prefix: tuple[Annotated[int, Field(ge=1, le=LARGE_PART_MAX)], ...] = Field(
        (), max_length=PREPEND_MAX, description="the AS path begins with these AS numbers"
    )
    operations: tuple[FilterOperation, ...] = Field(
        (), max_length=OPERATIONS_MAX, description="changes to the route, with action Accept"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FilterRule:
        if (self.cidr is None) != (self.match_operator is None):
            raise ValueError("cidr and match_operator go together: give both or neither")
        if self.prefix_length is not None and self.cidr is None:
            raise ValueError("prefix_length needs a cidr (and match_operator) to apply to")
        if self.prefix_length is not None and self.match_operator in (
            MatchOperator.EQUAL,
            MatchOperator.NOT_EQUAL,
        ):
            # Calico renders `net = [ set ]`, which BIRD never finds equal: a rule that never
            # (or, NotEqual, always) matches. In/NotIn take the range; Equal is the CIDR itself.
            raise ValueError(
                "prefix_length goes with match_operator In or NotIn; Equal and NotEqual compare "
                "the route with the cidr itself"
            )
        if self.operations and self.action != FilterAction.ACCEPT:
            raise ValueError("operations change accepted routes: they need action Accept")
        return self


class BgpFilter(Strict):
    """Calico's BGPFilter: ordered rules per direction and family; the first match decides."""

    name: BgpFilterName = Field(description="how peers and global_filters name it")
    export_v4: tuple[FilterRule, ...] = Field((), description="routes sent, IPv4 sessions")
    import_v4: tuple[FilterRule, ...] = Field((), description="routes received, IPv4 sessions")
    export_v6: tuple[FilterRule, ...] = Field((), description="routes sent, IPv6 sessions")
    import_v6: tuple[FilterRule, ...] = Field((), description="routes received, IPv6 sessions")
