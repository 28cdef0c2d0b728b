"""Standing alerts: what each freezes, since when, who acknowledged it; acknowledge with `y`.

One row per standing alert, what blocks most first. The pane below the table describes the
highlighted alert in full: its message, who acknowledged it and why, and what acknowledging it
would do (or why it cannot be acknowledged). Ages are computed when a row is drawn, from the
app's injected clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from bl931tui.alerts import (
    ALERT_GLYPH,
    EFFECT_WORDS,
    acknowledging_does,
    can_acknowledge,
    subject,
    why_not_acknowledgeable,
)
from bl931tui.commands import bindings
from bl931tui.readmodel import standing_alerts
from bl931tui.render import printable
from bl931tui.widgets.keybar import KeyBar
from bl931tui.widgets.status import ago
from bl931tui.widgets.virtual_table import Column, VirtualTable
from engine.alert_log import AlertRecord
from engine.model import AlertEffect

if TYPE_CHECKING:
    from collections.abc import Callable

    from bl931tui.app import Bl931App

EFFECT_STYLE = {
    AlertEffect.FREEZE_DELETES: "bold red",
    AlertEffect.UNKNOWN_ENDPOINT: "bold red",
    AlertEffect.NOTIFY: "yellow",
}
EMPTY = (
    "no standing alerts: replicas vanishing from an endpoint (freeze deletes), an endpoint "
    "not provably its storage (endpoint unknown) and files a prune left behind (notify) "
    "would appear here"
)


def acknowledged_state(alert: AlertRecord) -> Text:
    """`✓ ack'd` or `⚠ open`: a glyph and a word, so the state never rests on colour."""
    if alert.acknowledged_at is not None:
        return Text("✓ ack'd", "green")
    return Text(f"{ALERT_GLYPH} open", "bold")


def acknowledgement_line(alert: AlertRecord, now: datetime) -> str:
    """`✓ acknowledged by jdoe 5 minutes ago (…): reason`, or "" if nobody acknowledged it."""
    if alert.acknowledged_at is None:
        return ""
    return (
        f"✓ acknowledged by {alert.acknowledged_by} {ago(alert.acknowledged_at, now)} "
        f"({alert.acknowledged_at:%Y-%m-%d %H:%M}): {alert.acknowledged_why}"
    )


class AlertCells:
    """Formats a visible row; the age is taken from `clock` when the row is drawn."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def __call__(self, alert: AlertRecord) -> list[Text]:
        now = self.clock()
        who = ""
        if alert.acknowledged_at is not None:
            who = f"{alert.acknowledged_by}, {ago(alert.acknowledged_at, now)}"
        return [
            Text(EFFECT_WORDS[alert.effect], EFFECT_STYLE[alert.effect]),
            Text(alert.code),
            Text(alert.endpoint or "—"),
            Text(ago(alert.since, now)),
            acknowledged_state(alert),
            Text(printable(alert.message)),
            Text(printable(alert.scan) if alert.scan else "—"),
            Text(who, "dim"),
        ]


def describe(alert: AlertRecord, now: datetime, *, read_only: bool) -> Text:
    """The highlighted alert in full, and what `y` would do with it."""
    text = Text()
    text.append(f"{ALERT_GLYPH} {subject(alert)}", "bold")
    text.append(f" · {EFFECT_WORDS[alert.effect]}", EFFECT_STYLE[alert.effect])
    text.append(f" · since {alert.since:%Y-%m-%d %H:%M} ({ago(alert.since, now)}) · id {alert.id}")
    text.append(f"\n{printable(alert.message)}")
    line = acknowledgement_line(alert, now)
    if line:
        text.append(f"\n{line}", "green")
        text.append(
            "\nThe service applies it on its next pass; the alert closes when its condition "
            "goes away.",
            "dim",
        )
    elif not can_acknowledge(alert):
        text.append(f"\n{why_not_acknowledgeable(alert)}", "dim")
    else:
        refused = " (refused: read-only session)" if read_only else ""
        text.append(f"\ny acknowledges{refused}. {acknowledging_does(alert)}", "dim")
    return text


class AlertsScreen(Screen[None]):
    """The standing alerts, read from the store; acknowledgements go through the app."""

    SCOPE = "alerts"
    BINDINGS: ClassVar[list[BindingType]] = bindings("alerts")  # type: ignore[assignment]
    DEFAULT_CSS = """
    AlertsScreen #summary { height: 1; padding: 0 1; background: $panel; }
    AlertsScreen #alert { height: auto; max-height: 50%; padding: 0 1; border-top: solid $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.alerts: tuple[AlertRecord, ...] = ()

    @property
    def bl931(self) -> Bl931App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("reading alerts…", id="summary")
        yield VirtualTable[AlertRecord](
            [
                Column("effect", 16),
                Column("code", 17),
                Column("endpoint", 8),
                Column("since", 14),
                Column("state", 7),
                Column("message", 0, hide_below=100),
                Column("scan", 0, keep_end=True, hide_below=120),
                Column("acknowledged by", 24, hide_below=140),
            ],
            cells=AlertCells(self.bl931.clock),
            key=lambda alert: alert.id,
            empty=EMPTY,
            id="alerts",
        )
        yield Static("", id="alert")
        yield KeyBar(self.SCOPE)

    def on_mount(self) -> None:
        self.query_one(VirtualTable).focus()
        self.reload()

    def on_snapshot(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def _load(self) -> None:
        store = self.bl931.reader()
        alerts = standing_alerts(store) if store is not None else ()
        self.app.call_from_thread(self._show, alerts)

    def _show(self, alerts: tuple[AlertRecord, ...]) -> None:
        self.alerts = alerts
        table = self.query_one(VirtualTable)
        table.set_rows(alerts)
        table.refresh()  # ages move on even when the rows stay the same
        acknowledged = sum(1 for alert in alerts if alert.acknowledged_at is not None)
        mode = " · READ-ONLY: acknowledgements refused" if self.bl931.read_only else ""
        self.query_one("#summary", Static).update(
            Text(
                f"{len(alerts)} standing alert(s), {acknowledged} acknowledged"
                f" · y acknowledges the highlighted one{mode}",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
        self._describe()

    @on(VirtualTable.Highlighted)
    def _describe(self) -> None:
        alert = self.query_one(VirtualTable).cursor_row
        pane = self.query_one("#alert", Static)
        pane.display = alert is not None
        if alert is not None:
            pane.update(describe(alert, self.bl931.clock(), read_only=self.bl931.read_only))

    def action_acknowledge(self) -> None:
        alert = self.query_one(VirtualTable).cursor_row
        if alert is not None:
            self.bl931.ask_acknowledge(alert, self.reload)

    def action_back(self) -> None:
        self.app.pop_screen()
