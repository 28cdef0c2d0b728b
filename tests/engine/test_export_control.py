"""Export control through the planner: an export-controlled scan never goes off-site.

Hypothesis draws random policies, observations, off-site endpoints, notify flags and
`[export_control]` rules (tests/engine/test_planner_properties.py's world), and checks every
plan: no copy of a controlled or undecided scan into an off-site endpoint, no delete of such a
scan that relies on an off-site copy, and the blocked reasons say so with the right class.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.export_control import (
    CONTROLLED,
    UNKNOWN,
    ExportControl,
    ExportControlConfig,
)
from engine.model import ActionKind, Outcome, blocked_outcome
from engine.planner import PlanInput, plan
from tests.engine.test_planner_properties import inputs

RULE_GLOBS = ["2026/s0*.h5", "2026", "**/s1?.h5", "other/**"]


@st.composite
def controlled_inputs(draw: st.DrawFn) -> PlanInput:
    inp = draw(inputs())
    names = inp.policy.endpoints
    offsite = frozenset(draw(st.sets(st.sampled_from(names[1:]), min_size=1)))
    flags = {sid: draw(st.booleans()) for sid in draw(st.sets(st.sampled_from(sorted(inp.scans))))}
    rules = None
    if draw(st.booleans()):
        rules = ExportControlConfig(
            controlled=tuple(draw(st.lists(st.sampled_from(RULE_GLOBS), max_size=2))),
            cleared=tuple(draw(st.lists(st.sampled_from(RULE_GLOBS), max_size=2))),
        )
    return replace(inp, export_control=ExportControl(offsite, rules, flags))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(controlled_inputs())
def test_controlled_scans_never_reach_offsite(inp: PlanInput) -> None:
    control = inp.export_control
    assert control is not None
    result = plan(inp)
    for action in result.actions:
        verdict = control.verdict(action.scan)
        if verdict.controlled is not False and action.kind is ActionKind.COPY:
            assert action.target not in control.offsite, (action, verdict)
        if verdict.controlled is not False and action.kind is ActionKind.DELETE:
            requires = inp.policy.retention[action.target].delete_requires
            assert not control.offsite.intersection(requires), (action, verdict)
    flagged = {scan for scan, _ in result.export_controlled}
    for scan in inp.scans:
        assert (scan in flagged) == bool(control.verdict(scan).controlled)
    for blocked in result.blocked:
        if blocked.reason_code == CONTROLLED:
            assert control.verdict(blocked.scan).controlled is True
            assert blocked_outcome(blocked.reason_code) is Outcome.SETTLED
        if blocked.reason_code == UNKNOWN:
            assert control.verdict(blocked.scan).controlled is None
            assert blocked_outcome(blocked.reason_code) is Outcome.PENDING


@SETTINGS
@given(controlled_inputs())
def test_cleared_scans_plan_as_without_export_control(inp: PlanInput) -> None:
    """Export control takes nothing from a scan known not to be controlled. (The per-pass
    delete cap is shared by all scans: a controlled scan's blocked delete leaves room for
    another's, so the cap is lifted here.)"""
    control = inp.export_control
    assert control is not None
    inp = replace(inp, policy=replace(inp.policy, max_deletes_per_pass=1000))
    free = {s for s in inp.scans if control.verdict(s).controlled is False}
    with_control = plan(inp)
    without = plan(replace(inp, export_control=None))
    assert {a.id for a in with_control.actions if a.scan in free} == {
        a.id for a in without.actions if a.scan in free
    }


def test_a_flag_wins_over_a_cleared_rule_and_a_rule_over_a_notify_without_it() -> None:
    rules = ExportControlConfig(controlled=("secret",), cleared=("**",))
    control = ExportControl(
        frozenset({"cfs"}), rules, {"open/a.h5": True, "secret/b.h5": False, "open/c.h5": False}
    )
    assert control.verdict("open/a.h5").controlled is True  # notify flag over cleared rule
    assert control.verdict("secret/b.h5").controlled is True  # folder rule over notify False
    assert control.verdict("secret/b.h5").source == "rule secret"
    assert control.verdict("open/c.h5").controlled is False
    assert control.verdict("open/d.h5") == control.verdict("open/d.h5")
    assert control.verdict("open/d.h5").source == "rule **"
    unknown = ExportControl(frozenset({"cfs"}), ExportControlConfig(controlled=("x/**",)), {})
    assert unknown.verdict("y/z.h5").controlled is None
    assert ExportControl(frozenset({"cfs"})).verdict("y/z.h5").controlled is False
