"""contract/ip_text.py parses exactly as the ipaddress module: the same value, or the same error,
for canonical text, near misses (leading zeros, octets over 255, odd prefixes, unicode digits)
and anything else."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, ip_address, ip_network

from hypothesis import example, given
from hypothesis import strategies as st

from calicc.contract.ip_text import (
    parse_address,
    parse_network,
    parse_v4_address,
    parse_v4_interface,
)

octet = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "256", "300", "-1", "", " 1", "1 ", "٣", "0x1"]),
)
quad = st.lists(octet, min_size=3, max_size=5).map(".".join)
prefix = st.one_of(
    st.integers(0, 33).map(str), st.sampled_from(["024", "", "-1", "²", "8 ", "+8", "99"])
)
text = st.one_of(
    quad,
    st.builds(lambda q, p: f"{q}/{p}", quad, prefix),
    st.builds(lambda a: str(IPv4Address(a)), st.integers(0, 2**32 - 1)),
    st.builds(lambda a, p: f"{IPv4Address(a)}/{p}", st.integers(0, 2**32 - 1), prefix),
    st.sampled_from(["fd00::1", "fd00::/64", "fd00::1/64", "::", "1.2.3.4/32/1", "a.b.c.d"]),
    st.text(max_size=20),
)


def outcome(parse: Callable[[str], object], value: str) -> tuple[str, object]:
    try:
        return ("value", parse(value))
    except ValueError as exc:
        return ("error", str(exc))


@given(text)
@example("10.244.0.0/26")
@example("10.244.0.1/26")
@example("192.168.001.1")
@example("10.0.0.1/024")
def test_every_parser_answers_as_ipaddress(value: str) -> None:
    assert outcome(parse_v4_address, value) == outcome(IPv4Address, value)
    assert outcome(parse_v4_interface, value) == outcome(IPv4Interface, value)
    assert outcome(parse_network, value) == outcome(ip_network, value)
    assert outcome(parse_address, value) == outcome(ip_address, value)
