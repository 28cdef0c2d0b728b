"""The footer: every key of the screen in front, or as many as fit and `? more`.

Textual's own footer cuts keys off at the right edge without a word (at 80 columns, half of
them); this one is derived from the same action registry, uses the registry's short words, and
when the terminal is too narrow for all of them ends with `? more`, the key that lists every one.
Each key can be clicked.
"""

from __future__ import annotations

from textual.content import Content
from textual.events import Resize
from textual.widgets import Static

from bl931tui.commands import ActionSpec, footer_specs

HELP = "? help"
MORE = "? more"


def key_items(scope: str) -> list[tuple[str, ActionSpec]]:
    """(text, spec) per footer entry, e.g. ("/ filter", …)."""
    return [(f"{spec.key_display} {spec.label}", spec) for spec in footer_specs(scope)]


def fit(items: list[str], width: int) -> tuple[list[str], str]:
    """The entries that fit in `width` columns with the closing help entry, and that entry."""
    gap = 2
    if sum(len(item) + gap for item in items) + len(HELP) <= width:
        return items, HELP
    shown: list[str] = []
    used = len(MORE)
    for item in items:
        if used + len(item) + gap > width:
            break
        shown.append(item)
        used += len(item) + gap
    return shown, MORE


class KeyBar(Static):
    """One line at the bottom: `key word` pairs for the screen in front, then `? help`."""

    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $foreground; padding: 0 1; }
    KeyBar > .keybar--key { text-style: bold; }
    """

    def __init__(self, scope: str) -> None:
        super().__init__(markup=False)
        self.scope = scope

    def on_mount(self) -> None:
        self._paint(self.size.width or self.app.size.width)

    def on_resize(self, event: Resize) -> None:
        self._paint(event.size.width)

    def _paint(self, width: int) -> None:
        entries = key_items(self.scope)
        shown, closing = fit([text for text, _ in entries], max(10, width - 2))
        by_text = dict(entries)
        parts: list[Content] = []
        for text in shown:
            spec = by_text[text]
            target = "app" if spec.scope == "app" else "screen"
            key, _, word = text.partition(" ")
            parts.append(
                Content.from_markup("[b]$key[/b] $word", key=key, word=word).stylize(
                    f"@click={target}.{spec.action}"
                )
            )
        parts.append(
            Content.from_markup("[b]?[/b] $word", word=closing[2:]).stylize("@click=app.help")
        )
        self.update(Content("  ").join(parts))
