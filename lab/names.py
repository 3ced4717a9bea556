"""Deterministic names for everything a lab creates, all derived from the lab's name.

Every namespace of lab NAME starts with `calicc-NAME.` (a dot cannot appear in a lab name), so
`calicc lab down` finds them all, also after a crash. Interface names stay within IFNAMSIZ.
"""

from __future__ import annotations

import hashlib
import re

from calicc.contract.names import IFNAMSIZ

PREFIX = "calicc-"
MAX_NS = 60  # well under NAME_MAX; keeps `ip netns list` readable
LAB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,22}[a-z0-9])?")


def short_hash(text: str, length: int = 8) -> str:
    """Return a stable hex digest prefix of `text` (sha256, so any PYTHONHASHSEED agrees)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def check_lab_name(name: str) -> str:
    """Return `name` if it is a valid lab name, else raise ValueError saying what is valid."""
    if not LAB_NAME.fullmatch(name):
        raise ValueError(
            f"lab name {name!r} is not valid: use 1-24 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def lab_prefix(lab: str) -> str:
    """Return the prefix shared by every namespace of lab `lab`."""
    return f"{PREFIX}{lab}."


def ns_name(lab: str, role: str, name: str = "") -> str:
    """Return the namespace name for `role` (node, br, router, ext, peer) and an object name.

    Long names are cut and given a hash of the full name so they stay unique.
    """
    base = f"{lab_prefix(lab)}{role}" + (f"-{name}" if name else "")
    if len(base) <= MAX_NS:
        return base
    return f"{base[: MAX_NS - 9]}-{short_hash(base)}"


def port_name(kind: str, name: str) -> str:
    """Return an interface name of at most 15 characters: `kind` plus a hash of `name`."""
    text = f"{kind}{short_hash(name, IFNAMSIZ - len(kind))}"
    return text[:IFNAMSIZ]
