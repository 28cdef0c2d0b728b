"""What a decision's dialog says: exactly what it acts on — each scan, where, how many bytes —
the first few by name and how many more, and how to take the decision back.

An operator approves and rejects prunes of irreplaceable data here; a dialog that names only a
count ("Reject 2 action(s)?") once let a reject hit a row that was not on screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bl931tui.approval_items import ApprovalItem, noun, where
from bl931tui.render import printable, size

FIRST = 4
"""Items named in a dialog before "… and N more" (the dialog fits 80×24)."""


def headline(verb: str, items: Sequence[ApprovalItem]) -> str:
    """`Reject 5 deletes from dtn (11.2 MB):`, or the kinds and endpoints one by one."""
    total = size(sum(item.bytes for item in items))
    kinds = Counter((item.kind, item.target) for item in items)
    if len(kinds) == 1:
        (((kind, target), count),) = kinds.items()
        return f"{verb} {count} {noun(kind, count)}{where(kind, target)} ({total}):"
    parts = ", ".join(
        f"{count} {noun(kind, count)}{where(kind, target)}"
        for (kind, target), count in sorted(kinds.items(), key=lambda e: (e[0][0], e[0][1] or ""))
    )
    return f"{verb} {len(items)} actions: {parts} ({total}):"


def listing(items: Sequence[ApprovalItem], first: int = FIRST, width: int = 64) -> str:
    """One line per item (scan, where, bytes), the first few, then how many more."""
    lines = []
    for item in sorted(items, key=lambda i: i.scan)[:first]:
        tail = f" · {item.where} · {size(item.bytes)}"
        scan = printable(item.scan)
        room = max(12, width - len(tail) - 2)
        if len(scan) > room:
            scan = "…" + scan[len(scan) - room + 1 :]
        lines.append(f"  {scan}{tail}")
    if len(items) > first:
        lines.append(f"  … and {len(items) - first} more")
    return "\n".join(lines)


def reject_body(items: Sequence[ApprovalItem]) -> str:
    return (
        f"{headline('Reject', items)}\n{listing(items)}\n\n"
        "None of them runs while its scan stays the same. To take a rejection back: u on "
        "the Approvals screen, or bl931tui --unreject ID."
    )


def approve_body(items: Sequence[ApprovalItem]) -> str:
    return (
        f"{headline('Approve', items)}\n{listing(items)}\n\n"
        "Each delete is re-checked against fresh copies right before it runs; until then "
        "u (or --revoke) withdraws the approval."
    )


def undo_body(items: Sequence[ApprovalItem], decision: str, user: str) -> str:
    verb = "Un-reject" if decision == "reject" else "Revoke the approval of"
    return (
        f"{headline(verb, items)}\n{listing(items)}\n\n"
        f"From the next pass each awaits approval again. Recorded as {user}."
    )
