"""The template filters, one registry: each quotes a value for the language it lands in.

Values reaching templates are validated first (contract/fields.py); these filters are the
second line of defence. Every interpolation also passes `one_line` (the environment's finalize):
a value cannot start a new line of a script, a config or a rule unless the view marks it
`Verbatim` (BIRD snippets, blocks rendered from other templates).
"""

from __future__ import annotations

import re
import shlex

from calicc.compiler.errors import RenderError
from calicc.contract.text import CONTROL

BIRD_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')


class Verbatim(str):
    """Text a template includes as it is, line breaks and all (snippets, nested renders)."""

    __slots__ = ()


def verbatim(value: object) -> Verbatim:
    """Mark `value` as multi-line text to include unchanged."""
    return Verbatim(value)


def one_line(value: object) -> object:
    """Refuse an interpolated value holding a line break or a control character."""
    if isinstance(value, Verbatim) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    if CONTROL.search(text):
        raise RenderError(f"refusing to render {text[:60]!r}: it holds a control character")
    return value


def sh(value: object) -> str:
    """Quote one word for bash (safe words stay as they are: eth0, 10.0.0.1/24)."""
    return shlex.quote(str(one_line(value)))


def sh_words(words: object) -> str:
    """Quote each word of a sequence for bash and join them with spaces."""
    if isinstance(words, str):
        raise RenderError(f"sh_words needs a list of words, not the string {words[:60]!r}")
    return " ".join(sh(word) for word in words)  # type: ignore[attr-defined]


def bird_string(value: object) -> str:
    """Return a BIRD string literal; refuse what BIRD would read as its end or an escape."""
    text = str(value)
    if BIRD_UNSAFE.search(text):
        raise RenderError(f"refusing to write {text[:60]!r} as a BIRD string")
    return f'"{text}"'


FILTERS = {"sh": sh, "sh_words": sh_words, "bird_string": bird_string, "verbatim": verbatim}
