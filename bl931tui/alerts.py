"""Alerts in words: what each one does to the engine, and what acknowledging it would do.

Pure functions over `AlertRecord` values, shared by the header, the Alerts screen and the
acknowledgement dialog, so the three never describe the same alert differently. The wording
follows `docs/audit.md` ("Acknowledging an alert").
"""

from __future__ import annotations

from bl931tui.render import printable
from engine.alert_log import AlertRecord
from engine.model import AlertEffect, ClearedBy

ALERT_GLYPH = "⚠"
"""Marks an alert wherever one is shown, so it never rests on colour alone (NO_COLOR)."""

EFFECT_WORDS = {
    AlertEffect.FREEZE_DELETES: "freeze deletes",
    AlertEffect.UNKNOWN_ENDPOINT: "endpoint unknown",
    AlertEffect.NOTIFY: "notify",
}


def alerts_summary(alerts: tuple[AlertRecord, ...]) -> str:
    """`⚠ 2 alerts`, or "" when none stand.

    Acknowledged alerts still count: they stand until the service applies the acknowledgement
    (or their condition goes away). The Alerts screen tells them apart; the header stays short
    so the engine's status after it survives an 80-column terminal.

    Args:
        alerts: the standing alerts.

    Returns:
        The words for the header, or "" when there is nothing to say.
    """
    if not alerts:
        return ""
    noun = "alert" if len(alerts) == 1 else "alerts"
    return f"{ALERT_GLYPH} {len(alerts)} {noun}"


def can_acknowledge(alert: AlertRecord) -> bool:
    """Whether an operator may acknowledge the alert (the rule `AlertLog.acknowledge` applies)."""
    return alert.cleared_by is not ClearedBy.CONDITION


def subject(alert: AlertRecord) -> str:
    """What the alert concerns: `missing_fraction · endpoint cfs · scan —`."""
    scan = printable(alert.scan) if alert.scan else "—"
    return f"{alert.code} · endpoint {alert.endpoint or '—'} · scan {scan}"


def acknowledging_does(alert: AlertRecord) -> str:
    """What the engine does once the alert is acknowledged (applied on the service's next pass).

    Args:
        alert: an alert that can be acknowledged.

    Returns:
        One or two sentences naming the consequence.
    """
    where = alert.endpoint or "the endpoint"
    if alert.code == "missing_fraction":
        return (
            f"The loss at {where} is accepted: {where}'s current listing becomes its new "
            "baseline, the freeze on deletes lifts, and whatever the policy wants there that is "
            "missing is copied again from another verified holder."
        )
    if alert.code == "storage_changed":
        return (
            f"It stops being reported. The copies at {where} are still verified again before "
            "anything relies on them; to keep their old evidence instead, an operator runs "
            f"`bl931tui --adopt-endpoint {where} --from-identity …` with the service stopped."
        )
    if alert.effect is AlertEffect.NOTIFY:
        return (
            "It stops being reported. Nothing is copied or deleted because of it; it closes "
            "when its condition goes away."
        )
    return "The service records it and applies it on its next pass."


def why_not_acknowledgeable(alert: AlertRecord) -> str:
    """Why an alert cleared only by its condition cannot be acknowledged, and what clears it."""
    if alert.code == "endpoint_identity":
        where = alert.endpoint or "the endpoint"
        return (
            f"{alert.code} cannot be acknowledged: it clears when {where} is provably its "
            "storage again (the filesystem is mounted again, or an operator runs "
            f"`bl931tui --init-endpoint {where}` after checking it)."
        )
    return f"{alert.code} cannot be acknowledged: it clears only when its condition goes away."


def acknowledge_refusal(alert: AlertRecord) -> str:
    """Why the TUI offers no acknowledgement dialog for this alert; "" when it does.

    An alert only its condition clears cannot be acknowledged; one already acknowledged is not
    acknowledged again over the first person's record (their name and reason stay as given).
    """
    if not can_acknowledge(alert):
        return why_not_acknowledgeable(alert)
    if alert.acknowledged_at is not None:
        return (
            f"{alert.code} is already acknowledged by {alert.acknowledged_by}: "
            f"{alert.acknowledged_why}. The service applies it on its next pass."
        )
    return ""
