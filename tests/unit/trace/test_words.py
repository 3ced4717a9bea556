"""trace/rules.py splits rule text as shlex does (its fast path and its fallback)."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calicc.trace.matches import RuleError
from calicc.trace.rules import _words
from tests.conftest import EXAMPLES

RENDERED = sorted(EXAMPLES.glob("*/rendered/cluster/ip*tables/*.rules"))


def test_every_rendered_rule_splits_as_shlex_does() -> None:
    lines = [ln for p in RENDERED for ln in p.read_text().splitlines() if ln.startswith("-A ")]
    assert len(lines) > 300
    for line in lines:
        assert _words(line) == shlex.split(line), line


@pytest.mark.parametrize(
    "text",
    [
        '-A X -m comment --comment "a b" -j ACCEPT',
        '-A X -m comment --comment "" -j ACCEPT',
        '-A X -m comment --comment "say \\"hi\\"" -j ACCEPT',
        '-A X -m comment --comment a"b c"d -j ACCEPT',
        "-A X -m comment --comment 'single quoted' -j ACCEPT",
        '"-A" X -j ACCEPT',
        '-A X --log-prefix "calicc-host: "',
    ],
)
def test_quoting_the_fast_path_does_not_take_falls_back_to_shlex(text: str) -> None:
    assert _words(text) == shlex.split(text)


def test_an_unbalanced_quote_is_a_rule_error() -> None:
    with pytest.raises(RuleError, match="in rule"):
        _words('-A X -m comment --comment "open -j ACCEPT')


@given(st.lists(st.text(alphabet="ab \"\\'-", min_size=0, max_size=6), max_size=6))
def test_any_text_splits_as_shlex_or_both_refuse(parts: list[str]) -> None:
    text = " ".join(parts)
    try:
        expected = shlex.split(text)
    except ValueError:
        with pytest.raises(RuleError):
            _words(text)
        return
    assert _words(text) == expected
