"""A table that renders only the rows on screen, over an in-memory sequence of row values.

Textual's `DataTable` builds every row up front (about 12 s for 100,000 rows); this widget keeps
the rows as plain values and formats the dozen or so visible ones in `render_line`, so a new list
of 100,000 rows costs one assignment and a keystroke repaints two lines. The cursor follows a row
*key* across updates, the scroll offset stays where it was, and when the same rows come back with
a few changed, only the changed lines are repainted.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bl931tui.commands import bindings

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Column:
    """A fixed-width column (`width=0`: takes the space left over)."""

    title: str
    width: int = 0
    right: bool = False
    keep_end: bool = False  # truncate on the left (paths: the file name matters most)
    hide_below: int = 0  # not shown when the table is narrower than this
    # Narrower than `compact_below`: `compact_width` columns, showing only the cell's first
    # word (a state's glyph) under `compact_title`.
    compact_below: int = 0
    compact_width: int = 0
    compact_title: str = ""
    flex: int = 1  # a `width=0` column's share of the space left over

    def compact(self, table_width: int) -> bool:
        return table_width < self.compact_below


class VirtualTable(ScrollView, Generic[RowT], can_focus=True):
    """Rows as values, formatted on demand; a sticky header line; marks by key.

    | Class | Description |
    |---|---|
    | `virtual-table--header` | the column titles |
    | `virtual-table--cursor` | the highlighted row |
    | `virtual-table--marked` | rows marked with space |

    A `markable` table shows a mark column: `●` on each marked row (a glyph, so a mark never
    rests on a background shade alone), and space marks or unmarks the highlighted row
    without moving the cursor.
    """

    BINDINGS: ClassVar[list[BindingType]] = bindings("table")  # type: ignore[assignment]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--marked",
    }
    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        background: $surface;
        scrollbar-size-horizontal: 0;
    }
    VirtualTable > .virtual-table--header { text-style: bold; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    VirtualTable:blur > .virtual-table--cursor { background: $block-cursor-blurred-background; text-style: none; }
    VirtualTable > .virtual-table--marked { background: $warning 30%; }
    """

    class Highlighted(Message):
        """The cursor moved to another row."""

        def __init__(self, table: VirtualTable[Any], key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable[Any]:
            return self.table

    class MarksChanged(Message):
        """Rows were marked or unmarked."""

        def __init__(self, table: VirtualTable[Any]) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> VirtualTable[Any]:
            return self.table

    class Selected(Message):
        """Enter was pressed on a row."""

        def __init__(self, table: VirtualTable[Any], key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable[Any]:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        cells: Callable[[RowT], Sequence[Text]],
        key: Callable[[RowT], str],
        empty: str = "nothing to show",
        markable: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.markable = markable
        self.columns = ((Column("", 1),) if markable else ()) + tuple(columns)
        self._cells = cells
        self._key = key
        self.empty = empty
        self.rows: Sequence[RowT] = ()
        self.cursor = 0
        self.marked: set[str] = set()

    def _texts(self, row: RowT) -> Sequence[Text]:
        texts = self._cells(row)
        if not self.markable:
            return texts
        return [Text("●" if self._key(row) in self.marked else " ", "bold"), *texts]

    def set_empty(self, text: str) -> None:
        """What the table says when it has no rows (what would appear there)."""
        if text != self.empty:
            self.empty = text
            self.refresh()

    def clear_marks(self) -> None:
        if self.marked:
            self.marked.clear()
            self.refresh()
            self.post_message(self.MarksChanged(self))

    # ---- data ----------------------------------------------------------------------------
    @property
    def cursor_key(self) -> str | None:
        return self._key(self.rows[self.cursor]) if self.rows else None

    @property
    def cursor_row(self) -> RowT | None:
        return self.rows[self.cursor] if self.rows else None

    def set_rows(self, rows: Sequence[RowT], *, keep_key: bool = True) -> None:
        """Show `rows`; the cursor stays on its row (by key) and the viewport stays put."""
        old_rows, old_key, old_cursor = self.rows, self.cursor_key, self.cursor
        top = round(self.scroll_y)
        self.rows = rows
        new_cursor = min(old_cursor, max(len(rows) - 1, 0))
        if keep_key and old_key is not None:
            found = self._find(old_key, old_cursor)
            if found is not None:
                new_cursor = found
        self.cursor = new_cursor
        self.virtual_size = Size(self._total_width(), len(rows) + 1)
        if len(old_rows) == len(rows) and new_cursor == old_cursor:
            self._refresh_changed(old_rows, top)
        else:
            # Keep the cursor on the same screen line when its row moved.
            self.scroll_to(y=max(0, top + new_cursor - old_cursor), animate=False, immediate=True)
            self._scroll_cursor_into_view()
            self.refresh()
        if old_key != self.cursor_key:
            self.post_message(self.Highlighted(self, self.cursor_key))

    def _find(self, key: str, hint: int) -> int | None:
        rows, key_of = self.rows, self._key
        if hint < len(rows) and key_of(rows[hint]) == key:
            return hint
        for index, row in enumerate(rows):
            if key_of(row) == key:
                return index
        return None

    def refresh_visible(self, changed: Callable[[RowT], bool]) -> None:
        """Repaint the visible rows for which `changed(row)` is true (e.g. an age that moved
        on while the row itself stayed the same)."""
        top = round(self.scroll_y)
        for index in range(top, min(top + self.size.height - 1, len(self.rows))):
            if changed(self.rows[index]):
                self.refresh(Region(0, index - top + 1, self.size.width, 1))

    def _refresh_changed(self, old_rows: Sequence[RowT], top: int) -> None:
        height = self.size.height - 1
        for index in range(top, min(top + height, len(self.rows))):
            if old_rows[index] != self.rows[index]:
                self.refresh(Region(0, index - top + 1, self.size.width, 1))

    def _total_width(self) -> int:
        return sum(c.width + 1 for c in self.columns)

    # ---- cursor --------------------------------------------------------------------------
    def move_cursor(self, index: int) -> None:
        if not self.rows:
            return
        index = max(0, min(index, len(self.rows) - 1))
        if index == self.cursor:
            return
        top = round(self.scroll_y)
        old = self.cursor
        self.cursor = index
        if not self._scroll_cursor_into_view():
            width = self.size.width
            self.refresh(Region(0, old - top + 1, width, 1), Region(0, index - top + 1, width, 1))
        self.post_message(self.Highlighted(self, self.cursor_key))

    def _scroll_cursor_into_view(self) -> bool:
        """Scroll so the cursor row is visible; True if the viewport moved."""
        top = round(self.scroll_y)
        visible = max(1, self.size.height - 1)
        if self.cursor < top:
            target = self.cursor
        elif self.cursor >= top + visible:
            target = self.cursor - visible + 1
        else:
            return False
        self.scroll_to(y=target, animate=False, immediate=True)
        self.refresh()
        return True

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + max(1, self.size.height - 2))

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - max(1, self.size.height - 2))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self.rows) - 1)

    def action_mark(self) -> None:
        """Mark or unmark the highlighted row; the cursor stays on it (what is under the
        cursor is what was marked)."""
        key = self.cursor_key
        if key is None or not self.markable:
            return
        self.marked.symmetric_difference_update({key})
        self.refresh()
        self.post_message(self.MarksChanged(self))

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(round(self.scroll_y) + event.y - 1)

    # ---- rendering -----------------------------------------------------------------------
    def _widths(self, width: int) -> list[int]:
        """Each column's width at this table width (0: hidden)."""

        def fixed_width(c: Column) -> int:
            return c.compact_width if c.compact(width) else c.width

        shown = [c for c in self.columns if width >= c.hide_below]
        fixed = sum(fixed_width(c) + 1 for c in shown if fixed_width(c))
        flexible = [c for c in shown if not fixed_width(c)]
        spare = max(8, width - fixed - len(flexible))
        shares = max(1, sum(c.flex for c in flexible))
        return [
            0 if width < c.hide_below else fixed_width(c) or spare * c.flex // shares
            for c in self.columns
        ]

    def _line(
        self, texts: Sequence[Text], widths: list[int], style: Style, *, header: bool = False
    ) -> Strip:
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        table_width = self.size.width
        for column, text, width in zip(self.columns, texts, widths, strict=False):
            if not width:
                continue
            cell = text.copy()
            if column.compact(table_width):
                if header:
                    cell = Text(column.compact_title or column.title)
                elif " " in cell.plain:
                    # "⇄ 43%" → "⇄43%" when it fits, else the glyph alone
                    glyph, _, rest = cell.plain.partition(" ")
                    cell = cell[: len(glyph)]
                    if len(glyph) + len(rest) <= width:
                        cell.append(rest)
            if column.keep_end and cell.cell_len > width:
                cell = Text("…") + cell[len(cell) - width + 1 :]
            cell.truncate(width, overflow="ellipsis")
            if column.right:
                cell.pad_left(width - cell.cell_len)
            else:
                cell.pad_right(width - cell.cell_len)
            line.append_text(cell)
            line.append(" ")
        segments = list(line.render(self.app.console))
        strip = Strip(segments).apply_style(style)
        return strip.crop_extend(0, self.size.width, style)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        widths = self._widths(width)
        if y == 0:
            header = self.get_component_rich_style("virtual-table--header")
            titles = [Text(c.title) for c in self.columns]
            return self._line(titles, widths, base + header, header=True)
        index = round(self.scroll_y) + y - 1
        if index >= len(self.rows):
            if not self.rows:  # what would appear here, wrapped to the table's width
                lines = textwrap.wrap(self.empty, max(10, width - 2))
                if index < len(lines):
                    return Strip([Segment(f" {lines[index]}", base)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if self._key(row) in self.marked:
            style = style + self.get_component_rich_style("virtual-table--marked")
        if index == self.cursor:
            style = style + self.get_component_rich_style("virtual-table--cursor")
        return self._line(self._texts(row), widths, style)
