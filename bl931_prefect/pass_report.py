"""A pass as markdown: the Prefect run's artifact (plan summary, blocked reasons, alerts,
errors, the receipts this pass wrote). Pure: no prefect import, tested on its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from engine.reconciler import PassReport
from engine.state import StateStore, iso

_SHOWN = 20  # entries listed per section; the rest are counted


@dataclass(frozen=True, slots=True)
class ReceiptRef:
    scan: str
    endpoint: str
    action_id: str
    task_id: str | None
    deleted_at: str


def receipts_since(store: StateStore, report: PassReport) -> list[ReceiptRef]:
    """The deletion receipts written during this pass."""
    rows = store.connection().execute(
        """SELECT scan, endpoint, action_id, task_id, deleted_at FROM deletions
           WHERE deleted_at >= ? ORDER BY deleted_at, scan""",
        (iso(report.started_at),),
    )
    return [ReceiptRef(*row) for row in rows]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(
    report: PassReport, receipts: Sequence[ReceiptRef], *, beamline: str, title: str = ""
) -> str:
    plan = report.plan
    outcome = plan.outcome().name.lower()
    lines = [
        f"# bl931 pass — {beamline}" + (f" ({title})" if title else ""),
        "",
        f"**{'ok' if report.ok else 'FAILED'}** · outcome `{outcome}` · plan `{plan.digest}`",
        f"started {report.started_at.isoformat()} · finished {report.finished_at.isoformat()}",
        "",
        "| " + " | ".join(report.summary()) + " |",
        "|" + "---|" * len(report.summary()),
        "| " + " | ".join(str(v) for v in report.summary().values()) + " |",
        "",
    ]
    if plan.errors:
        lines += ["## Errors", ""]
        lines += [
            f"- **{_cell(e.endpoint)}** ({e.error_class.value}): {_cell(e.message)}"
            for e in plan.errors
        ]
        lines.append("")
    if plan.alert_details:
        lines += ["## Alerts", ""]
        lines += [
            f"- `{a.id}` **{a.code}** ({a.effect.value}) {_cell(a.message)}"
            for a in plan.alert_details
        ]
        lines.append("")
    if plan.blocked:
        codes = Counter(b.reason_code for b in plan.blocked)
        lines += ["## Blocked", "", "| reason | count |", "|---|---|"]
        lines += [f"| `{code}` | {n} |" for code, n in sorted(codes.items())]
        lines += ["", "| scan | kind | endpoint | reason |", "|---|---|---|---|"]
        for b in plan.blocked[:_SHOWN]:
            lines.append(
                f"| {_cell(b.scan)} | {b.kind.value} | {b.endpoint or ''} | "
                f"`{b.reason_code}`: {_cell(b.reason)} |"
            )
        if len(plan.blocked) > _SHOWN:
            lines.append(f"| … {len(plan.blocked) - _SHOWN} more | | | |")
        lines.append("")
    if plan.export_controlled:
        lines += ["## Export-controlled scans", ""]
        lines += [f"- {_cell(s)} ({_cell(src)})" for s, src in plan.export_controlled[:_SHOWN]]
        lines.append("")
    if receipts:
        lines += ["## Deletion receipts", "", "| scan | endpoint | action | task | at |"]
        lines.append("|---|---|---|---|---|")
        lines += [
            f"| {_cell(r.scan)} | {r.endpoint} | `{r.action_id}` | {r.task_id or ''} | "
            f"{r.deleted_at} |"
            for r in receipts
        ]
        lines += ["", "Read one with `bl931tui --receipt SCAN`."]
    return "\n".join(lines) + "\n"
