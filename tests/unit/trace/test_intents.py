"""Reachability intents (trace/intents.py): the file, its located errors, and each intent checked
by a trace on examples/policies-demo (allow, deny, encapsulation, path MTU)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from calicc.compiler.errors import SpecError
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.intents import check_intents, load_intents
from tests.support.trace_demo import demo_cluster


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return demo_cluster()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_intents_that_hold_give_no_violation(tmp_path: Path, demo: Cluster) -> None:
    path = write(
        tmp_path,
        """
        intents:
          - {name: nginx, from: demo/client, to: demo/nginx, port: 80/TCP,
             expect: allow, encapsulation: ipip, min_mtu: 1480}
          - {name: quarantine, from: quarantine/suspect, to: demo/nginx, port: 80/TCP,
             expect: deny}
          - {name: ping-nginx, from: demo/client, to: demo/nginx, expect: allow}
        """,
    )
    intents = load_intents(path)
    assert [i.where for i in intents] == [f"{path}:2", f"{path}:4", f"{path}:6"]
    assert check_intents(intents, demo) == []


def test_each_contradiction_is_named_with_its_trace(tmp_path: Path, demo: Cluster) -> None:
    path = write(
        tmp_path,
        """
        intents:
          - {name: wrong-verdict, from: quarantine/suspect, to: demo/nginx, port: 80/TCP,
             expect: allow}
          - {name: wrong-encap, from: demo/client, to: demo/nginx, port: 80/TCP,
             expect: allow, encapsulation: none}
          - {name: too-small, from: demo/client, to: demo/nginx, port: 80/TCP,
             expect: allow, min_mtu: 1500}
        """,
    )
    found = check_intents(load_intents(path), demo)
    assert [(v.intent.name, v.reason) for v in found] == [
        ("wrong-verdict", "expected allow, the trace says denied"),
        (
            "wrong-encap",
            "expected encapsulation none, the path takes ipip "
            "(10.244.0.0/26 via 10.30.0.11 dev tunl0 onlink)",
        ),
        ("too-small", "expected a path MTU of at least 1500, it is 1480"),
    ]
    assert found[0].trace.checks[-1].policy is not None


def test_an_intent_that_names_nothing_is_an_error_naming_it(tmp_path: Path, demo: Cluster) -> None:
    path = write(
        tmp_path, "intents:\n  - {name: x, from: shop/nobody, to: demo/nginx, expect: deny}\n"
    )
    with pytest.raises(TraceError, match=rf"intent x \({path}:2\): unknown pod shop/nobody"):
        check_intents(load_intents(path), demo)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  - {name: a, from: x, to: y, expect: maybe}", "intents[0].expect"),
        ("  - {name: a, from: x, to: y, expect: deny, port: http}", "intents[0].port: "),
        ("  - {name: a, from: x, to: y, expect: deny, min_mtu: 20}", "intents[0].min_mtu"),
        ("  - {name: a, from: x, to: y, expect: deny, colour: red}", "intents[0].colour"),
        ("  - {name: A_b, from: x, to: y, expect: deny}", "intents[0].name"),
        (
            "  - {name: a, from: x, to: y, expect: deny}\n" * 2,
            "intents[1].name: intent a is named twice (also at line 2)",
        ),
    ],
)
def test_bad_intents_are_located(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, "intents:\n" + body + "\n")
    with pytest.raises(SpecError) as caught:
        load_intents(path)
    shown = [str(p) for p in caught.value.problems]
    assert any(s.startswith(f"{path}:") and expected in s for s in shown), shown
