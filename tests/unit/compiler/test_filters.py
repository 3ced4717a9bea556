"""Template filters: the second line of defence behind validation."""

from __future__ import annotations

import subprocess

import pytest

from calicc.compiler.errors import RenderError
from calicc.compiler.filters import Verbatim, bird_string, one_line, sh, sh_words
from calicc.compiler.render import make_env

HOSTILE = ['e0";id;"', "$(id)", "`id`", "a b", "x'y", "", "-n", "*", "a\\b"]


@pytest.mark.parametrize("word", HOSTILE)
def test_sh_quotes_a_word_bash_reads_back_unchanged(word: str) -> None:
    script = f"printf '%s' {sh(word)}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == word


def test_sh_leaves_safe_words_as_they_are() -> None:
    assert sh_words(["10.244.0.0/26", "via", "10.0.0.1", "dev", "eth0.100"]) == (
        "10.244.0.0/26 via 10.0.0.1 dev eth0.100"
    )


def test_sh_words_refuses_a_string() -> None:
    with pytest.raises(RenderError):
        sh_words("blackhole 10.0.0.0/8")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\x1bb", "x\n"])
def test_one_line_refuses_line_breaks_and_control_characters(value: str) -> None:
    with pytest.raises(RenderError):
        one_line(value)
    with pytest.raises(RenderError):
        sh(value)


def test_verbatim_text_keeps_its_lines() -> None:
    assert one_line(Verbatim("a\nb")) == "a\nb"


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\nb"])
def test_bird_string_refuses_what_ends_or_escapes_it(value: str) -> None:
    with pytest.raises(RenderError):
        bird_string(value)


def test_every_interpolation_is_one_line() -> None:
    template = make_env().from_string("# node {{ name }}\n")
    assert template.render(name="n1") == "# node n1\n"
    with pytest.raises(RenderError):
        template.render(name="n1\nid")
