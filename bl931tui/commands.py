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
    short: str = ""  # the footer's word for it (default: the description)
    footer_rank: int = 0  # 0: the screen's own keys, then navigation; higher: later

    @property
    def key_display(self) -> str:
        return "/".join(KEY_NAMES.get(k, k) for k in self.keys)

    @property
    def label(self) -> str:
        return self.short or self.description


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
    ActionSpec("app.help", "help", "Help: every key", ("question_mark",), "app", short="help"),
    ActionSpec("app.quit", "quit", "Quit", ("q",), "app", short="quit", footer_rank=3),
    ActionSpec("app.approvals", "show_approvals", "Approvals", ("a",), "app", short="approvals"),
    ActionSpec("app.alerts", "show_alerts", "Alerts", ("exclamation_mark",), "app", short="alerts"),
    ActionSpec("app.tasks", "show_tasks", "Tasks", ("t",), "app", short="tasks"),
    ActionSpec("app.events", "show_events", "Events", ("e",), "app", short="events"),
    ActionSpec("app.scans", "show_scans", "Scans (home)", ("1",), "app", show=False),
    ActionSpec("app.refresh", "refresh_now", "Refresh now", ("ctrl+r",), "app", show=False),
    ActionSpec(
        "app.pause",
        "toggle_pause",
        "Pause/resume live updates",
        ("p",),
        "app",
        short="pause",
        footer_rank=2,
    ),
    ActionSpec("app.palette", "command_palette", "Command palette", ("ctrl+p",), "app", show=False),
    ActionSpec("table.down", "cursor_down", "Next row", ("down", "j"), "table", show=False),
    ActionSpec("table.up", "cursor_up", "Previous row", ("up", "k"), "table", show=False),
    ActionSpec("table.page_down", "page_down", "Page down", ("pagedown",), "table", show=False),
    ActionSpec("table.page_up", "page_up", "Page up", ("pageup",), "table", show=False),
    ActionSpec("table.first", "first", "First row", ("home", "g"), "table", show=False),
    ActionSpec("table.last", "last", "Last row", ("end", "G"), "table", show=False),
    ActionSpec(
        "table.mark",
        "mark",
        "Mark/unmark the highlighted row (approvals)",
        ("space",),
        "table",
        show=False,
    ),
    ActionSpec("table.select", "select", "Open", ("enter",), "table", show=False),
    ActionSpec("scans.filter", "filter", "Filter", ("slash",), "scans", short="filter"),
    ActionSpec("scans.clear", "clear_filter", "Clear filter", ("escape",), "scans", show=False),
    ActionSpec("scans.faults", "toggle_faults", "Faults only", ("f",), "scans", short="faults"),
    ActionSpec("scans.sort", "cycle_sort", "Sort", ("s",), "scans", short="sort"),
    ActionSpec("scans.reverse", "reverse_sort", "Reverse order", ("S",), "scans", show=False),
    ActionSpec("scans.open", "open", "Scan detail", ("enter",), "scans", show=False),
    ActionSpec(
        "scan.hold",
        "hold",
        "Place hold",
        ("h",),
        "scans",
        decision=True,
        short="hold",
        footer_rank=1,
    ),
    ActionSpec(
        "scan.lift",
        "lift",
        "Lift hold",
        ("H",),
        "scans",
        decision=True,
        short="lift",
        footer_rank=1,
    ),
    ActionSpec(
        "scan.retry",
        "retry",
        "Retry failed",
        ("r",),
        "scans",
        decision=True,
        short="retry",
        footer_rank=1,
    ),
    ActionSpec("detail.hold", "hold", "Place hold", ("h",), "detail", decision=True, short="hold"),
    ActionSpec("detail.lift", "lift", "Lift hold", ("H",), "detail", decision=True, short="lift"),
    ActionSpec(
        "detail.retry", "retry", "Retry failed", ("r",), "detail", decision=True, short="retry"
    ),
    ActionSpec(
        "detail.undo",
        "undo",
        "Un-reject / revoke this scan's decisions",
        ("u",),
        "detail",
        decision=True,
        short="undo",
    ),
    ActionSpec(
        "detail.restore",
        "restore",
        "Restore from tape (a recall: approved like one)",
        ("R",),
        "detail",
        decision=True,
        short="restore",
        footer_rank=1,
    ),
    ActionSpec("detail.back", "back", "Back", ("escape",), "detail", short="back"),
    ActionSpec(
        "approvals.approve",
        "approve",
        "Approve marked (or highlighted)",
        ("y",),
        "approvals",
        dangerous=True,
        decision=True,
        short="approve",
    ),
    ActionSpec(
        "approvals.approve_all",
        "approve_all",
        "Approve all pending",
        ("A",),
        "approvals",
        dangerous=True,
        decision=True,
        short="all",
    ),
    ActionSpec(
        "approvals.reject",
        "reject",
        "Reject marked (or highlighted)",
        ("x",),
        "approvals",
        decision=True,
        short="reject",
    ),
    ActionSpec(
        "approvals.undo",
        "undo",
        "Un-reject / revoke marked (or highlighted)",
        ("u",),
        "approvals",
        decision=True,
        short="undo",
    ),
    ActionSpec(
        "approvals.mark", "mark", "Mark/unmark", ("space",), "approvals", short="mark", show=True
    ),
    ActionSpec("approvals.group", "next_group", "Next group", ("tab",), "approvals", show=False),
    ActionSpec("approvals.back", "back", "Back", ("escape",), "approvals", short="back"),
    ActionSpec(
        "alerts.acknowledge",
        "acknowledge",
        "Acknowledge alert",
        ("y",),
        "alerts",
        dangerous=True,
        decision=True,
        confirmation="what it does is named, a reason typed",
        short="acknowledge",
    ),
    ActionSpec("alerts.back", "back", "Back", ("escape",), "alerts", short="back"),
    ActionSpec("events.filter", "filter", "Filter", ("slash",), "events", short="filter"),
    ActionSpec("events.open", "open", "Read the whole event", ("enter",), "events", short="read"),
    ActionSpec("events.back", "back", "Back", ("escape",), "events", short="back"),
    ActionSpec("tasks.back", "back", "Back", ("escape",), "tasks", short="back"),
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


def footer_specs(scope: str) -> list[ActionSpec]:
    """What the footer of a screen offers, most used first: the screen's own keys, then
    navigation, then the rest (`footer_rank`); help is added last by the footer itself."""
    own = [spec for spec in specs(scope) if spec.show]
    app = [spec for spec in specs("app") if spec.show and spec.id != "app.help"]
    return sorted(own + app, key=lambda spec: spec.footer_rank)
