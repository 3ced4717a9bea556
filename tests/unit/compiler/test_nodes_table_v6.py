"""The node table's IPv6 columns: both widths, IPv6-only rows, round trips and located errors.

cluster/nodes.tsv has the IPv4 columns alone unless a node has IPv6 (an IPv4-only cluster's
table keeps its bytes: the goldens hold them), then the IPv6 ones appended; the header line
says which. Every parse error names the line and the column.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calicc.compiler.build import compile_cluster
from calicc.compiler.diff_facts import table_facts
from calicc.contract.names import NODES_TABLE
from calicc.contract.nodes_table import (
    HEADER,
    WIDE_HEADER,
    NodeRow,
    NodesTableError,
    block_order,
    parse_table,
    table_text,
)
from tests.support.clusters import load
from tests.support.examples import load_example

V4_ROW = NodeRow(
    name="a",
    address=IPv4Interface("10.0.0.1/24"),
    tunnel_address=IPv4Address("10.244.0.0"),
    vtep_mac="66:00:00:00:00:01",
    blocks=(("p", ip_network("10.244.0.0/26")),),
    interface="eth0",
    pod_mtu=1450,
)
V6_ONLY_ROW = NodeRow(
    name="b",
    address=None,
    tunnel_address=None,
    vtep_mac=None,
    blocks=(("p6", ip_network("fd00:244::/122")),),
    interface=None,
    pod_mtu=1430,
    address_v6=IPv6Interface("fd00:30::2/64"),
    tunnel_address_v6=IPv6Address("fd00:244::"),
    vtep_mac_v6="66:00:00:00:00:02",
)


def test_ipv4_only_table_keeps_the_ipv4_columns() -> None:
    text = table_text("t", (V4_ROW,))
    assert text.splitlines()[2] == HEADER
    assert (
        text.splitlines()[3]
        == "a\t10.0.0.1/24\t10.244.0.0\t66:00:00:00:00:01\tp=10.244.0.0/26\teth0\t1450"
    )
    assert parse_table(text) == (V4_ROW,)


def test_an_ipv4_only_example_table_is_byte_identical_to_its_golden() -> None:
    compiled = compile_cluster(load_example("vxlan"))
    golden = Path("examples/vxlan/rendered") / NODES_TABLE
    assert compiled.files[NODES_TABLE] == golden.read_text(encoding="utf-8")
    assert WIDE_HEADER not in compiled.files[NODES_TABLE]


def test_a_node_with_ipv6_widens_every_row() -> None:
    text = table_text("t", (V6_ONLY_ROW, V4_ROW))
    lines = text.splitlines()
    assert lines[2] == WIDE_HEADER
    assert lines[3].endswith("\t1450\t-\t-\t-")  # the IPv4-only node: empty IPv6 columns
    assert lines[4] == (
        "b\t-\t-\t-\tp6=fd00:244::/122\t-\t1430\tfd00:30::2/64\tfd00:244::\t66:00:00:00:00:02"
    )
    assert lines[3].split("\t")[:7] == V4_ROW.line().split("\t")  # awk's columns stay put
    assert parse_table(text) == (V4_ROW, V6_ONLY_ROW)


def test_an_ipv6_only_cluster_builds_its_rows(tmp_path: Path) -> None:
    data = {
        "name": "t",
        "network_cidr_v6": "fd00:244::/56",
        "vxlan_mode": "Always",
        "nodes": [{"name": "n1", "address_v6": "fd00:30::1/64", "interface": "ens3"}],
    }
    compiled = compile_cluster(load(tmp_path, data))
    (row,) = parse_table(compiled.files[NODES_TABLE])
    node = compiled.plan.node("n1")
    assert row.address is None
    assert row.address_v6 == node.address_v6
    assert row.tunnel_address_v6 == node.tunnel_address_v6 == node.blocks_v6[0].cidr[0]
    assert row.vtep_mac_v6 == node.vtep_mac_v6
    assert row.interface == "ens3"


def wide(*rows: str) -> str:
    return "\n".join(["# nodes", WIDE_HEADER, *rows]) + "\n"


GOOD_V6 = "b\t-\t-\t-\tp6=fd00:244::/122\t-\t1430\tfd00:30::2/64\tfd00:244::\t66:00:00:00:00:02"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            wide(GOOD_V6.replace("fd00:30::2/64", "10.0.0.2/24")),
            f"{NODES_TABLE} line 3, address_v6: ",
        ),
        (wide(GOOD_V6.replace("\tfd00:244::\t", "\t10.244.0.0\t")), "line 3, tunnel_address_v6: "),
        (wide(GOOD_V6.replace("66:00:00:00:00:02", "66:00:00:00:02")), "line 3, vtep_mac_v6: "),
        (wide(GOOD_V6.replace("fd00:30::2/64", "-")), "line 3, address: the node has no address"),
        (wide(GOOD_V6.rsplit("\t", 1)[0]), "line 3: 9 tab-separated fields, expected 10"),
        (wide("a\t10.0.0.1/24\t-\t-\t-\t-\t1500"), "line 3: 7 tab-separated fields, expected 10"),
        (
            "\n".join(["# nodes", HEADER, GOOD_V6]),
            "line 3: 10 tab-separated fields, expected 7",
        ),
        (
            "\n".join(["# nodes", HEADER, "a\t-\t-\t-\t-\t-\t1500"]),
            "line 3, address: the node has no address (IPv4 with prefix)",
        ),
        (wide(GOOD_V6.replace("\t-\t1430", "\tbad/if\t1430")), "line 3, interface: "),
    ],
)
def test_parse_errors_name_the_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(NodesTableError, match=None) as caught:
        parse_table(text)
    assert expected in str(caught.value)


def _mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in (0x66, *data))


macs = st.binary(min_size=5, max_size=5).map(_mac)
v4_address = st.builds(
    lambda a, p: IPv4Interface((a, p)), st.integers(1, 2**32 - 2), st.integers(8, 32)
)
v6_address = st.builds(
    lambda a, p: IPv6Interface((a, p)), st.integers(1, 2**128 - 2), st.integers(8, 128)
)
blocks = st.lists(
    st.one_of(
        st.builds(lambda n: ("p4", ip_network((n << 6, 26))), st.integers(0, 2**26 - 1)),
        st.builds(lambda n: ("p6", ip_network((n << 6, 122))), st.integers(0, 2**122 - 1)),
    ),
    max_size=4,
    unique=True,
).map(block_order)


@st.composite
def rows(draw: st.DrawFn, name: str) -> NodeRow:
    address = draw(st.none() | v4_address)
    address_v6 = draw(v6_address if address is None else st.none() | v6_address)
    return NodeRow(
        name=name,
        address=address,
        tunnel_address=draw(st.none() | st.builds(IPv4Address, st.integers(0, 2**32 - 1))),
        vtep_mac=draw(st.none() | macs),
        blocks=draw(blocks),
        interface=draw(st.none() | st.sampled_from(["eth0", "ens3f0", "bond0.100"])),
        pod_mtu=draw(st.integers(68, 65535)),
        address_v6=address_v6,
        tunnel_address_v6=draw(st.none() | st.builds(IPv6Address, st.integers(0, 2**128 - 1))),
        vtep_mac_v6=draw(st.none() | macs),
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[NodeRow, ...]:
    names = draw(st.sets(st.sampled_from(["a", "b-1", "node-2", "w.x", "z9"]), min_size=1))
    return tuple(draw(rows(name)) for name in sorted(names))


@settings(max_examples=80, deadline=None)
@given(tables())
def test_table_round_trip(table: tuple[NodeRow, ...]) -> None:
    text = table_text("t", table)
    assert parse_table(text) == table
    assert (WIDE_HEADER in text.splitlines()) == any(row.wide for row in table)
    assert table_text("t", parse_table(text)) == text


def test_calicc_diff_names_ipv6_addresses_and_vteps() -> None:
    facts = table_facts(table_text("t", (V6_ONLY_ROW, V4_ROW)))
    assert facts["nodes"]["b"].startswith("fd00:30::2/64, 1 block\0b\t-\t")
    assert facts["nodes"]["a"].startswith("10.0.0.1/24, 1 block\0")
    assert facts["VXLAN peers"] == {
        "a": "VTEP 66:00:00:00:00:01 at 10.0.0.1",
        "b": "IPv6 VTEP 66:00:00:00:00:02 at fd00:30::2",
    }
