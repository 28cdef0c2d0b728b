"""The one action registry: keys, footer, `?` help and the command palette all derive from it.

An action is named once here (`id`, description, keys, whether it is dangerous, whether it writes
an operator decision); screens take their `BINDINGS` from `bindings(scope)`, the help screen lists
`REGISTRY`, and `RegistryCommands` offers every action that applies to the screen in front.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One thing an operator can do."""

    id: str
    action: str  # the Textual action name on the scope's screen (or app)
    description: str
    keys: tuple[str, ...]
    scope: str  # "app", "table", or a screen's SCOPE
    dangerous: bool = False  # destroys data once it runs: always confirmed, typed back
    decision: bool = False  # writes an operator decision: refused in read-only sessions
    show: bool = True  # in the footer
    confirmation: str = "count and bytes typed back"  # how a dangerous action is confirmed

    @property
    def key_display(self) -> str:
        return "/".join(KEY_NAMES.get(k, k) for k in self.keys)


KEY_NAMES = {
    "question_mark": "?",
    "exclamation_mark": "!",
    "slash": "/",
    "escape": "esc",
    "enter": "⏎",
    "space": "space",
    "ctrl+r": "^r",
    "ctrl+p": "^p",
}

REGISTRY: tuple[ActionSpec, ...] = (
    ActionSpec("app.help", "help", "Help: every key", ("question_mark",), "app"),
    ActionSpec("app.quit", "quit", "Quit", ("q",), "app"),
    ActionSpec("app.approvals", "show_approvals", "Approvals", ("a",), "app"),
    ActionSpec("app.alerts", "show_alerts", "Alerts", ("exclamation_mark",), "app"),
    ActionSpec("app.tasks", "show_tasks", "Tasks", ("t",), "app"),
    ActionSpec("app.events", "show_events", "Events", ("e",), "app"),
    ActionSpec("app.scans", "show_scans", "Scans (home)", ("1",), "app", show=False),
    ActionSpec("app.refresh", "refresh_now", "Refresh now", ("ctrl+r",), "app", show=False),
    ActionSpec("app.pause", "toggle_pause", "Pause/resume live updates", ("p",), "app"),
    ActionSpec("app.palette", "command_palette", "Command palette", ("ctrl+p",), "app", show=False),
    ActionSpec("table.down", "cursor_down", "Next row", ("down", "j"), "table", show=False),
    ActionSpec("table.up", "cursor_up", "Previous row", ("up", "k"), "table", show=False),
    ActionSpec("table.page_down", "page_down", "Page down", ("pagedown",), "table", show=False),
    ActionSpec("table.page_up", "page_up", "Page up", ("pageup",), "table", show=False),
    ActionSpec("table.first", "first", "First row", ("home", "g"), "table", show=False),
    ActionSpec("table.last", "last", "Last row", ("end", "G"), "table", show=False),
    ActionSpec("table.mark", "mark", "Mark/unmark row", ("space",), "table", show=False),
    ActionSpec("table.select", "select", "Open", ("enter",), "table", show=False),
    ActionSpec("scans.filter", "filter", "Filter", ("slash",), "scans"),
    ActionSpec("scans.clear", "clear_filter", "Clear filter", ("escape",), "scans", show=False),
    ActionSpec("scans.faults", "toggle_faults", "Faults only", ("f",), "scans"),
    ActionSpec("scans.sort", "cycle_sort", "Sort", ("s",), "scans"),
    ActionSpec("scans.reverse", "reverse_sort", "Reverse order", ("S",), "scans", show=False),
    ActionSpec("scan.hold", "hold", "Place hold", ("h",), "scans", decision=True, show=False),
    ActionSpec("scan.lift", "lift", "Lift hold", ("H",), "scans", decision=True, show=False),
    ActionSpec("scan.retry", "retry", "Retry failed", ("r",), "scans", decision=True, show=False),
    ActionSpec("detail.hold", "hold", "Place hold", ("h",), "detail", decision=True),
    ActionSpec("detail.lift", "lift", "Lift hold", ("H",), "detail", decision=True),
    ActionSpec("detail.retry", "retry", "Retry failed", ("r",), "detail", decision=True),
    ActionSpec("detail.back", "back", "Back", ("escape",), "detail"),
    ActionSpec(
        "approvals.approve",
        "approve",
        "Approve marked (or highlighted)",
        ("y",),
        "approvals",
        dangerous=True,
        decision=True,
    ),
    ActionSpec(
        "approvals.approve_all",
        "approve_all",
        "Approve all pending",
        ("A",),
        "approvals",
        dangerous=True,
        decision=True,
    ),
    ActionSpec(
        "approvals.reject",
        "reject",
        "Reject marked (or highlighted)",
        ("x",),
        "approvals",
        decision=True,
    ),
    ActionSpec("approvals.group", "next_group", "Next group", ("tab",), "approvals", show=False),
    ActionSpec("approvals.back", "back", "Back", ("escape",), "approvals"),
    ActionSpec(
        "alerts.acknowledge",
        "acknowledge",
        "Acknowledge alert",
        ("y",),
        "alerts",
        dangerous=True,
        decision=True,
        confirmation="what it does is named, a reason typed",
    ),
    ActionSpec("alerts.back", "back", "Back", ("escape",), "alerts"),
    ActionSpec("events.filter", "filter", "Filter", ("slash",), "events"),
    ActionSpec("events.back", "back", "Back", ("escape",), "events"),
    ActionSpec("tasks.back", "back", "Back", ("escape",), "tasks"),
)

SCOPE_TITLES = {
    "app": "Everywhere",
    "table": "Tables",
    "scans": "Scans",
    "detail": "Scan detail",
    "approvals": "Approvals",
    "alerts": "Alerts",
    "events": "Events",
    "tasks": "Tasks",
}


def specs(scope: str) -> tuple[ActionSpec, ...]:
    return tuple(spec for spec in REGISTRY if spec.scope == scope)


def bindings(scope: str) -> list[Binding]:
    """The Textual bindings of one scope, in registry order."""
    return [
        Binding(
            ",".join(spec.keys),
            spec.action,
            spec.description,
            show=spec.show,
            key_display=spec.key_display,
            id=spec.id,
        )
        for spec in specs(scope)
        if spec.id != "app.palette"  # Textual binds ctrl+p itself
    ]


class RegistryCommands(Provider):
    """The command palette: every registry action of the screen in front, and the app's."""

    def _candidates(self) -> Iterator[tuple[ActionSpec, bool]]:
        scope = getattr(self.screen, "SCOPE", "scans")
        for spec in REGISTRY:
            if spec.scope == "app" and spec.id != "app.palette":
                yield spec, True
            elif spec.scope == scope:
                yield spec, False

    def _run(self, spec: ActionSpec, on_app: bool) -> None:
        target = self.app if on_app else self.screen
        self.app.call_later(target.run_action, spec.action)

    async def discover(self) -> Hits:
        for spec, on_app in self._candidates():
            yield DiscoveryHit(
                spec.description, partial(self._run, spec, on_app), help=spec.key_display
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec, on_app in self._candidates():
            score = matcher.match(spec.description)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(spec.description),
                    partial(self._run, spec, on_app),
                    help=spec.key_display,
                )
