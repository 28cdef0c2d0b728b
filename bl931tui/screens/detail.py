"""One scan, described: replicas with their evidence, retention calendar, actions, events."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

import humanize
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from bl931tui.commands import bindings
from bl931tui.details import ScanDetail, load_detail
from bl931tui.render import printable
from bl931tui.widgets.keybar import KeyBar
from engine.model import Level
from engine.state import ActionStatus

if TYPE_CHECKING:
    from bl931tui.app import Bl931App

LEVEL_STYLE = {Level.CHECKSUM: "green", Level.SIZE: "green", Level.PRESENT: "yellow"}


def stamp(moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        return moment[:19].replace("T", " ")
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title, title_justify="left", title_style="bold", box=None, padding=(0, 2, 0, 0)
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def render_detail(detail: ScanDetail, now: datetime, width: int = 160) -> RenderableType:
    """The whole description as one renderable (tested without an app).

    What an operator decides from comes first: the retention calendar (when each copy may go
    and what it waits on) and what the last pass held back, then the evidence. Narrower than
    120 columns, the evidence leaves out the checksum (the head line has it).
    """
    narrow = width < 120
    parts: list[RenderableType] = []
    scan = detail.scan
    head = Text(printable(detail.scan_id), "bold")
    if scan is not None:
        head.append(
            f"\n{humanize.naturalsize(scan.size)} in {scan.file_count} file(s) · acquired "
            f"{stamp(scan.acquired_at)} ({humanize.naturaldelta(now - scan.acquired_at)} ago) · "
            f"{scan.checksum_algorithm} {scan.checksum} · version {scan.version}"
        )
    else:
        head.append("\nnot in the inventory (yet)", "yellow")
    if detail.export_control:
        head.append(f"\n⛔ {detail.export_control}", "red")
    if detail.hold is not None:
        hold = detail.hold
        until = f" until {stamp(hold.expires_at)}" if hold.expires_at else " (no expiry)"
        head.append(
            f"\n⏸ held by {hold.placed_by} since {stamp(hold.placed_at)}{until}: {hold.reason}",
            "magenta",
        )
    parts.append(head)

    calendar = _table("Retention calendar", "endpoint", "prune due", "needs first", "waits on")
    for entry in detail.calendar:
        needs = ", ".join(
            f"{'✓' if ok else '✗'} {name} ({entry.verify.word})" for name, ok in entry.requires
        )
        calendar.add_row(entry.endpoint, stamp(entry.due_at), needs or "—", entry.waits_on)
    parts.append(calendar)

    if detail.blocked:
        held = _table("Held back (last pass)", "kind", "at", "why", "since")
        for record in detail.blocked:
            held.add_row(
                record.kind,
                record.endpoint or "catalog",
                Text(f"{record.reason_code}: {record.reason}", "magenta"),
                stamp(record.since),
            )
        parts.append(held)

    replicas = _table("Replicas", "endpoint", "level", "size", "files", "evidence", "task", "when")
    for r in detail.replicas:
        if r.pruned_at:
            replicas.add_row(
                r.endpoint, Text("– pruned", "dim"), "", "", "", "", stamp(r.pruned_at)
            )
            continue
        ev = r.evidence
        evidence = "—"
        if ev is not None and narrow:
            evidence = f"{ev.level.word} by {ev.how}"
        elif ev is not None:
            evidence = f"{ev.level.word} · {ev.algorithm or ''} {ev.value or ''} · by {ev.how}"
        replicas.add_row(
            r.endpoint,
            Text(r.level.word, LEVEL_STYLE.get(r.level, "dim")),
            humanize.naturalsize(r.size) if r.level else "",
            str(r.files) if r.level else "",
            evidence,
            (ev.task_id or "—") if ev else "—",
            stamp(ev.verified_at if ev else r.observed_at),
        )
    parts.append(replicas)

    actions = _table("Actions", "kind", "route", "status", "reason / error", "attempts", "updated")
    for a in sorted(detail.actions, key=lambda a: a.updated_at, reverse=True):
        route = f"{a.source or ''}→{a.target or ''}" if a.kind.value == "copy" else a.target or ""
        status = a.status
        decision = detail.decisions.get(a.id)
        if decision is not None:
            status += f" ({decision[0]}d by {decision[1]})"
        elif a.requires_approval and a.status == ActionStatus.PLANNED:
            status += " (awaiting approval)"
        why = a.error if a.status == ActionStatus.FAILED and a.error else a.reason
        actions.add_row(a.kind.value, route, status, why, str(a.attempts), stamp(a.updated_at))
    parts.append(actions)

    events = _table("Events", "when", "kind", "message")
    for event in reversed(detail.events):
        style = "red" if event["level"] == "error" else ""
        events.add_row(stamp(event["at"]), event["kind"], Text(event["message"], style))
    parts.append(events)
    return Group(*[p for part in parts for p in (part, Text(""))])


class DetailScreen(Screen[None]):
    SCOPE = "detail"
    BINDINGS: ClassVar[list[BindingType]] = bindings("detail")  # type: ignore[assignment]
    DEFAULT_CSS = """
    DetailScreen VerticalScroll { padding: 0 1; }
    """

    def __init__(self, scan_id: str) -> None:
        super().__init__()
        self.scan_id = scan_id
        self.detail: ScanDetail | None = None

    @property
    def bl931(self) -> Bl931App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"reading {printable(self.scan_id)}…", "dim"), id="detail")
        yield KeyBar(self.SCOPE)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self.reload()

    def on_snapshot(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load(self.scan_id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load(self, scan_id: str) -> None:
        store = self.bl931.reader()
        if store is None:
            return
        now = self.bl931.clock()
        detail = load_detail(store, self.bl931.policy, scan_id, now)
        self.app.call_from_thread(self._show, detail, now)

    def _show(self, detail: ScanDetail, now: datetime) -> None:
        self.detail = detail
        width = self.query_one("#detail", Static).content_region.width or self.app.size.width
        self.query_one("#detail", Static).update(render_detail(detail, now, width))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_hold(self) -> None:
        self.bl931.ask_hold(self.scan_id)

    def action_lift(self) -> None:
        self.bl931.ask_lift(self.scan_id)

    def action_retry(self) -> None:
        self.bl931.retry_scan(self.scan_id)

    def action_restore(self) -> None:
        """Ask for a recall of this scan from tape (the same request as `--restore`)."""
        self.bl931.ask_restore(self.scan_id, self.reload)

    def action_undo(self) -> None:
        """Take back this scan's rejections (or, with none, its unspent approvals)."""
        standing = self.detail.standing if self.detail is not None else ()
        rejected = [item for item in standing if item.state == "rejected"]
        approved = [item for item in standing if item.state == "approved"]
        if rejected:
            self.bl931.ask_undo(rejected, "reject", self.reload)
        elif approved:
            self.bl931.ask_undo(approved, "approve", self.reload)
        else:
            self.notify(
                f"nothing to un-reject or revoke on {printable(self.scan_id)}", title="undo"
            )
