"""The BIRD statements of BGP filters as bird.conf holds them: written and read from one place.

compiler/targets/bird_filters.py writes a filter's rules with these formats and trace/ reads
them back with `pattern` of the same formats, so the two cannot drift: a statement the reader
does not recognise is an error, never a guess.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

# Matches of a rule, ANDed with MATCH_JOIN.
NET = "(net {op} {cidr})"
NET_RANGE = "(net {op} [ {cidr}{{{low},{high}}} ])"
SOURCE_BGP = "(source = RTS_BGP)"
IFNAME = "(ifname ~ {glob})"  # glob: a BIRD string (bird_string)
COMMUNITY = "(({parts}) ~ {attribute})"
AS_PATH = "(bgp_path ~ [= {asns} * =])"
MATCH_JOIN = " && "
# Operations, then the action (ACCEPT or REJECT).
ADD_COMMUNITY = "{attribute}.add(({parts}));"
PREPEND = "bgp_path.prepend({asn});"
LOCAL_PREF = "bgp_local_pref = {value};"
ACCEPT, REJECT = "accept;", "reject;"
RULE = "if {matches} then {{ {body} }}"  # a rule without matches is its body alone
PEER_GUARD = "if ({negation}is_same_as) then {{ {text} }}"  # negation: "" (iBGP) or "!" (eBGP)
# A filter's function, one per direction and family with rules; a rule per line, indented.
COMMENT = "# bgp.filters {name}: {direction}_v{version}"
FUNCTION = "function {symbol}(bool is_same_as)"
RULE_INDENT = "  "
CALL = "{symbol}({same});"  # in a session's import or export filter; same: true or false
# The communities function: a line per advertised prefix, adding its communities.
COMMUNITIES = "calicc_communities{suffix}"  # suffix: "" (IPv4) or "_v6"
COMMUNITIES_LINE = "if net ~ [ {cidr}+ ] then {{ {adds} }}"

COMMUNITY_ATTRIBUTES = ("bgp_community", "bgp_large_community")
_FIELDS = {
    "op": r"=|!=|~|!~",
    "cidr": r"[0-9a-fA-F.:]+/\d+",
    "low": r"\d+",
    "high": r"\d+",
    "glob": r'"[^"\\]*"',
    "parts": r"\d+(?:, \d+){1,2}",
    "attribute": "|".join(COMMUNITY_ATTRIBUTES),
    "asns": r"\d+(?: \d+)*",
    "asn": r"\d+",
    "value": r"\d+",
    "matches": r".+?",
    "body": r".+",
    "negation": r"!?",
    "text": r".+",
    "name": r"[a-z0-9-]+",
    "direction": r"import|export",
    "version": r"[46]",
    "symbol": r"\w+",
    "same": r"true|false",
    "adds": r".*",
}


@lru_cache(maxsize=32)
def pattern(form: str) -> re.Pattern[str]:
    """Return the regular expression of a format above, a named group per field.

    Examples:
        >>> pattern(PREPEND).fullmatch("bgp_path.prepend(65000);").group("asn")
        '65000'
    """
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(form):
        out.append(re.escape(literal))
        if field is not None:
            out.append(f"(?P<{field}>{_FIELDS[field]})")
    return re.compile("".join(out))


def parts(value: str) -> str:
    """Return a community's BIRD tuple text: `65000:100` -> `65000, 100`."""
    return ", ".join(value.split(":"))


def attribute(value: str) -> str:
    """Return the attribute a community value goes in (standard aa:nn or large aa:nn:mm)."""
    return "bgp_community" if value.count(":") == 1 else "bgp_large_community"


def community(parts_text: str) -> str:
    """Return a community's value from its BIRD tuple text: `65000, 100` -> `65000:100`."""
    return ":".join(parts_text.split(", "))
