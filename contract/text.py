"""Text helpers both sides use when they quote a value back or write it into rule text."""

from __future__ import annotations

import re

SHOWN_CHARS = 80
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every control character but tab


def cut(value: object, limit: int = SHOWN_CHARS) -> str:
    """Return `value` as text of at most `limit` characters, so errors never echo a huge input.

    Examples:
        >>> cut("x" * 100, 40)
        'xxxxxxxxxxxxxxxxxxxx...(100 characters)'
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...({len(text)} characters)"
