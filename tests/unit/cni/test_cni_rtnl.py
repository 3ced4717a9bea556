"""The CNI hot path's rtnetlink encoder and reply parser (no kernel needed)."""

from __future__ import annotations

import errno
import struct
from ipaddress import IPv4Address

import pytest

from calicc.agent.cni.rtnl import (
    IFLA_IFNAME,
    IFLA_LINKINFO,
    IFLA_NET_NS_FD,
    NLA_F_NESTED,
    NLMSG_ERROR,
    RTA_GATEWAY,
    RTA_OIF,
    attr,
    link_attrs,
    parse_replies,
    route_body,
    veth_body,
)


def attrs(data: bytes) -> list[tuple[int, bytes]]:
    found, offset = [], 0
    while offset < len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        found.append((kind & ~NLA_F_NESTED, data[offset + 4 : offset + length]))
        offset += (length + 3) & ~3
    return found


def message(kind: int, seq: int, body: bytes) -> bytes:
    padding = b"\0" * (-len(body) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body + padding


def test_attributes_are_padded_to_four_bytes() -> None:
    assert attr(IFLA_IFNAME, b"eth0\0") == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    assert len(attr(1, b"")) == 4


def test_veth_peer_sits_in_linkinfo_with_the_netns_fd() -> None:
    body = veth_body(link_attrs("cali1", b"\xee" * 6, 1480), link_attrs("eth0", b"\2" * 6, 1480), 7)
    top = dict(attrs(body[16:]))
    assert top[IFLA_IFNAME] == b"cali1\0"
    kind, data = attrs(top[IFLA_LINKINFO])
    assert kind == (1, b"veth")
    ((peer_kind, peer),) = attrs(data[1])
    peer_attrs = dict(attrs(peer[16:]))
    assert peer_kind == 1
    assert peer_attrs[IFLA_IFNAME] == b"eth0\0"
    assert struct.unpack("=I", peer_attrs[IFLA_NET_NS_FD]) == (7,)


def test_default_route_has_no_destination_and_a_gateway() -> None:
    body = route_body(IPv4Address("0.0.0.0"), 0, 5, 0, IPv4Address("169.254.1.1"))
    assert body[1] == 0  # dst_len
    found = dict(attrs(body[12:]))
    assert set(found) == {RTA_OIF, RTA_GATEWAY}
    assert found[RTA_GATEWAY] == bytes([169, 254, 1, 1])


def test_replies_stop_at_the_ack_and_raise_the_kernel_errno() -> None:
    payload = message(16, 3, b"link") + message(NLMSG_ERROR, 3, struct.pack("=i", 0))
    assert parse_replies(message(16, 2, b"old") + payload, 3) == ([b"link"], True)
    assert parse_replies(message(16, 3, b"part"), 3) == ([b"part"], False)
    with pytest.raises(OSError, match="exists") as failed:
        parse_replies(message(NLMSG_ERROR, 3, struct.pack("=i", -errno.EEXIST)), 3)
    assert failed.value.errno == errno.EEXIST
