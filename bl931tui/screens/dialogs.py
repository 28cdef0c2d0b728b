"""Modal dialogs for decisions: confirm (Cancel focused; deletes typed back), hold, acknowledge.

A delete's confirmation names the count and the bytes and makes the operator type both back
(Terraform-style), so a stray Enter can never approve a prune: Enter on the focused Cancel
cancels, and Approve stays disabled until the typed text matches.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from bl931tui.alerts import acknowledging_does, subject
from bl931tui.render import printable
from engine.alert_log import AlertRecord

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; max-width: 95%; height: auto; max-height: 100%; padding: 0 2;
    border: thick $warning; background: $surface; overflow-y: auto;
}}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} Input {{ margin: 0; }}
{name} Horizontal {{ height: auto; margin-top: 1; align-horizontal: right; }}
{name} Button {{ margin-left: 2; }}
{name} .problem {{ color: $error; height: auto; }}
"""


def normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", "").split())


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no, Cancel focused; with `typed`, the exact words must be typed to enable Confirm."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmDialog")

    def __init__(
        self, title: str, body: str, *, confirm: str = "Confirm", typed: str | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.body, markup=False)
            if self.typed is not None:
                yield Label(f"Type  {self.typed}  to confirm (Tab to the box):")
                box = Input(placeholder="type here", id="typed")
                box.cursor_blink = False
                yield box
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(
                    self.confirm_label,
                    id="confirm",
                    variant="error",
                    disabled=self.typed is not None,
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Input.Changed, "#typed")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not self._matches(event.value)

    @on(Input.Submitted, "#typed")
    def _submitted(self, event: Input.Submitted) -> None:
        if self._matches(event.value):
            self.dismiss(True)

    def _matches(self, text: str) -> bool:
        return self.typed is not None and normalise(text) == normalise(self.typed)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([hdw])$")


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """`30d`, `12h`, `2w`, an ISO date/time, or empty (no expiry); ValueError otherwise."""
    text = text.strip().lower()
    if not text:
        return None
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match[1]), match[2]
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit]
        return now + timedelta(hours=amount * hours)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    if moment <= now:
        raise ValueError("the expiry is in the past")
    return moment


class HoldDialog(ModalScreen["tuple[str, datetime | None] | None"]):
    """A hold's reason (required) and expiry; a held scan is never pruned."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="HoldDialog")

    def __init__(self, scan_label: str, now: datetime) -> None:
        super().__init__()
        self.scan_label = scan_label
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Place a hold", classes="title")
            yield Static(
                f"No copy of {self.scan_label} is pruned while the hold lasts.", markup=False
            )
            reason = Input(
                placeholder="reason (required), e.g. user asked to keep raw data", id="reason"
            )
            expiry = Input(
                placeholder="expires: 30d, 12h, 2w, 2027-01-31, or empty for never", id="expiry"
            )
            reason.cursor_blink = expiry.cursor_blink = False
            yield reason
            yield expiry
            yield Static("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Place hold", id="place", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#place")
    def _place(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        problem = self.query_one("#problem", Static)
        if not reason:
            problem.update("A hold needs a reason.")
            return
        try:
            expires = parse_expiry(self.query_one("#expiry", Input).value, self.now)
        except ValueError as exc:
            problem.update(f"Expiry: {exc}")
            return
        self.dismiss((reason, expires))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class AcknowledgeDialog(ModalScreen["str | None"]):
    """Acknowledge one alert: it is named in full, the consequence said, a reason required.

    Cancel has the focus and Acknowledge stays disabled until a reason is typed, so neither a
    stray Enter nor an empty reason records anything. Dismisses with the reason, or None.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = (
        DIALOG_CSS.format(name="AcknowledgeDialog")
        + """
    AcknowledgeDialog > Vertical { width: 78; max-height: 100%; padding: 0 1; overflow-y: auto; }
    AcknowledgeDialog .title { margin: 0; }
    AcknowledgeDialog .spaced { margin-top: 1; }
    AcknowledgeDialog Input { margin: 0; }
    AcknowledgeDialog Horizontal { margin: 0; }
    """
    )

    def __init__(self, alert: AlertRecord, user: str) -> None:
        super().__init__()
        self.alert = alert
        self.user = user

    def compose(self) -> ComposeResult:
        alert = self.alert
        with Vertical():
            yield Label("Acknowledge this alert?", classes="title")
            yield Static(f"{subject(alert)} · id {alert.id}", markup=False)
            yield Static(f"“{printable(alert.message)}”", markup=False, classes="spaced")
            yield Static(
                f"Acknowledging: {acknowledging_does(alert)}", markup=False, classes="spaced"
            )
            yield Label(f"Reason (required; recorded as {self.user}), Tab to the box:")
            reason = Input(placeholder="why the alert is accepted", id="reason")
            reason.cursor_blink = False
            yield reason
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Acknowledge", id="acknowledge", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def _reason(self) -> str:
        return self.query_one("#reason", Input).value.strip()

    @on(Input.Changed, "#reason")
    def _typed(self) -> None:
        self.query_one("#acknowledge", Button).disabled = not self._reason()

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#acknowledge")
    def _acknowledge(self) -> None:
        if self._reason():
            self.dismiss(self._reason())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
