"""Decisions in groups ("◷ delete 120 scans from dtn · 12.3 GB"): approve or reject what awaits
approval; un-reject what was rejected, revoke an approval the next pass has not acted on yet.

Marks (space) carry a glyph and are counted, and they belong to the group on screen: moving to
another group drops them, so a decision only ever acts on rows the operator has in front of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from bl931tui.approval_items import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalGroup,
    ApprovalItem,
    approval_groups,
)
from bl931tui.commands import bindings
from bl931tui.render import printable, size
from bl931tui.widgets.keybar import KeyBar
from bl931tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from bl931tui.app import Bl931App

EMPTY = (
    "nothing awaits approval: prunes appear here once their retention has passed and every "
    "copy they rely on is verified"
)


def group_cells(group: ApprovalGroup) -> list[Text]:
    style = {PENDING: "bold", REJECTED: "magenta", APPROVED: "green"}[group.state]
    return [Text(group.title, style)]


def item_cells(item: ApprovalItem) -> list[Text]:
    note = item.reason
    if item.decided_by is not None and item.decided_at is not None:
        note = f"{item.state} by {item.decided_by} {item.decided_at:%Y-%m-%d %H:%M}"
    return [
        Text(item.kind),
        Text(item.where),
        Text(size(item.bytes)),
        Text(printable(item.scan)),
        Text(note, "dim"),
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

    @property
    def pending_groups(self) -> tuple[ApprovalGroup, ...]:
        return tuple(g for g in self.groups if g.state == PENDING)

    def compose(self) -> ComposeResult:
        yield Static("reading decisions…", id="summary")
        yield VirtualTable[ApprovalGroup](
            [Column("decisions")],
            cells=group_cells,
            key=lambda g: g.key,
            empty=EMPTY,
            id="groups",
        )
        yield VirtualTable[ApprovalItem](
            [
                Column("kind", 7),
                Column("at", 9),
                Column("size", 9, right=True),
                Column("scan", 0, keep_end=True),
                Column("reason / decided", 0, hide_below=100),
                Column("action id", 16, hide_below=120),
            ],
            cells=item_cells,
            key=lambda item: item.id,
            empty="select a group",
            markable=True,
            id="items",
        )
        yield KeyBar(self.SCOPE)

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
        groups = approval_groups(store, self.bl931.policy) if store is not None else ()
        self.app.call_from_thread(self._show, groups)

    def _show(self, groups: tuple[ApprovalGroup, ...]) -> None:
        self.groups = groups
        self.query_one("#groups", VirtualTable).set_rows(groups)
        self._show_items()

    def _summary(self) -> None:
        items = self.query_one("#items", VirtualTable)
        group = self._current_group()
        text = Text(no_wrap=True, overflow="ellipsis")
        if items.marked and group is not None:
            text.append(f"{len(items.marked)} marked", "bold reverse")
            text.append(f" of {len(group.items)} in this group · ")
        by_state = {state: [g for g in self.groups if g.state == state] for state in STATE_WORDS}
        for state, words in STATE_WORDS.items():
            count = sum(len(g.items) for g in by_state[state])
            if state == PENDING or count:
                volume = size(sum(g.bytes for g in by_state[state]))
                text.append(f"{count:,} {words} ({volume}) · ")
        hint = {
            PENDING: "space marks · y approves · x rejects · A approves all",
            REJECTED: "u un-rejects (space marks)",
            APPROVED: "u revokes (space marks)",
        }
        text.append(hint[group.state] if group is not None else hint[PENDING])
        if self.bl931.read_only:
            text.append(" · READ-ONLY: decisions refused", "bold yellow")
        self.query_one("#summary", Static).update(text)

    @on(VirtualTable.Highlighted, "#groups")
    def _group_moved(self) -> None:
        self.query_one("#items", VirtualTable).clear_marks()
        self._show_items()

    @on(VirtualTable.MarksChanged, "#items")
    def _marks_changed(self) -> None:
        self._summary()

    def _current_group(self) -> ApprovalGroup | None:
        return self.query_one("#groups", VirtualTable).cursor_row

    def _show_items(self) -> None:
        group = self._current_group()
        items = self.query_one("#items", VirtualTable)
        items.set_rows(group.items if group else ())
        items.marked &= {item.id for item in (group.items if group else ())}
        self._summary()

    def _chosen(self) -> list[ApprovalItem]:
        """The marked rows of the group on screen, else the highlighted row."""
        items = self.query_one("#items", VirtualTable)
        group = self._current_group()
        if group is None:
            return []
        if items.marked:
            return [item for item in group.items if item.id in items.marked]
        row = items.cursor_row
        return [row] if row is not None else []

    def _in_state(self, state: str, doing: str) -> bool:
        group = self._current_group()
        if group is not None and group.state == state:
            return True
        where = {
            PENDING: "a group awaiting approval (◷)",
            REJECTED: "a rejected group (⊘)",
            APPROVED: "an approved group (✓)",
        }
        if state == PENDING:
            self.notify(
                f"{doing}: this group is decided already; u takes the decisions back",
                severity="warning",
            )
        else:
            self.notify(f"{doing}: move to {where[state]} first", severity="warning")
        return False

    def action_mark(self) -> None:
        self.query_one("#items", VirtualTable).action_mark()

    def action_next_group(self) -> None:
        groups = self.query_one("#groups", VirtualTable)
        groups.move_cursor((groups.cursor + 1) % max(1, len(self.groups)))

    def action_approve(self) -> None:
        if self._in_state(PENDING, "approve"):
            self.bl931.ask_approve(self._chosen(), self._decided)

    def action_approve_all(self) -> None:
        pending = [item for g in self.pending_groups for item in g.items]
        self.bl931.ask_approve(pending, self._decided)

    def action_reject(self) -> None:
        if self._in_state(PENDING, "reject"):
            self.bl931.ask_reject(self._chosen(), self._decided)

    def action_undo(self) -> None:
        group = self._current_group()
        if group is None or group.state == PENDING:
            self.notify(
                "nothing decided here: u takes back a rejection (⊘) or an approval (✓)",
                severity="warning",
            )
            return
        decision = "reject" if group.state == REJECTED else "approve"
        self.bl931.ask_undo(self._chosen(), decision, self._decided)

    def _decided(self) -> None:
        self.query_one("#items", VirtualTable).clear_marks()
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()


STATE_WORDS = {
    PENDING: "await approval",
    REJECTED: "rejected",
    APPROVED: "approved, not yet run",
}
