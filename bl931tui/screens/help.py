"""`?`: every key, grouped by where it works, generated from the action registry."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bl931tui.commands import REGISTRY, SCOPE_TITLES


def help_table(read_only: bool) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2), expand=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("action")
    for scope, title in SCOPE_TITLES.items():
        table.add_row(Text(title, "bold underline"), "")
        for spec in REGISTRY:
            if spec.scope != scope:
                continue
            note = ""
            if spec.dangerous:
                note = f"  (dangerous: confirmed, {spec.confirmation})"
            elif spec.decision:
                note = "  (operator decision)"
            if spec.decision and read_only:
                note += "  [refused: read-only]"
            # Text, not a markup string: "[refused: read-only]" would be read as a style tag.
            table.add_row(spec.key_display, Text(spec.description + note))
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    SCOPE = "help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", key_display="esc")
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, read_only: bool) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(
                Text.assemble(
                    ("bl931 keys", "bold"),
                    "  ·  ctrl+p: command palette  ·  filter words: state:failed at:cfs "
                    "awaiting:approval !word",
                )
            )
            yield Static(help_table(self.read_only))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
