"""cluster.lock.yaml's text: the fast writer writes what yaml.dump writes, the line reader reads
what the YAML loader reads (or gives way to it)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from calicc.compiler.lock import HEADER, Adopted, Lock, NodeAllocation, SafeDumper
from calicc.compiler.lock_read import _written_data

# Names YAML 1.1 would read as other types (bools, nulls, numbers, sexagesimals) beside plain
# ones: the writer must quote exactly where yaml.dump does.
TRICKY = ["true", "no", "on", "null", "123", "1e3", "0x1f", "0o17", "1_000", "12:30", "1.5"]
NAMES = st.one_of(
    st.sampled_from(TRICKY),
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\.[a-z0-9]{1,5})?", fullmatch=True),
    st.from_regex(r"[a-z]{1,3}-[a-z0-9]{100,140}", fullmatch=True),  # long: "? key" pairs
)
MACS = st.one_of(
    st.from_regex(r"66(:[0-9a-f]{2}){5}", fullmatch=True),
    st.from_regex(r"66(:[0-5][0-9]){5}", fullmatch=True),  # reads as a sexagesimal int
)
BLOCKS = st.lists(
    st.integers(0, 2**20 - 1).map(lambda i: IPv4Network((0x0A000000 + i * 64, 26))),
    max_size=3,
    unique=True,
).map(lambda blocks: tuple(sorted(blocks)))
# IPv6 blocks and addresses in the spellings that matter to YAML: a leading "::", a trailing
# "::" (fd00:: ends in an indicator: quoted), all-digit groups (1:2:3:4:5:6:7:8 reads as a
# sexagesimal int: quoted), and ordinary ones.
V6_INTS = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32),  # ::a.b.c.d-like, leading ::
    st.integers(0, 0xFF).map(lambda i: (0xFD00 + i) << 112),  # fdNN:: with trailing ::
    st.tuples(*[st.integers(1, 59)] * 8).map(  # 1:2:...:59: every group decimal, below 60
        lambda groups: int("".join(f"{int(str(g), 16):04x}" for g in groups), 16)
    ),
)
V6_BLOCKS = st.lists(
    st.tuples(V6_INTS, st.integers(116, 128)).map(
        lambda t: IPv6Network((t[0] >> (128 - t[1]) << (128 - t[1]), t[1]))
    ),
    max_size=3,
    unique=True,
).map(lambda blocks: tuple(sorted(blocks)))
ADOPTED = st.lists(
    st.builds(
        Adopted,
        address=st.integers(0x0A000000, 0x0AFFFFFF).map(IPv4Address) | V6_INTS.map(IPv6Address),
        container_id=st.sampled_from(TRICKY) | st.from_regex(r"[0-9a-f]{1,64}", fullmatch=True),
        ifname=st.sampled_from(["eth0", "net1", "1", "on"]),
        pod=st.none() | st.from_regex(r"[a-z0-9]{1,8}/[a-z0-9][-a-z0-9.]{0,30}", fullmatch=True),
    ),
    max_size=2,
).map(tuple)
ALLOCATIONS = st.builds(
    NodeAllocation,
    blocks=st.dictionaries(NAMES, BLOCKS | V6_BLOCKS, max_size=3),
    tunnel_address=st.none() | st.integers(0x0A000000, 0x0AFFFFFF).map(IPv4Address),
    vtep_mac=st.none() | MACS,
    tunnel_address_v6=st.none() | V6_INTS.map(IPv6Address),
    vtep_mac_v6=st.none() | MACS,
    adopted=ADOPTED,
)


def reference(lock: Lock) -> str:
    """What yaml.dump writes for the lock's data."""
    data = lock.as_data()
    return HEADER + yaml.dump(data, Dumper=SafeDumper, sort_keys=True, default_flow_style=False)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(NAMES, ALLOCATIONS, max_size=6))
def test_lock_text_is_yaml_dump_of_its_data(nodes: dict[str, NodeAllocation]) -> None:
    lock = Lock(nodes=nodes)
    text = lock.to_yaml()
    assert text == reference(lock)
    assert yaml.safe_load(text) == lock.as_data()


def test_ipv6_values_are_written_as_yaml_dump_writes_them() -> None:
    alloc = NodeAllocation(
        blocks={"v6": (IPv6Network("::/122"), IPv6Network("fd00:244::40/122"))},
        tunnel_address_v6=IPv6Address("fd00:244::"),
        vtep_mac_v6="66:46:32:55:72:28",
    )
    text = Lock(nodes={"n1": alloc}).to_yaml()
    assert "      - ::/122\n      - fd00:244::40/122\n" in text
    assert "    tunnel_address_v6: 'fd00:244::'\n" in text  # a trailing ':' is an indicator
    assert text == reference(Lock(nodes={"n1": alloc}))
    assert _written_data(text) == yaml.safe_load(text)


def test_a_mac_that_reads_as_a_number_is_quoted() -> None:
    lock = Lock(nodes={"n1": NodeAllocation(vtep_mac="66:12:34:45:11:22")})
    assert "    vtep_mac: '66:12:34:45:11:22'\n" in lock.to_yaml()
    assert lock.to_yaml() == reference(lock)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(NAMES, ALLOCATIONS, max_size=6))
def test_the_line_reader_reads_what_the_writer_wrote(nodes: dict[str, NodeAllocation]) -> None:
    text = Lock(nodes=nodes).to_yaml()
    names = [*nodes, *(pool for alloc in nodes.values() for pool in alloc.blocks)]
    if all(len(name) <= 100 for name in names):  # longer ones: yaml.dump writes "? key" pairs
        assert _written_data(text) == yaml.safe_load(text)


@st.composite
def edited_locks(draw: st.DrawFn) -> str:
    """A written lock with one line deleted, duplicated, re-indented or replaced."""
    nodes = draw(st.dictionaries(NAMES, ALLOCATIONS, min_size=1, max_size=4))
    lines = Lock(nodes=nodes).to_yaml().split("\n")
    at = draw(st.integers(0, len(lines) - 1))
    edit = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "replace", "tail"]))
    if edit == "delete":
        del lines[at]
    elif edit == "duplicate":
        lines.insert(at, lines[at])
    elif edit == "indent":
        lines[at] = "  " + lines[at]
    elif edit == "dedent":
        lines[at] = lines[at][2:]
    elif edit == "replace":
        lines[at] = draw(
            st.sampled_from(
                ["    blocks:", "      - x", "  n:", "# note", "x: 1", "    adopted:",
                 "    - address: 10.0.0.1", "      ifname: eth0", "      pod: a/b"]
            )
        )  # fmt: skip
    else:
        lines[at] = lines[at] + draw(st.sampled_from([" # c", " {}", ": 1", "'"]))
    return "\n".join(lines)


@settings(max_examples=400, deadline=None)
@given(edited_locks())
def test_the_line_reader_never_reads_other_data_than_yaml(text: str) -> None:
    """Anything the line reader accepts, YAML reads as the same data; else it gives way."""
    data = _written_data(text)
    if data is None:
        return
    assert data == yaml.safe_load(text)
