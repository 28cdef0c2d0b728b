"""One audit event in full: every field, the whole message wrapped, its data as JSON."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bl931tui.render import printable


def event_table(event: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column("field", style="bold", no_wrap=True, width=8)
    table.add_column("value", overflow="fold")
    style = {"error": "bold red", "warning": "yellow"}.get(event["level"], "")
    table.add_row("when", str(event["at"]).replace("T", " "))
    table.add_row("level", Text(event["level"], style))
    table.add_row("kind", event["kind"])
    table.add_row("scan", printable(event["scan"] or "—"))
    table.add_row("action", event.get("action_id") or "—")
    table.add_row("message", Text(printable(event["message"]), style))
    if event.get("data"):
        table.add_row("data", json.dumps(event["data"], indent=2, ensure_ascii=False))
    return table


class EventDialog(ModalScreen[None]):
    """Esc (or enter, or q) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close", key_display="esc")
    ]
    DEFAULT_CSS = """
    EventDialog { align: center middle; }
    EventDialog > VerticalScroll {
        width: 96%; max-width: 110; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    EventDialog .hint { color: $text-muted; }
    """

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(event_table(self.event))
            yield Static("esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
