"""BIRD snippets checked by stock BIRD, with errors pointing at the cluster file's lines.

bird_snippets is the one text in bird.conf that calicc does not generate, so `calicc build`
parses every bird.conf that holds a snippet with `bird -p` (when BIRD is installed) and
refuses the build when BIRD does. An error inside a snippet is reported at the snippet's line
in the cluster file; one elsewhere at the rendered file.
"""

from __future__ import annotations

import re

from calicc.compiler.errors import Problem
from calicc.compiler.load import Loc, Source, format_loc
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_bird
from calicc.compiler.toolcheck import bird_parse, check_with_tools
from calicc.contract.names import BIRD_CONFIG
from calicc.contract.text import cut

MARKER = re.compile(
    r"# --- bird_snippets\.(?P<part>top|filters|bottom)(?: of node (?P<node>\S+))? \(verbatim"
)
END = "# --- end of snippet ---"
POSITION = re.compile(r"bird\.conf:(?P<line>\d+):(?P<column>\d+):? ?(?P<reason>.*)")


def snippet_at(text: str, line: int) -> tuple[str, str | None, int] | None:
    """Return (part, owner node or None, line within the snippet from 0) of a bird.conf line."""
    lines = text.splitlines()
    for index in range(min(line, len(lines)) - 1, -1, -1):
        if lines[index] == END and index != line - 1:
            return None
        found = MARKER.match(lines[index])
        if found:
            return found["part"], found["node"], line - index - 2
    return None


def _snippet_loc(spec: ClusterSpec, part: str, owner: str | None) -> Loc:
    if owner is None:
        return ("bird_snippets", part)
    index = next(i for i, node in enumerate(spec.nodes) if node.name == owner)
    return ("nodes", index, "bird_snippets", part)


def _first_line(spec: ClusterSpec, loc: Loc) -> int:
    """Lines of the cluster file before the snippet's first trimmed line (block scalars)."""
    owner = spec if loc[0] == "bird_snippets" else spec.nodes[int(loc[1])]
    text = str(getattr(owner.bird_snippets, str(loc[-1]), None) or "")
    leading = len(text) - len(text.lstrip("\n"))
    return leading + (1 if "\n" in text.strip("\n") or text.endswith("\n") else 0)


def _any_snippet(text: str, line: int) -> tuple[str, str | None] | None:
    """Return the snippet to blame for an error outside every snippet.

    BIRD reports an unterminated statement where it gave up, so the blame goes to the last
    snippet before the error line, else to the last snippet of the file.
    """
    markers = [
        (index + 1, found)
        for index, row in enumerate(text.splitlines())
        if (found := MARKER.match(row)) is not None
    ]
    before = [m for at, m in markers if at < line] or [m for _, m in markers]
    return (before[-1]["part"], before[-1]["node"]) if before else None


def locate(source: Source, spec: ClusterSpec, node: str, text: str, error: str) -> Problem:
    """Turn a `bird -p` error on node `node`'s bird.conf into a Problem at its origin."""
    found = POSITION.search(error)
    line = int(found["line"]) if found else 0
    reason = cut(found["reason"] if found else error, 300)
    inside = snippet_at(text, line) if found else None
    if inside is not None:
        part, owner, offset = inside
        message = f"BIRD rejects this snippet (line {offset + 1} of it): {reason}"
    elif (blamed := _any_snippet(text, line)) is not None:
        (part, owner), offset = blamed, None
        message = f"BIRD rejects bird.conf with this snippet (at bird.conf:{line}): {reason}"
    else:
        message = f"BIRD rejects nodes/{node}/{BIRD_CONFIG}: {cut(error, 300)}"
        return Problem(str(source.path), None, None, "", message)
    loc = _snippet_loc(spec, part, owner)
    start, _ = source.position(loc)
    at = start if start is None or offset is None else start + _first_line(spec, loc) + offset
    return Problem(source.file_of(loc), at, None, format_loc(loc), message)


def check_snippets(source: Source, plan: ClusterPlan) -> list[Problem]:
    """Parse with `bird -p` each bird.conf that holds a snippet; return located problems."""
    problems = []
    for node in plan.nodes:
        if not node.snippets:
            continue
        text = render_bird(plan, node)
        error = bird_parse(text)
        if error:
            problems.append(locate(source, plan.spec, node.name, text, error))
    return problems


def tool_problems(source: Source, plan: ClusterPlan, files: dict[str, str]) -> list[str]:
    """Run the stock tools over rendered files; a BIRD error is located in the cluster file."""
    lines = []
    for rel, error in check_with_tools(files):
        parts = rel.split("/")
        node = parts[1] if parts[0] == "nodes" and parts[-1] == BIRD_CONFIG else None
        if node is None:
            lines.append(f"{rel}: {error}")
            continue
        problem = locate(source, plan.spec, node, files[rel], error)
        lines.append(f"{problem}\n  ({rel}: {cut(error, 300)})")
    return lines
