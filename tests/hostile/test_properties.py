"""Properties of the loader and the name validators, over any string (hypothesis).

Any value put into a field that reaches a node's files is either refused with an error located
at that field (file, line, field path) or compiles to files that the stock tools accept:
`bash -n` (routes.sh), `bird -p` (bird.conf), `ipset restore` and `iptables-restore --test` in a
scratch network namespace (routes.sh and the rules are the shared files node.json names). The
loader turns any text or bytes into data or a located error.
"""

from __future__ import annotations

import copy
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.errors import SpecError
from calicc.compiler.load import parse_yaml, read_input
from calicc.compiler.snippets import check_snippets
from calicc.compiler.toolcheck import bash_parse, bird_parse
from calicc.contract.fields import DNS1123_LABEL, DNS1123_SUBDOMAIN, INTERFACE, LABEL_NAME
from calicc.contract.names import BIRD_CONFIG, IPTABLES_FILE, MANIFEST, ROUTES_FILE
from calicc.lab.netns import ns_add, ns_delete, ns_run
from tests.conftest import is_root

BASE: dict[str, Any] = {
    "name": "prop",
    "network_cidr": "10.244.0.0/16",
    "pools": [{"name": "extra", "cidr": "10.245.0.0/16", "vxlan_mode": "Never"}],
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "labels": {"rack": "r1"}},
        {"name": "n2", "address": "10.0.0.2/24"},
    ],
}
TRICKY = list("az09AZ-._/:\"' \n\t\r$`;\\{}#*@=!|&<>()[]~\x00\x1b\u00e9\u2028")
WEIRD = st.text(alphabet=st.sampled_from(TRICKY), max_size=24) | st.text(max_size=24)
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def near(pattern: str) -> st.SearchStrategy[str]:
    """Valid values of `pattern`, and the same with one tricky character added."""
    valid = st.from_regex(pattern, fullmatch=True).filter(lambda s: 0 < len(s) <= 40)
    spoiled = st.tuples(valid, st.sampled_from(TRICKY)).map(lambda p: p[0] + p[1])
    return valid | spoiled | WEIRD


Setter = Callable[[dict[str, Any], str], None]


def _node(key: str) -> Setter:
    return lambda data, value: data["nodes"][0].__setitem__(key, value)


FIELDS: dict[str, tuple[Setter, str, st.SearchStrategy[str]]] = {
    "node name": (_node("name"), "nodes[0].name", near(DNS1123_SUBDOMAIN.pattern)),
    "interface": (_node("interface"), "nodes[0].interface", near(INTERFACE.pattern)),
    "label key": (
        lambda d, v: d["nodes"][0].__setitem__("labels", {v: "x"}),
        "nodes[0].labels",
        near(LABEL_NAME.pattern),
    ),
    "label value": (
        lambda d, v: d["nodes"][0].__setitem__("labels", {"rack": v}),
        "nodes[0].labels.rack",
        near(LABEL_NAME.pattern),
    ),
    "pool name": (
        lambda d, v: d["pools"][0].__setitem__("name", v),
        "pools[0].name",
        near(DNS1123_SUBDOMAIN.pattern),
    ),
    "cluster name": (
        lambda d, v: d.__setitem__("name", v),
        "name",
        near(DNS1123_LABEL.pattern),
    ),
    "autodetection": (
        lambda d, v: d.__setitem__("ip_autodetection_method", v),
        "ip_autodetection_method",
        st.sampled_from(["interface=", "skip-interface=", "cidr=", "can-reach="]).flatmap(
            lambda kind: near(r"[a-z0-9.]{1,10}").map(lambda v: kind + v)
        ),
    ),
    "reflector id": (
        _node("route_reflector_cluster_id"),
        "nodes[0].route_reflector_cluster_id",
        near(r"1\.0\.0\.[0-9]{1,3}"),
    ),
    "node selector": (
        lambda d, v: d["pools"][0].__setitem__("node_selector", f"rack == '{v}'"),
        "pools[0].node_selector",
        near(LABEL_NAME.pattern),
    ),
    "bird snippet": (
        lambda d, v: d.__setitem__("bird_snippets", {"bottom": v}),
        "bird_snippets.bottom",
        st.sampled_from(["# ", "define x = ", "log stderr ", "protocol static s { ipv4; }"]).map(
            str
        )
        | WEIRD,
    ),
}


@pytest.fixture(scope="module")
def scratch_ns() -> Iterator[str | None]:
    """One namespace for every example's ipset and iptables checks (None without root)."""
    if not is_root():
        yield None
        return
    name = f"calicc-t-{uuid.uuid4().hex[:6]}-prop"
    ns_add(name)
    yield name
    ns_delete(name)


def _refused_at(exc: SpecError, field: str) -> None:
    located = [p for p in exc.problems if p.line is not None and p.field.startswith(field)]
    assert located, f"not located at {field}: {exc}"


def _tools_accept(files: dict[str, str], name: str, ns: str | None) -> None:
    """The node's files pass the tools: its own bird.conf, and the shared files node.json
    names for its roles (the routes script every node runs, the rules of its kind)."""
    node = f"nodes/{name}/"
    roles = json.loads(files[node + MANIFEST])["files"]
    assert bash_parse(files[roles[ROUTES_FILE]["source"]]) is None
    assert bird_parse(files[node + BIRD_CONFIG]) is None
    if ns is None:
        return
    sets = ns_run(ns, ["ipset", "restore"], False, files["cluster/ipsets.restore"])
    assert sets.returncode == 0, sets.stderr
    rules = ns_run(
        ns,
        ["iptables-restore", "--noflush", "--test"],
        False,
        files[roles[IPTABLES_FILE]["source"]],
    )
    assert rules.returncode == 0, rules.stderr


def _compile(data: dict[str, Any], field: str, ns: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="calicc-prop-") as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        try:
            inputs = load_cluster(path)
            compiled = compile_cluster(inputs)
            problems = check_snippets(inputs.source, compiled.plan)
            if problems:
                raise SpecError(problems)
        except SpecError as exc:
            _refused_at(exc, field)
            return
        _tools_accept(compiled.files, data["nodes"][0]["name"], ns)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_any_value_is_refused_at_its_field_or_renders_files_the_tools_accept(
    name: str, scratch_ns: str | None
) -> None:
    setter, field, values = FIELDS[name]

    @SETTINGS
    @given(value=values)
    def check(value: str) -> None:
        data = copy.deepcopy(BASE)
        setter(data, value)
        _compile(data, field, scratch_ns)

    check()


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n[]{}&*!|>'\"#?,%@`\t")), max_size=60))
def test_any_text_loads_or_fails_located(text: str) -> None:
    try:
        parse_yaml(text, Path("cluster.yaml"))
    except SpecError as exc:
        unlocated = [p for p in exc.problems if p.file != "cluster.yaml" or p.line is None]
    else:
        unlocated = []
    assert not unlocated


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_any_bytes_read_as_text_or_fail_located(raw: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".yaml") as handle:
        handle.write(raw)
        handle.flush()
        try:
            text = read_input(Path(handle.name))
        except SpecError as exc:
            positions = [(p.line, p.column) for p in exc.problems]
        else:
            assert text.encode() == raw.removeprefix(b"\xef\xbb\xbf")
            return
    assert len(positions) == 1
    assert None not in positions[0]
