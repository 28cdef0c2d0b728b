"""Tasks (each batch: its scans, start, elapsed time, rate and ETA, and below the highlighted
one its scans one by one) and Events (the audit log, filterable; enter reads one in full)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import humanize
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Input, Static

from bl931tui.commands import bindings
from bl931tui.details import TaskView, load_events, load_tasks
from bl931tui.render import printable, size
from bl931tui.screens.event_dialog import EventDialog
from bl931tui.widgets.keybar import KeyBar
from bl931tui.widgets.status import short_delta
from bl931tui.widgets.virtual_table import Column, VirtualTable
from engine.state import OPEN_TASK_STATES, TaskRowStatus
from engine.store.views import scans_of_task
from engine.task_progress import ScanProgress

if TYPE_CHECKING:
    from bl931tui.app import Bl931App

STATUS_STYLE: dict[str, str] = {
    TaskRowStatus.ACTIVE: "cyan",
    TaskRowStatus.PREPARING: "yellow",
    TaskRowStatus.SUCCEEDED: "green",
    TaskRowStatus.FAILED: "bold red",
}
TASKS_EMPTY = (
    "no tasks yet: copies and deletes appear here in batches while they run, "
    "and for a while after they finish"
)
EVENTS_EMPTY = "no events yet: every scan found, copy, delete, decision and alert is recorded here"
SCANS_LISTED = 4


def started_text(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "—"
    return f"{moment:%H:%M}" if moment.date() == now.date() else f"{moment:%m-%d}"


class TaskCells:
    """Formats a task row against the app's clock at paint time."""

    def __init__(self) -> None:
        self.now = datetime.fromtimestamp(0).astimezone()

    def __call__(self, task: TaskView) -> list[Text]:
        done = task.bytes_done / task.bytes_total if task.bytes_total else 0.0
        eta = task.eta_seconds
        route = (
            f"{task.kind} {task.source}→{task.target}"
            if task.source
            else f"{task.kind} {task.target}"
        )
        elapsed = task.elapsed(self.now)
        return [
            Text(task.status, STATUS_STYLE.get(task.status, "")),
            Text(route),
            Text(f"{task.scans:,}"),
            Text(f"{done:4.0%}" if task.bytes_total else "—"),
            Text(started_text(task.created_at, self.now)),
            Text(short_delta(elapsed) if elapsed is not None else "—"),
            Text(f"{humanize.naturalsize(task.rate)}/s" if task.rate else "—"),
            Text(short_delta(timedelta(seconds=eta)) if eta is not None else "—"),
            Text(printable(task.first_scan or "")),
            Text(f"{size(task.bytes_done)}/{size(task.bytes_total)}"),
            Text(f"{task.files_done}/{task.files_total}"),
            Text(task.task_id or task.submission_id, "dim"),
            Text(task.error or task.label, "red" if task.error else "dim"),
        ]


def _fit(line: str, width: int, *, keep_end: bool = False) -> str:
    if len(line) <= width:
        return line
    return "…" + line[len(line) - width + 1 :] if keep_end else line[: width - 1] + "…"


def describe_task(task: TaskView, scans: list[ScanProgress], now: datetime, width: int) -> str:
    """The highlighted task in words, then its scans, each with its own progress (one line
    each, paths shortened from the left so the file name stays)."""
    where = f"{task.source} → {task.target}" if task.source else f"at {task.target}"
    started = f"{task.created_at:%Y-%m-%d %H:%M:%S}" if task.created_at else "—"
    elapsed = task.elapsed(now)
    took = f" ({humanize.naturaldelta(elapsed)})" if elapsed is not None else ""
    reported = any(scan.bytes_done is not None for scan in scans)
    lines = [
        _fit(
            f"{task.kind} {where} · {task.status} · started {started}{took} · "
            f"{task.task_id or task.submission_id}",
            width,
        ),
        f"{len(scans)} scan(s)"
        + ("" if reported else ", progress per scan not reported by this mover")
        + ":",
    ]
    for scan in scans[:SCANS_LISTED]:
        share = (
            f" · {scan.files_done} file(s), {size(scan.bytes_done)}"
            if scan.bytes_done is not None
            else ""
        )
        path = _fit(printable(scan.scan), max(12, width - len(share) - 2), keep_end=True)
        lines.append(f"  {path}{share}")
    if len(scans) > SCANS_LISTED:
        lines.append(f"  … and {len(scans) - SCANS_LISTED} more")
    return "\n".join(lines)


class _StoreScreen(Screen[None]):
    @property
    def bl931(self) -> Bl931App:
        return self.app  # type: ignore[return-value]

    def on_snapshot(self) -> None:
        self.reload()

    def reload(self) -> None:
        raise NotImplementedError

    def action_back(self) -> None:
        self.app.pop_screen()


class TasksScreen(_StoreScreen):
    SCOPE = "tasks"
    BINDINGS: ClassVar[list[BindingType]] = bindings("tasks")  # type: ignore[assignment]
    DEFAULT_CSS = """
    TasksScreen #summary { height: 1; padding: 0 1; background: $panel; }
    TasksScreen #task { height: 7; padding: 0 1; border-top: solid $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.cells = TaskCells()

    def compose(self) -> ComposeResult:
        yield Static("reading tasks…", id="summary")
        yield VirtualTable[TaskView](
            [
                Column("status", 9),
                Column("route", 13),
                Column("scans", 5, right=True),
                Column("done", 5, right=True),
                Column("started", 7),
                Column("elapsed", 7, right=True),
                Column("rate", 10, right=True),
                Column("eta", 6, right=True),
                Column("first scan (all below)", 0, keep_end=True, hide_below=100),
                Column("bytes", 19, right=True, hide_below=120),
                Column("files", 9, right=True, hide_below=120),
                Column("task", 0, keep_end=True, hide_below=140),
                Column("label / error", 0, hide_below=170),
            ],
            cells=self.cells,
            key=lambda t: t.submission_id,
            empty=TASKS_EMPTY,
        )
        yield Static(id="task")
        yield KeyBar(self.SCOPE)

    def on_mount(self) -> None:
        self.query_one(VirtualTable).focus()
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="tasks", exit_on_error=False)
    def _load(self) -> None:
        store = self.bl931.reader()
        tasks = load_tasks(store) if store is not None else ()
        self.app.call_from_thread(self._show, tasks)

    def _show(self, tasks: tuple[TaskView, ...]) -> None:
        self.cells.now = self.bl931.clock()
        active = [t for t in tasks if t.status in OPEN_TASK_STATES]
        moving = sum(t.bytes_total - t.bytes_done for t in active)
        self.query_one("#summary", Static).update(
            f"{len(active)} active task(s), {size(moving)} to go · "
            f"{len(tasks) - len(active)} recently finished"
        )
        self.query_one(VirtualTable).set_rows(tasks)
        self._describe()

    @on(VirtualTable.Highlighted)
    def _moved(self) -> None:
        self._describe()

    def _describe(self) -> None:
        task = self.query_one(VirtualTable).cursor_row
        if task is None:
            self.query_one("#task", Static).update("")
            return
        self._load_scans(task)

    @work(thread=True, exclusive=True, group="task-scans", exit_on_error=False)
    def _load_scans(self, task: TaskView) -> None:
        store = self.bl931.reader()
        scans = scans_of_task(store, task.submission_id) if store is not None else []
        pane = self.query_one("#task", Static)
        text = describe_task(task, scans, self.bl931.clock(), pane.content_region.width or 78)
        self.app.call_from_thread(pane.update, Text(text))


def event_cells(event: dict[str, Any]) -> list[Text]:
    style = {"error": "bold red", "warning": "yellow"}.get(event["level"], "")
    level = {"warning": "warn"}.get(event["level"], event["level"])
    return [
        Text(event["at"][5:19].replace("T", " ")),
        Text(level, style),
        Text(event["kind"]),
        Text(printable(event["scan"] or "")),
        Text(event["message"], style),
    ]


class EventsScreen(_StoreScreen):
    SCOPE = "events"
    BINDINGS: ClassVar[list[BindingType]] = bindings("events")  # type: ignore[assignment]
    DEFAULT_CSS = """
    EventsScreen #filter { height: 1; border: none; padding: 0 1; }
    EventsScreen #summary { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def compose(self) -> ComposeResult:
        box = Input(placeholder="/ filter: words, level:error, kind:delete", id="filter")
        box.cursor_blink = False
        yield box
        yield Static("reading events…", id="summary")
        yield VirtualTable[dict[str, Any]](
            [
                Column("when", 14),
                Column("level", 5),
                Column("kind", 16),
                Column("scan", 0, keep_end=True),
                Column("message", 0),
            ],
            cells=event_cells,
            key=lambda e: str(e["seq"]),
            empty=EVENTS_EMPTY,
        )
        yield KeyBar(self.SCOPE)

    def on_mount(self) -> None:
        self.query_one(VirtualTable).focus()
        self.reload()

    def reload(self) -> None:
        self._load(self.text)

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def _load(self, text: str) -> None:
        store = self.bl931.reader()
        events = load_events(store, text) if store is not None else []
        self.app.call_from_thread(self._show, events, text)

    def _show(self, events: list[dict[str, Any]], text: str) -> None:
        shown = f"newest {len(events):,} events" + (f" matching {text!r}" if text else "")
        self.query_one("#summary", Static).update(shown + " · enter reads one in full")
        table = self.query_one(VirtualTable)
        table.set_empty(f"no event matches {text!r}" if text else EVENTS_EMPTY)
        table.set_rows(events)

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_open(self) -> None:
        event = self.query_one(VirtualTable).cursor_row
        if event is not None:
            self.app.push_screen(EventDialog(event))

    @on(VirtualTable.Selected)
    def _selected(self) -> None:
        self.action_open()

    @on(Input.Changed, "#filter")
    def _changed(self, event: Input.Changed) -> None:
        self.text = event.value.strip()
        self.reload()

    @on(Input.Submitted, "#filter")
    def _submitted(self) -> None:
        self.query_one(VirtualTable).focus()
