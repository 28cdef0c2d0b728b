"""Plans as text, in Terraform's grammar: `+ copy`, `- delete`, `! blocked`, then one summary line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import humanize

from engine.model import Action, ActionKind, Outcome, Plan

SIGN = {
    ActionKind.COPY: "+",
    ActionKind.REGISTER: "+",
    ActionKind.UPDATE_CATALOG: "~",
    ActionKind.DELETE: "-",
}


def printable(path: str) -> str:
    """A scan path safe to print: control characters and undecodable bytes made visible."""
    out = []
    for ch in path:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # surrogate-escaped byte from a non-UTF-8 name
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def size(n: int) -> str:
    return humanize.naturalsize(n, binary=False)


def action_line(action: Action) -> str:
    sign = SIGN[action.kind]
    if action.kind is ActionKind.COPY:
        where = f"{action.source} → {action.target}"
    elif action.kind is ActionKind.DELETE:
        where = f"from {action.target}"
    else:
        where = "catalog"
    extra = ""
    if action.requires_approval:
        extra = " [approved]" if action.approved else f" [awaiting approval: {action.id}]"
    volume = f"  {size(action.bytes)}" if action.bytes else ""
    return (
        f"  {sign} {action.kind.value:<14} {printable(action.scan)}  {where}{volume}"
        f"  # {action.reason}{extra}"
    )


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    parts = [
        f"{s['copy']} to copy",
        f"{s['register']} to register",
        f"{s['update_catalog']} catalog updates",
        f"{s['delete']} to delete ({s['awaiting_approval']} awaiting approval)",
        f"{s['blocked']} blocked",
        f"{s['in_flight']} in flight",
    ]
    line = "Plan: " + ", ".join(parts) + "."
    if plan.errors:
        line += f" {len(plan.errors)} endpoint error(s)."
    if plan.alert_details:
        line += f" {len(plan.alert_details)} alert(s)."
    if plan.problems:
        line += f" {len(plan.problems)} scan(s) could not be inventoried."
    return line


def render_plan(plan: Plan, *, verbose: bool = False, blocked_limit: int = 20) -> str:
    """The human form of a plan (what `--dry-run` prints)."""
    lines: list[str] = [
        f"bl931 plan as of {plan.as_of.isoformat(timespec='seconds')} ({plan.plan_digest_short()})",
        "",
    ]
    for alert in plan.alert_details:
        ack = " (--acknowledge to accept)" if alert.cleared_by.value != "condition" else ""
        lines.append(f"  !! ALERT [{alert.id}] {printable(alert.message)}{ack}")
    for text in plan.alerts[len(plan.alert_details) :]:
        lines.append(f"  !! ALERT {text}")
    for error in plan.errors:
        lines.append(f"  ✗ error  {error.endpoint}: {error.message} ({error.error_class.value})")
    for problem in plan.problems:
        lines.append(f"  ✗ problem {printable(str(problem))}")
    if plan.alerts or plan.errors or plan.problems:
        lines.append("")
    for action in plan.actions:
        lines.append(action_line(action))
    for flight in plan.in_flight:
        where = f"{flight.source} → {flight.target}" if flight.source else f"at {flight.target}"
        lines.append(f"  ⇄ {flight.kind.value:<14} {printable(flight.scan)}  {where}  # in flight")
    shown = plan.blocked if verbose else plan.blocked[:blocked_limit]
    for blocked in shown:
        at = f" at {blocked.endpoint}" if blocked.endpoint else ""
        lines.append(
            f"  ! blocked {blocked.kind.value}{at} {printable(blocked.scan)}: "
            f"{blocked.reason_code} — {blocked.reason}"
        )
    hidden = len(plan.blocked) - len(shown)
    if hidden > 0:
        by_code = Counter(b.reason_code for b in plan.blocked[len(shown) :])
        detail = ", ".join(f"{code} {n}" for code, n in by_code.most_common())
        lines.append(f"  … and {hidden} more blocked ({detail}); --verbose lists them all")
    outcome = plan.outcome()
    if outcome is Outcome.SETTLED:
        lines.append(
            "  No changes: every scan is where the policy wants it (or waits for its date)."
        )
    elif outcome is Outcome.NEEDS_PERSON and not plan.actions and not plan.in_flight:
        lines.append("  Nothing can move until what is reported above is looked at.")
    lines += ["", _verdict(outcome), summary_line(plan)]
    return "\n".join(lines)


def _verdict(outcome: Outcome) -> str:
    return {
        Outcome.SETTLED: "Settled.",
        Outcome.PENDING: "Work pending.",
        Outcome.NEEDS_PERSON: "Needs a person: see the errors, alerts, problems or blocked entries above.",
    }[outcome]


def render_ids(actions: Iterable[Action]) -> str:
    return "\n".join(action_line(a) for a in actions)
