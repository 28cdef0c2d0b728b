"""The cells and rows of the scans table: plain values shared by the read model
(`bl931tui.readmodel`, which re-exports them) and the row builder (`bl931tui.rows`)."""

from __future__ import annotations

from typing import NamedTuple


class Cell(NamedTuple):
    """One status cell: a glyph and a word (meaning never rests on colour alone) and a tone."""

    glyph: str
    word: str
    tone: str  # ok · busy · wait · bad · hold · gone · none

    @property
    def text(self) -> str:
        return f"{self.glyph} {self.word}"


VERIFIED = Cell("✓", "verified", "ok")
SIZE_ONLY = Cell("✓", "size", "ok")
PARTIAL = Cell("◐", "partial", "wait")
WAITING = Cell("…", "waiting", "wait")
FAILED = Cell("✗", "failed", "bad")
HOLD = Cell("⏸", "hold", "hold")
PRUNED = Cell("–", "pruned", "gone")
NONE = Cell("·", "none", "none")
PRUNING = Cell("⇄", "pruning", "busy")
REGISTERED = Cell("✓", "registered", "ok")
REGISTERING = Cell("⇄", "registering", "busy")
UPDATE = Cell("~", "update", "wait")
UNKNOWN = Cell("?", "unknown", "unknown")  # the catalog never answered (or was never asked)

# Which filter state each tone puts a scan in.
TONE_STATE = {
    "ok": "verified",
    "busy": "inflight",
    "wait": "waiting",
    "bad": "failed",
    "hold": "hold",
    "gone": "pruned",
}


class ScanRow(NamedTuple):
    """One scan as the scans table shows it; equal rows need no repaint.

    A named tuple rather than a dataclass: 100,000 of them are built per full refresh, and a
    tuple is built several times faster than a frozen dataclass.
    """

    scan: str
    label: str
    size: int
    acquired: float  # epoch seconds
    cells: tuple[Cell, ...]
    next_text: str
    next_tone: str
    states: frozenset[str]
    at: frozenset[str]
    rank: int  # 0 failed · 1 in flight · 2 awaiting approval · 3 waiting · 4 hold · 5 settled
