"""Tasks (bytes, files, rate, ETA of each batch) and Events (the audit log, filterable)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import humanize
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from bl931tui.commands import bindings
from bl931tui.details import TaskView, load_events, load_tasks
from bl931tui.render import printable
from bl931tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from bl931tui.app import Bl931App

STATUS_STYLE = {"active": "cyan", "preparing": "yellow", "succeeded": "green", "failed": "bold red"}


def task_cells(task: TaskView) -> list[Text]:
    done = task.bytes_done / task.bytes_total if task.bytes_total else 0.0
    eta = task.eta_seconds
    route = f"{task.source or ''}→{task.target}" if task.source else f"at {task.target}"
    return [
        Text(task.status, STATUS_STYLE.get(task.status, "")),
        Text(task.kind),
        Text(route),
        Text(f"{done:4.0%}" if task.bytes_total else "—"),
        Text(f"{humanize.naturalsize(task.bytes_done)}/{humanize.naturalsize(task.bytes_total)}"),
        Text(f"{task.files_done}/{task.files_total}"),
        Text(f"{humanize.naturalsize(task.rate)}/s" if task.rate else "—"),
        Text(humanize.naturaldelta(timedelta(seconds=eta)) if eta is not None else "—"),
        Text(task.task_id or task.submission_id, "dim"),
        Text(task.error or task.label, "red" if task.error else "dim"),
    ]


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
    DEFAULT_CSS = "TasksScreen #summary { height: 1; padding: 0 1; background: $panel; }"

    def compose(self) -> ComposeResult:
        yield Static("reading tasks…", id="summary")
        yield VirtualTable[TaskView](
            [
                Column("status", 9),
                Column("kind", 6),
                Column("route", 10),
                Column("done", 5, right=True),
                Column("bytes", 19, right=True),
                Column("files", 9, right=True),
                Column("rate", 10, right=True),
                Column("eta", 10, right=True),
                Column("task", 0, keep_end=True),
                Column("label / error", 0, hide_below=130),
            ],
            cells=task_cells,
            key=lambda t: t.submission_id,
            empty="no tasks yet",
        )
        yield Footer()

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
        active = [t for t in tasks if t.status in ("preparing", "active")]
        moving = sum(t.bytes_total - t.bytes_done for t in active)
        self.query_one("#summary", Static).update(
            f"{len(active)} active task(s), {humanize.naturalsize(moving)} to go · "
            f"{len(tasks) - len(active)} recently finished"
        )
        self.query_one(VirtualTable).set_rows(tasks)


def event_cells(event: dict[str, Any]) -> list[Text]:
    style = {"error": "bold red", "warning": "yellow"}.get(event["level"], "")
    return [
        Text(event["at"][:19].replace("T", " ")),
        Text(event["level"], style),
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
                Column("when", 19),
                Column("level", 7),
                Column("kind", 18),
                Column("scan", 30, keep_end=True, hide_below=120),
                Column("message", 0),
            ],
            cells=event_cells,
            key=lambda e: str(e["seq"]),
            empty="no events",
        )
        yield Footer()

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
        self.query_one("#summary", Static).update(shown)
        self.query_one(VirtualTable).set_rows(events)

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(Input.Changed, "#filter")
    def _changed(self, event: Input.Changed) -> None:
        self.text = event.value.strip()
        self.reload()

    @on(Input.Submitted, "#filter")
    def _submitted(self) -> None:
        self.query_one(VirtualTable).focus()
