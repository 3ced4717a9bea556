"""iptables rule text both sides write, spelled the way `iptables-save` prints it.

Rules are spelled in iptables-save's canonical form (`-p tcp -m tcp --dport 80`, quoted
comments, `--set-xmark`), so a node can compare its live chains with the rendered ones as text.

Mark bits are Calico's: accept 0x10000, pass 0x20000 (inside Calico's 0xffff0000 mask); calicc
only ever sets or clears these two bits, never another tool's.
"""

from __future__ import annotations

from calicc.contract.text import CONTROL

MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
ACCEPT_MATCH = f"-m mark --mark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
NOT_ACCEPTED = f"-m mark ! --mark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
SET_ACCEPT = f"-j MARK --set-xmark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
CLEAR_MARKS = f"-j MARK --set-xmark 0x0/{MARK_ACCEPT | MARK_PASS:#x}"
PASS_MATCH = f"-m mark --mark {MARK_PASS:#x}/{MARK_PASS:#x}"
NOT_PASSED = f"-m mark ! --mark {MARK_PASS:#x}/{MARK_PASS:#x}"
SET_PASS = f"-j MARK --set-xmark {MARK_PASS:#x}/{MARK_PASS:#x}"
CLEAR_PASS = f"-j MARK --set-xmark 0x0/{MARK_PASS:#x}"
DECIDED = f"-m mark ! --mark 0x0/{MARK_ACCEPT | MARK_PASS:#x}"  # accept or pass mark set
COMMENT_MAX = 255
_UNSAVED = str.maketrans({'"': "`", "'": "`", "\\": "/"})


def comment(text: str) -> str:
    """Return a comment match (quotes made safe, cut to the kernel's 255 characters).

    iptables-save escapes double quotes, apostrophes and backslashes inside a quoted comment
    (an apostrophe reads back as backslash-apostrophe), so the text holds none of them: the
    saved rule then reads exactly as written, and the agent finds the chain unchanged.

    Examples:
        >>> print(comment('say "hi"'))
        -m comment --comment "say `hi`"
    """
    safe = CONTROL.sub(" ", text.translate(_UNSAVED))[:COMMENT_MAX]
    return f'-m comment --comment "{safe}"'


def tracked_rules(chain: str) -> list[str]:
    """Return the first rules of an endpoint chain: accept established, drop invalid."""
    return [
        rule(
            chain,
            "-m conntrack --ctstate RELATED,ESTABLISHED",
            comment("established or related"),
            "-j ACCEPT",
        ),
        rule(chain, "-m conntrack --ctstate INVALID", comment("invalid"), "-j DROP"),
    ]


def rule(chain: str, *parts: str) -> str:
    """Join an `-A chain` rule from its non-empty parts.

    Examples:
        >>> rule("cali-x", "", "-j DROP")
        '-A cali-x -j DROP'
    """
    return " ".join(["-A", chain, *(p for p in parts if p)])
