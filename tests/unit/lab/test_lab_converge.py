"""Waiting for convergence: only unconverged parts are polled, and one sweep must pass."""

from __future__ import annotations

import pytest

from calicc.lab.converge import Part, converge
from calicc.lab.verify import FAIL, PASS, Row
from calicc.lab.wait import WaitTimeout


def _part(name: str, verdicts: list[str], reads: list[str]) -> Part:
    """A part whose n-th read has verdict verdicts[n] (the last one repeats)."""

    def rows() -> list[Row]:
        reads.append(name)
        status = verdicts[min(reads.count(name), len(verdicts)) - 1]
        return [Row("bgp", name, "Established", "seen", status)]

    return Part(name, rows)


def test_converged_parts_are_not_polled_again_until_the_final_sweep() -> None:
    reads: list[str] = []
    slow = _part("slow", [FAIL, FAIL, PASS], reads)
    fast = _part("fast", [PASS], reads)
    lines: list[str] = []
    rows = converge([fast, slow], timeout=10, progress=lines.append)
    assert [r.subject for r in rows] == ["fast", "slow"]
    assert all(r.status == PASS for r in rows)
    assert reads.count("fast") == 2  # once, then in the sweep
    assert reads.count("slow") == 4  # three polls, then the sweep
    assert lines[-1].startswith("converged: 2/2 daemons and nodes")


def test_a_part_failing_in_the_sweep_is_polled_again() -> None:
    reads: list[str] = []
    flappy = _part("flappy", [PASS, FAIL, PASS], reads)
    rows = converge([flappy], timeout=10)
    assert [r.status for r in rows] == [PASS]
    assert reads.count("flappy") == 4  # pass, sweep fails, pass, sweep passes


def test_timeout_names_the_failing_rows() -> None:
    reads: list[str] = []
    never = _part("node-7", [FAIL], reads)
    fine = _part("node-1", [PASS], reads)
    with pytest.raises(WaitTimeout) as caught:
        converge([fine, never], timeout=0)
    text = str(caught.value)
    assert "node-7: Established / seen" in text
    assert "node-1" not in text
