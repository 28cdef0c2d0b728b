"""Operator decisions: the only writes the TUI asks for (approvals, rejections and taking them
back, holds, retries, alert acknowledgements; DESIGN §8).

The TUI never writes the state store itself unless it runs as the store's owner with no
service running: every decision goes through `decision_channel.decide`, so the running service
names the operator from the kernel and checks them against its approvers. A decision that is
refused — a read-only session, not an approver, nobody to record it — raises `DecisionRefused`
with one clear message rather than greying keys silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from bl931tui.decision_channel import decide
from engine.config import Config
from engine.decision_undo import Decision
from engine.errors import Bl931Error
from engine.operator_decisions import DecisionRequest, DecisionResult
from engine.operators import Operator


class DecisionRefused(Exception):
    """A decision the session may not make, with the message to show."""


READ_ONLY_MESSAGE = "read-only session: {what} refused (started with --read-only)"


class Decisions:
    """Sends this operator's decisions to whoever may record them.

    Args:
        config: this TUI's config (the state path; approvers only matter for a direct write).
        operator: who decides (the kernel's user of this process).
        clock: the time of a decision written directly.
        read_only: refuse every decision (`--read-only`).
    """

    def __init__(
        self,
        config: Config,
        *,
        operator: Operator,
        clock: Callable[[], datetime],
        read_only: bool,
    ) -> None:
        self.config = config
        self.operator = operator
        self.clock = clock
        self.read_only = read_only

    def _send(self, what: str, request: DecisionRequest) -> DecisionResult:
        if self.read_only:
            raise DecisionRefused(READ_ONLY_MESSAGE.format(what=what))
        try:
            return decide(self.config, request, operator=self.operator, clock=self.clock)
        except Bl931Error as exc:
            raise DecisionRefused(f"{what} refused: {exc.message}") from exc

    def approve(self, action_ids: Iterable[str], note: str = "") -> DecisionResult:
        return self._send("approve", DecisionRequest("approve", tuple(action_ids), note))

    def reject(self, action_ids: Iterable[str], note: str = "") -> int:
        return self._send("reject", DecisionRequest("reject", tuple(action_ids), note)).count

    def place_hold(self, scan: str, reason: str, expires_at: datetime | None) -> int:
        return self._send("hold", DecisionRequest("hold", (scan,), reason, expires_at)).count

    def lift_hold(self, scan: str) -> int:
        return self._send("lift hold", DecisionRequest("lift", (scan,))).count

    def request_retry(self, scan: str, action_ids: Iterable[str]) -> int:
        """Make the scan's failed actions due now; recorded with who asked (one event each)."""
        ids = tuple(action_ids)
        request = DecisionRequest("retry", ids, scans=tuple((aid, scan) for aid in ids))
        return self._send("retry", request).count

    def undo(self, action_ids: Iterable[str], decision: Decision) -> int:
        """Un-reject (`decision` "reject") or revoke approvals (`decision` "approve"), as
        `--unreject` / `--revoke` do (see `engine.decision_undo`)."""
        op, what = ("unreject", "un-reject") if decision == "reject" else ("revoke", "revoke")
        return self._send(what, DecisionRequest(op, tuple(action_ids))).count

    def acknowledge_alert(self, alert_id: str, why: str) -> DecisionResult:
        """Record that this operator acknowledges a standing alert, and why (as `--acknowledge`).

        Args:
            alert_id: the alert's stable id.
            why: the operator's reason, recorded with their name and the time.

        Returns:
            What was recorded (`detail` names the alert's code and endpoint).

        Raises:
            DecisionRefused: a read-only session, not an approver, no reason, an alert that no
                longer stands, or one that only its condition clears.
        """
        return self._send("acknowledge", DecisionRequest("acknowledge", (alert_id,), why))

    def close(self) -> None:
        """Nothing stays open between decisions (kept for the app's unmount)."""
