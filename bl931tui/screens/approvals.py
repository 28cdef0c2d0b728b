"""Pending gated actions, grouped ("delete 120 scans from dtn · 12.3 GB"); approve or reject."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import humanize
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from bl931tui.commands import bindings
from bl931tui.details import ApprovalGroup, ApprovalItem, pending_approvals
from bl931tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from bl931tui.app import Bl931App


def group_title(kind: str, target: str | None, count: int, size: int) -> str:
    noun = "scan" if count == 1 else "scans"
    where = f" from {target}" if kind == "delete" else f" to {target}" if target else ""
    return f"{kind} {count:,} {noun}{where} · {humanize.naturalsize(size)}"


def group_cells(group: ApprovalGroup) -> list[Text]:
    return [Text(group_title(group.kind, group.target, len(group.items), group.bytes), "bold")]


def item_cells(item: ApprovalItem) -> list[Text]:
    from bl931tui.render import printable

    return [
        Text(item.kind),
        Text(item.target or ""),
        Text(humanize.naturalsize(item.bytes)),
        Text(printable(item.scan)),
        Text(item.reason, "dim"),
        Text(item.id, "dim"),
    ]


class ApprovalsScreen(Screen[None]):
    """Groups on top, the highlighted group's actions below; decisions go through the app."""

    SCOPE = "approvals"
    BINDINGS: ClassVar[list[BindingType]] = bindings("approvals")  # type: ignore[assignment]
    DEFAULT_CSS = """
    ApprovalsScreen #groups { height: 6; border-bottom: solid $primary; }
    ApprovalsScreen #summary { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.groups: tuple[ApprovalGroup, ...] = ()

    @property
    def bl931(self) -> Bl931App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("reading pending approvals…", id="summary")
        yield VirtualTable[ApprovalGroup](
            [Column("awaiting approval")],
            cells=group_cells,
            key=lambda g: f"{g.kind}:{g.target}",
            empty="nothing awaits approval",
            id="groups",
        )
        yield VirtualTable[ApprovalItem](
            [
                Column("kind", 7),
                Column("at", 6),
                Column("size", 9, right=True),
                Column("scan", 0, keep_end=True),
                Column("reason", 0, hide_below=100),
                Column("action id", 16, hide_below=120),
            ],
            cells=item_cells,
            key=lambda item: item.id,
            empty="select a group",
            id="items",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#items", VirtualTable).focus()
        self.reload()

    def on_snapshot(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="approvals", exit_on_error=False)
    def _load(self) -> None:
        store = self.bl931.reader()
        groups = pending_approvals(store) if store is not None else ()
        self.app.call_from_thread(self._show, groups)

    def _show(self, groups: tuple[ApprovalGroup, ...]) -> None:
        self.groups = groups
        table = self.query_one("#groups", VirtualTable)
        table.set_rows(groups)
        self._show_items()
        total = sum(len(g.items) for g in groups)
        size = sum(g.bytes for g in groups)
        mode = " · READ-ONLY: decisions refused" if self.bl931.read_only else ""
        self.query_one("#summary", Static).update(
            Text(
                f"{total:,} actions await approval · {humanize.naturalsize(size)}"
                f" · space marks, y approves, x rejects, A approves all{mode}",
                no_wrap=True,
                overflow="ellipsis",
            )
        )

    @on(VirtualTable.Highlighted, "#groups")
    def _group_moved(self) -> None:
        self._show_items()

    def _current_group(self) -> ApprovalGroup | None:
        return self.query_one("#groups", VirtualTable).cursor_row

    def _show_items(self) -> None:
        group = self._current_group()
        items = self.query_one("#items", VirtualTable)
        items.set_rows(group.items if group else ())
        valid = {item.id for g in self.groups for item in g.items}
        items.marked &= valid

    def _chosen(self) -> list[ApprovalItem]:
        items = self.query_one("#items", VirtualTable)
        everything = [item for g in self.groups for item in g.items]
        if items.marked:
            return [item for item in everything if item.id in items.marked]
        row = items.cursor_row
        return [row] if row is not None else []

    def action_next_group(self) -> None:
        groups = self.query_one("#groups", VirtualTable)
        groups.move_cursor((groups.cursor + 1) % max(1, len(self.groups)))

    def action_approve(self) -> None:
        self.bl931.ask_approve(self._chosen(), self._decided)

    def action_approve_all(self) -> None:
        self.bl931.ask_approve([item for g in self.groups for item in g.items], self._decided)

    def action_reject(self) -> None:
        self.bl931.ask_reject(self._chosen(), self._decided)

    def _decided(self) -> None:
        self.query_one("#items", VirtualTable).marked.clear()
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()
