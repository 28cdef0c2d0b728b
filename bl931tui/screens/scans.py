"""The home screen: one row per scan, a `/` filter, faults-only, sort keys, "showing N of M"."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import humanize
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static

from bl931tui.commands import bindings
from bl931tui.filtering import SORT_KEYS, FilterError, ViewQuery, apply_view
from bl931tui.liveness import owner_alive
from bl931tui.readmodel import CATALOG, ScanRow, Snapshot
from bl931tui.widgets.keybar import KeyBar
from bl931tui.widgets.status import TONE_STYLE, ContextHeader, PulseLine
from bl931tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from bl931tui.app import Bl931App


COMPACT_BELOW = 110
"""Narrower tables (80 columns over SSH) show each stage as its glyph, so the state and the
next action both keep their columns."""


def scan_columns(stages: tuple[str, ...]) -> list[Column]:
    columns = [
        Column("scan", 0, keep_end=True, flex=3),
        Column("size", 8, right=True),
        Column("age", 9, right=True, hide_below=100),
    ]
    columns += [
        Column(
            stage,
            12 if stage == CATALOG else 10,
            compact_below=COMPACT_BELOW,
            compact_width=5,
            compact_title="cat" if stage == CATALOG else stage,
        )
        for stage in stages
    ]
    columns.append(Column("next action · reason", 0, flex=2))
    return columns


def age_text(now: datetime, acquired: float) -> str:
    return humanize.naturaldelta(timedelta(seconds=max(0.0, now.timestamp() - acquired)))


class ScanCells:
    """Formats a visible row when it is painted; ages are relative to the app's clock at
    that moment (never to when the row last changed)."""

    def __init__(self) -> None:
        self.now = datetime.fromtimestamp(0).astimezone()

    def __call__(self, row: ScanRow) -> list[Text]:
        texts = [
            Text(row.label),
            Text(humanize.naturalsize(row.size)),
            Text(age_text(self.now, row.acquired)),
        ]
        texts += [Text(cell.text, TONE_STYLE[cell.tone]) for cell in row.cells]
        texts.append(Text(row.next_text, TONE_STYLE[row.next_tone]))
        return texts


class ScansScreen(Screen[None]):
    """Scans, live: updates swap rows under a cursor that stays on its scan."""

    SCOPE = "scans"
    BINDINGS: ClassVar[list[BindingType]] = bindings("scans")  # type: ignore[assignment]
    DEFAULT_CSS = """
    ScansScreen #filter { dock: top; height: 1; border: none; padding: 0 1; display: none; }
    ScansScreen #filter.active { display: block; }
    ScansScreen #showing { height: 1; padding: 0 1; background: $panel; }
    """

    class ViewReady(Message):
        def __init__(self, rows: list[ScanRow], query: ViewQuery, snapshot: Snapshot) -> None:
            super().__init__()
            self.rows = rows
            self.query = query
            self.snapshot = snapshot

    def __init__(self) -> None:
        super().__init__()
        self.query_state = ViewQuery()
        self.snapshot: Snapshot | None = None
        self.filter_error: str | None = None
        self.shown = 0
        self.cells = ScanCells()

    @property
    def bl931(self) -> Bl931App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield ContextHeader(id="context")
        yield PulseLine(id="pulse")
        yield Input(
            placeholder="filter: text  state:failed  at:cfs  awaiting:approval", id="filter"
        )
        yield VirtualTable[ScanRow](
            scan_columns(self.bl931.stages),
            cells=self.cells,
            key=lambda row: row.scan,
            empty=self.empty_text(),
            id="scans",
        )
        yield Static(id="showing")
        yield KeyBar(self.SCOPE)

    def empty_text(self) -> str:
        app = self.bl931
        if app.store_missing:
            return (
                f"no state store yet at {app.state_path_shown}: start the service "
                "(bl931tui --reconcile), or run one pass (bl931tui --reconcile --once); "
                "either creates it, and the scans it finds appear here"
            )
        return f"no scans yet: each scan found at {app.config.inventory.endpoint} appears here"

    def on_mount(self) -> None:
        self.query_one("#filter", Input).cursor_blink = False
        self.query_one(VirtualTable).focus()
        self.update_status()

    # ---- data flow -----------------------------------------------------------------------
    def show_snapshot(self, snapshot: Snapshot) -> None:
        """A new snapshot from the app's refresh worker: recompute the view off the loop (unless
        only the figures around the rows changed: the same rows keep the view shown)."""
        previous, self.snapshot = self.snapshot, snapshot
        if previous is not None and previous.rows is snapshot.rows:
            self.update_status()
            return
        self.recompute()

    def recompute(self) -> None:
        if self.snapshot is not None:
            self._compute_view(self.snapshot, self.query_state)

    @work(thread=True, exclusive=True, group="view", exit_on_error=False, description="scans view")
    def _compute_view(self, snapshot: Snapshot, query: ViewQuery) -> None:
        try:
            rows = apply_view(snapshot.rows, query)
        except FilterError as exc:
            self.app.call_from_thread(self._filter_failed, str(exc))
            return
        self.post_message(self.ViewReady(rows, query, snapshot))

    def _filter_failed(self, message: str) -> None:
        self.filter_error = message
        self.update_status()

    @on(ViewReady)
    def _view_ready(self, message: ViewReady) -> None:
        current = self.snapshot
        if (
            message.query != self.query_state
            or current is None
            or (message.snapshot.rows is not current.rows)
        ):
            return  # a newer question is on its way
        self.filter_error = None
        self.shown = len(message.rows)
        self.query_one(VirtualTable).set_rows(message.rows)
        self.update_status()

    def _age_rows(self) -> None:
        """Move the ages on to the app's clock, repainting only rows whose age text changed."""
        now, before = self.bl931.clock(), self.cells.now
        if now == before:
            return
        self.cells.now = now
        self.query_one(VirtualTable).refresh_visible(
            lambda row: age_text(now, row.acquired) != age_text(before, row.acquired)
        )

    def update_status(self) -> None:
        """Header, pulse, ages and the "showing N of M" line (cheap: visible rows only)."""
        app = self.bl931
        self._age_rows()
        self.query_one(ContextHeader).show(
            beamline=app.config.beamline.name,
            snapshot=self.snapshot,
            now=app.clock(),
            interval=app.config.service.interval_seconds,
            read_only=app.read_only,
            user=app.user,
            paused=app.paused,
            alive=owner_alive(self.snapshot.heartbeat if self.snapshot else None),
            read_at=app.checked_at,
        )
        self.query_one(PulseLine).show(
            self.snapshot, missing=app.state_path_shown if app.store_missing else None
        )
        self.query_one(VirtualTable).set_empty(self.empty_text())
        q = self.query_state
        total = self.snapshot.total if self.snapshot else 0
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"showing {self.shown:,} of {total:,} scans", "bold")
        if self.snapshot is not None and self.snapshot.partial:
            text.append(" (reading all…)", "italic")
        if q.text:
            text.append(f" · filter: {q.text}")
        if q.faults_only:
            text.append(" · faults only", "bold yellow")
        text.append(f" · sort: {q.sort} {'↑' if q.reverse else '↓'}")
        if self.filter_error:
            text.append(f" · ✗ {self.filter_error}", "bold red")
        self.query_one("#showing", Static).update(text)

    def _set_query(self, **changes: object) -> None:
        self.query_state = replace(self.query_state, **changes)  # type: ignore[arg-type]
        self.update_status()
        self.recompute()

    # ---- actions -------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("active")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("active")
        self.query_one(VirtualTable).focus()
        if self.query_state.text:
            self._set_query(text="")

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_query(text=event.value.strip())

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.remove_class("active")
        self.query_one(VirtualTable).focus()

    def action_toggle_faults(self) -> None:
        self._set_query(faults_only=not self.query_state.faults_only)

    def action_cycle_sort(self) -> None:
        keys = SORT_KEYS
        self._set_query(sort=keys[(keys.index(self.query_state.sort) + 1) % len(keys)])

    def action_reverse_sort(self) -> None:
        self._set_query(reverse=not self.query_state.reverse)

    @on(VirtualTable.Selected)
    def _open(self, event: VirtualTable.Selected) -> None:
        self.bl931.open_detail(event.key)

    def action_open(self) -> None:
        if (scan := self._current_scan()) is not None:
            self.bl931.open_detail(scan)

    def _current_scan(self) -> str | None:
        return self.query_one(VirtualTable).cursor_key

    def action_hold(self) -> None:
        if (scan := self._current_scan()) is not None:
            self.bl931.ask_hold(scan)

    def action_lift(self) -> None:
        if (scan := self._current_scan()) is not None:
            self.bl931.ask_lift(scan)

    def action_retry(self) -> None:
        if (scan := self._current_scan()) is not None:
            self.bl931.retry_scan(scan)
