from __future__ import annotations

import pytest

from calicc.compiler.selector import SelectorError, parse_selector

LABELS = {"rack": "r1", "zone": "a", "gpu": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all()", True),
        ("rack == 'r1'", True),
        ("rack == 'r2'", False),
        ("rack != 'r2'", True),
        ('rack in {"r1", "r2"}', True),
        ("rack not in {'r1'}", False),
        ("has(gpu)", True),
        ("!has(gpu)", False),
        ("has(missing) || zone == 'a'", True),
        ("has(missing) || (zone == 'a' && rack == 'r2')", False),
        ("!(rack == 'r2') && zone == 'a'", True),
        ("topology.kubernetes.io/zone == 'a'", False),
    ],
)
def test_selector_matches(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty selector; use all()"),
        ("rack ==", "selector ends early; expected a quoted value"),
        ("rack = 'r1'", "unexpected character"),
        ("rack == r1", "expected a quoted value such as 'r1'"),
        ("rack == 'r1' zone == 'a'", "join terms with && or ||"),
        ("has(rack", "selector ends early; expected ')'"),
        ("rack like 'r1'", "expected ==, !=, in or not in after 'rack'"),
    ],
)
def test_selector_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_selector(text)
