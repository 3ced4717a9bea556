"""Calico-style label selectors for nodes: `rack == 'r1' && has(tor)`.

Grammar (a subset of Calico's): `all()`, `has(k)`, `!has(k)`, `k == 'v'`, `k != 'v'`,
`k in {'a', 'b'}`, `k not in {'a'}`, `!expr`, `(expr)`, `&&`, `||`.
A parsed selector is a small tree of frozen dataclasses that can be evaluated against labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from calicc.contract.text import cut

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'[^']*'|"[^"]*")
      | (?P<op>==|!=|&&|\|\||[!(){},])
      | (?P<word>[A-Za-z0-9_./-]+)
    )""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    """A selector that does not parse; the message says what was expected."""


@dataclass(frozen=True)
class All:
    """Matches every label set."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return True."""
        return True


@dataclass(frozen=True)
class Has:
    """Matches when the key is present."""

    key: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the key is present."""
        return self.key in labels


@dataclass(frozen=True)
class In:
    """Matches when the key's value is one of `values` (`==` is In with one value)."""

    key: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the key is present with one of the values."""
        return labels.get(self.key) in self.values


@dataclass(frozen=True)
class Not:
    """Negation."""

    inner: Selector

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return the negation of the inner selector."""
        return not self.inner.matches(labels)


@dataclass(frozen=True)
class And:
    """Conjunction."""

    parts: tuple[Selector, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether every part matches."""
        return all(p.matches(labels) for p in self.parts)


@dataclass(frozen=True)
class Or:
    """Disjunction."""

    parts: tuple[Selector, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether any part matches."""
        return any(p.matches(labels) for p in self.parts)


Selector = All | Has | In | Not | And | Or


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SelectorError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos + 1}")
        tokens.append(match.group(match.lastgroup or "word"))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str) -> str:
        token = self.peek()
        if token is None:
            raise SelectorError(f"selector ends early; expected {what}")
        self.pos += 1
        return token

    def take(self, expected: str) -> str:
        token = self.next(repr(expected))
        if token != expected:
            raise SelectorError(f"expected {expected!r}, found {token!r}")
        return token

    def parse(self) -> Selector:
        result = self.parse_or()
        if self.peek() is not None:
            raise SelectorError(f"unexpected {self.peek()!r}; join terms with && or ||")
        return result

    def parse_or(self) -> Selector:
        parts = [self.parse_and()]
        while self.peek() == "||":
            self.take("||")
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Selector:
        parts = [self.parse_unary()]
        while self.peek() == "&&":
            self.take("&&")
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_unary(self) -> Selector:
        token = self.peek()
        if token == "!":
            self.take("!")
            return Not(self.parse_unary())
        if token == "(":
            self.take("(")
            inner = self.parse_or()
            self.take(")")
            return inner
        return self.parse_term()

    def parse_term(self) -> Selector:
        word = self.next("a label key, has(key) or all()")
        if word in ("all", "has") and self.peek() == "(":
            self.take("(")
            if word == "all":
                self.take(")")
                return All()
            key = self.next("a label key")
            self.take(")")
            return Has(key)
        op = self.next("==, !=, in or not in")
        if op == "==":
            return In(word, frozenset([self.value()]))
        if op == "!=":
            return Not(In(word, frozenset([self.value()])))
        if op == "in":
            return In(word, self.value_set())
        if op == "not" and self.take("in"):
            return Not(In(word, self.value_set()))
        raise SelectorError(f"expected ==, !=, in or not in after {word!r}, found {op!r}")

    def value(self) -> str:
        token = self.next("a quoted value")
        if len(token) < 2 or token[0] not in "'\"" or token[-1] != token[0]:  # noqa: PLR2004
            raise SelectorError(f"expected a quoted value such as 'r1', found {token!r}")
        return token[1:-1]

    def value_set(self) -> frozenset[str]:
        self.take("{")
        values = [self.value()]
        while self.peek() == ",":
            self.take(",")
            values.append(self.value())
        self.take("}")
        return frozenset(values)


def parse_selector(text: str) -> Selector:
    """Parse a selector, raising SelectorError with what was expected."""
    if not text.strip():
        raise SelectorError("empty selector; use all() to select every node")
    return _Parser(text).parse()


def check_selector(value: str | None) -> str | None:
    """Validate a Calico selector (a pydantic field validator); None passes.

    Raises:
        ValueError: naming the selector and what is wrong with it.
    """
    if value is not None:
        try:
            parse_selector(value)
        except SelectorError as exc:
            raise ValueError(f"invalid selector {cut(value)!r}: {exc}") from exc
    return value
