"""`--approve-all`: what it approves, named before anything is recorded, and the count typed back.

The summary is the TUI dialog's (`bl931tui/confirm_text.py`): count, bytes and kind per endpoint,
then the first scans by name and how many more. Without `--yes` the operator types the count
back on a terminal, as in the TUI's dialog, so a stray `y` or Enter approves nothing; an answer
that is not the count, an end of input, Ctrl-C, or a stdin that is not a terminal approves
nothing and exits non-zero (`NotConfirmed`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bl931tui.approval_items import KIND_ORDER, ApprovalItem, noun, where
from bl931tui.confirm_text import headline, listing
from bl931tui.render import size
from engine.errors import UsageError
from engine.model import Action

FIRST = 10
"""Scans named before "… and N more" (the rest are in `--dry-run`)."""


class NotConfirmed(Exception):
    """The operator did not type the count back: nothing was approved (exit 1)."""


def items(actions: Sequence[Action]) -> list[ApprovalItem]:
    return [
        ApprovalItem(a.id, a.kind.value, a.scan, a.source, a.target, a.bytes, a.reason)
        for a in actions
    ]


def summary(actions: Sequence[Action]) -> str:
    """`Approve 12 deletes from dtn (24.0 kB):` — or, for several kinds or endpoints, the total
    and one line per kind and endpoint with its count and bytes — then the first scans and
    `… and 2 more`."""
    chosen = items(actions)
    groups: dict[tuple[str, str | None], list[ApprovalItem]] = {}
    for item in chosen:
        groups.setdefault((item.kind, item.target), []).append(item)
    if len(groups) == 1:
        head = headline("Approve", chosen)
    else:
        total = size(sum(item.bytes for item in chosen))
        ordered = sorted(groups.items(), key=lambda g: KIND_ORDER.get(g[0][0], 9))
        head = "\n".join(
            [f"Approve {len(chosen)} actions ({total}):"]
            + [
                f"  {len(group)} {noun(kind, len(group))}{where(kind, target)} "
                f"({size(sum(i.bytes for i in group))})"
                for (kind, target), group in ordered
            ]
        )
    return f"{head}\n{listing(chosen, first=FIRST, width=76)}"


def confirm(actions: Sequence[Action]) -> None:
    """Ask for the count typed back on the terminal.

    Raises:
        UsageError: stdin is not a terminal (exit 64): nothing approved, add `--yes`.
        NotConfirmed: anything but the count was typed (exit 1): nothing approved.
    """
    count = len(actions)
    if not sys.stdin.isatty():
        raise UsageError(
            "Nothing approved: --approve-all asks for the count typed back on a terminal, and "
            "stdin is not one; add --yes to approve without asking."
        )
    total = size(sum(a.bytes for a in actions))
    question = (
        f"Type {count} to approve these {count} actions ({total}); anything else approves nothing: "
    )
    try:
        answer = input(question).strip()
    except (EOFError, KeyboardInterrupt):
        print()
        raise NotConfirmed("Nothing approved: no answer.") from None
    if answer != str(count):
        raise NotConfirmed(f"Nothing approved: you typed {answer!r}, not {count}.")
