"""The reason codes of blocked entries are a public contract: docs/audit.md's table of them,
the engine's `ReasonCode` and the exit classes agree, and the planner gives no other code."""

from __future__ import annotations

import re
from pathlib import Path

from engine.model import Outcome, blocked_outcome
from engine.planner import plan
from engine.rules.reasons import ReasonCode

AUDIT = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
CLASSES = {
    "settled": Outcome.SETTLED,
    "pending": Outcome.PENDING,
    "needs a person": Outcome.NEEDS_PERSON,
}


def documented() -> dict[str, str]:
    """reason_code → class, from the table under "Reason codes of blocked entries"."""
    text = AUDIT.read_text(encoding="utf-8")
    section = text.split("### Reason codes of blocked entries", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([a-z ]+) \|", section, flags=re.MULTILINE)
    assert rows, "docs/audit.md has no table of reason codes"
    codes = dict(rows)
    assert len(codes) == len(rows), "a reason code is listed twice"
    return codes


def test_reason_codes_equal_the_documented_table() -> None:
    assert set(documented()) == {code.value for code in ReasonCode}


def test_documented_class_is_the_exit_class() -> None:
    for code, documented_class in documented().items():
        assert blocked_outcome(code) is CLASSES[documented_class], code


def test_values_are_the_strings_the_audit_prints() -> None:
    # The audit JSON, the state store and the TUI compare plain strings.
    assert ReasonCode.ON_HOLD == "on_hold"
    assert f"{ReasonCode.LAST_COPY}" == "last_copy"
    assert "copy_unverified" in {ReasonCode.COPY_UNVERIFIED}


def test_the_planner_gives_only_reason_codes_on_a_large_pass() -> None:
    """On the benchmark's inventory (every stage of the lifecycle); test_planner_memo.py checks
    drawn passes with decisions and failures."""
    from bench.plan_scaling import synthetic_input

    result = plan(synthetic_input(3000))
    codes = {b.reason_code for b in result.blocked}
    assert codes, "the pass blocks nothing: it tests nothing"
    assert all(isinstance(code, ReasonCode) for code in codes)
