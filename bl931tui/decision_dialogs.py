"""Operator decisions from the TUI: each asked in a dialog that names what it acts on, then sent
in a thread worker through the decision channel (`bl931tui/decisions.py`: the running service
names the operator from the kernel and checks them against its approvers), and reported — or
refused, in a read-only session or for a non-approver, with a message that says why. An approval
of a large delete says when it still waits for a second, different approver. Mixed into
`Bl931App`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual import work

from bl931tui.alerts import acknowledge_refusal
from bl931tui.approval_items import ApprovalItem
from bl931tui.confirm_text import approve_body, reject_body, undo_body
from bl931tui.decisions import DecisionRefused, Decisions
from bl931tui.render import printable, size
from bl931tui.screens.dialogs import AcknowledgeDialog, ConfirmDialog, HoldDialog
from engine.alert_log import AlertRecord
from engine.approvals import needs_second_approver
from engine.config import Config
from engine.decision_undo import Decision
from engine.state import ActionStatus

if TYPE_CHECKING:
    from engine.state import StateStore

log = logging.getLogger("bl931.tui")


class DecisionDialogs:
    """The decision half of the app: what `Bl931App` provides is declared here for typing."""

    read_only: bool
    read_only_reason: str | None
    config: Config
    user: str
    decisions: Decisions
    clock: Callable[[], datetime]

    if TYPE_CHECKING:
        push_screen: Any  # App.push_screen (overloaded)

        def notify(self, message: str, **kwargs: Any) -> None: ...
        def call_from_thread(self, callback: Any, *args: Any, **kwargs: Any) -> Any: ...
        def refresh_data(self, *, force: bool = False) -> None: ...
        def reader(self) -> StateStore | None: ...

    def refused(self, what: str) -> bool:
        """In a read-only session, say so clearly and refuse."""
        if self.read_only:
            why = (
                f"{self.read_only_reason}."
                if self.read_only_reason
                else "Restart without --read-only to decide."
            )
            self.notify(
                f"Read-only session: {what} refused. {why}", title="read-only", severity="error"
            )
            return True
        return False

    def ask_approve(self, items: list[ApprovalItem], done: Callable[[], None]) -> None:
        if self.refused("approve") or not items:
            return
        total = sum(item.bytes for item in items)
        if any(item.kind == "delete" for item in items):
            # Deletes: the count and the size typed back (a stray Enter never approves).
            typed = f"{len(items)} {size(total)}"
            dialog = ConfirmDialog(
                "Approve deletes?", approve_body(items), confirm="Approve", typed=typed
            )
        else:
            dialog = ConfirmDialog("Approve?", approve_body(items), confirm="Approve")

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("approve", [item.id for item in items], done)

        self.push_screen(dialog, answered)

    def ask_reject(self, items: list[ApprovalItem], done: Callable[[], None]) -> None:
        if self.refused("reject") or not items:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("reject", [item.id for item in items], done)

        self.push_screen(ConfirmDialog("Reject?", reject_body(items), confirm="Reject"), answered)

    def ask_undo(
        self, items: list[ApprovalItem], decision: str, done: Callable[[], None] | None
    ) -> None:
        """Un-reject (`decision` "reject") or revoke approvals (`decision` "approve")."""
        what = "un-reject" if decision == "reject" else "revoke"
        if self.refused(what) or not items:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(f"undo-{decision}", [item.id for item in items], done)

        title = "Un-reject?" if decision == "reject" else "Revoke approval?"
        confirm = "Un-reject" if decision == "reject" else "Revoke"
        body = undo_body(items, decision, self.user)
        self.push_screen(ConfirmDialog(title, body, confirm=confirm), answered)

    def ask_hold(self, scan_id: str) -> None:
        if self.refused("hold"):
            return

        def answered(result: tuple[str, datetime | None] | None) -> None:
            if result is not None:
                self._decide("hold", [scan_id], None, reason=result[0], expires=result[1])

        self.push_screen(HoldDialog(printable(scan_id), self.clock()), answered)

    def ask_lift(self, scan_id: str) -> None:
        if self.refused("lift hold"):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("lift", [scan_id], None)

        self.push_screen(
            ConfirmDialog(
                "Lift hold?",
                f"Lift the hold on {printable(scan_id)}? Its copies can then be pruned "
                "when retention allows.",
                confirm="Lift hold",
            ),
            answered,
        )

    def ask_acknowledge(self, alert: AlertRecord, done: Callable[[], None]) -> None:
        """Acknowledge one standing alert: refused read-only, explained if it cannot be."""
        if self.refused("acknowledge"):
            return
        if refusal := acknowledge_refusal(alert):
            self.notify(refusal, title="not acknowledged", severity="error")
            return

        def answered(why: str | None) -> None:
            if why:
                self._decide("acknowledge", [alert.id], done, reason=why)

        self.push_screen(AcknowledgeDialog(alert, self.user), answered)

    def ask_restore(self, scan_id: str, done: Callable[[], None]) -> None:
        """A recall of the scan from tape into the first disk endpoint copies go to: recorded
        like `--restore`; the next pass plans it, and it waits for approval like every recall."""
        if self.refused("restore"):
            return
        body = (
            f"Recall {printable(scan_id)} from tape into the first disk endpoint of the copy "
            "chain? The next pass plans the recall; it costs tape mounts and runs only once "
            "approved."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._restore(scan_id, done)

        self.push_screen(ConfirmDialog("Restore from tape?", body, confirm="Request"), answered)

    @work(thread=True, group="decide", exit_on_error=False, description="restore")
    def _restore(self, scan_id: str, done: Callable[[], None]) -> None:
        from bl931tui.restore_cli import record_restore

        try:
            target = record_restore(self.config, scan_id, None, self.user, self.clock())
        except Exception as exc:  # a usage error names what is wrong; anything else too
            self.call_from_thread(
                self.notify, f"restore not recorded: {exc}", title="restore", severity="error"
            )
            return
        self.call_from_thread(
            self.notify,
            f"restore of {printable(scan_id)} into {target} requested; approve the recall once "
            "the next pass plans it",
            title="restore",
        )
        self.call_from_thread(done)

    def retry_scan(self, scan_id: str) -> None:
        if self.refused("retry"):
            return
        self._retry(scan_id)

    @work(thread=True, group="decide", exit_on_error=False, description="retry")
    def _retry(self, scan_id: str) -> None:
        """Retry the scan's failed actions; with none, say so and record nothing."""
        store = self.reader()
        failed = [
            a.id
            for a in (store.actions_for_scan(scan_id) if store else [])
            if a.status == ActionStatus.FAILED
        ]
        if not failed:
            self.call_from_thread(
                self.notify,
                f"nothing to retry on {printable(scan_id)}: no action of it failed",
                title="retry",
            )
            return
        try:
            self.decisions.request_retry(scan_id, failed)
        except DecisionRefused as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        except Exception as exc:
            log.exception("retry of %s failed", scan_id)
            self.call_from_thread(
                self.notify, f"retry failed: {exc}", title="not recorded", severity="error"
            )
            return
        self.call_from_thread(
            self.notify,
            f"retry requested for {len(failed)} action(s) of {printable(scan_id)}; "
            "the next pass tries them",
            title=f"recorded as {self.user}",
        )
        self.call_from_thread(self.refresh_data, force=True)

    @work(thread=True, group="decide", exit_on_error=False, description="decision")
    def _decide(
        self,
        what: str,
        ids: list[str],
        done: Callable[[], None] | None,
        *,
        reason: str = "",
        expires: datetime | None = None,
    ) -> None:
        try:
            message = self._write_decision(what, ids, reason, expires)
        except DecisionRefused as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        except Exception as exc:
            log.exception("decision %s failed", what)
            self.call_from_thread(
                self.notify, f"{what} failed: {exc}", title="not recorded", severity="error"
            )
            return
        self.call_from_thread(self.notify, message, title=f"recorded as {self.user}")
        if done is not None:
            self.call_from_thread(done)
        self.call_from_thread(self.refresh_data, force=True)

    def _write_decision(
        self, what: str, ids: list[str], reason: str, expires: datetime | None
    ) -> str:
        if what == "approve":
            result = self.decisions.approve(ids)
            waiting = [aid for aid, names in result.approvals.items() if self._short_of(aid, names)]
            second = f"; {len(waiting)} wait for a second approver" if waiting else ""
            return f"approved {result.count} action(s){second}; the service acts on its next pass"
        if what == "reject":
            return f"rejected {self.decisions.reject(ids)} action(s); u takes it back"
        if what in ("undo-reject", "undo-approve"):
            decision: Decision = "reject" if what == "undo-reject" else "approve"
            undone = self.decisions.undo(ids, decision)
            verb = "un-rejected" if decision == "reject" else "revoked the approval of"
            return f"{verb} {undone} action(s); each awaits approval again from the next pass"
        if what == "acknowledge":
            result = self.decisions.acknowledge_alert(ids[0], reason)
            return f"acknowledged {result.detail}; applied next pass"
        scan = ids[0]
        if what == "hold":
            self.decisions.place_hold(scan, reason, expires)
            return f"hold placed on {printable(scan)}"
        if what == "lift":
            lifted = self.decisions.lift_hold(scan)
            return f"lifted {lifted} hold(s) on {printable(scan)}"
        raise ValueError(f"unknown decision {what!r}")

    def _short_of(self, action_id: str, approvers: list[str]) -> bool:
        """Whether an approved action still waits for a second, different approver."""
        over = self.config.approval.second_approver_over_bytes
        store = self.reader()
        row = store.get_action(action_id) if store else None
        return (
            row is not None
            and needs_second_approver(row.kind, None, row.bytes, over)
            and len(approvers) < 2
        )
