"""Operators' decisions: checked against `[approval] approvers`, recorded by the store's owner.

A decision (approve, reject, hold, lift a hold, retry, acknowledge an alert, and taking an
approval or a rejection back: `revoke`, `unreject`, engine/decision_undo.py) is recorded only
by the state store's one writer, the service user:

- the running service takes it on its decision socket (`DecisionDesk`): the kernel names the
  caller (`SO_PEERCRED`), the service checks that name against *its own* config's approvers
  and records the decision under that name;
- without a running service, the service user's own command writes it (`decide_directly`),
  after the same check on the kernel's uid of that command.

Anyone else is refused with the reason (not an approver; not the service user and no service
running). Every approve/reject also appends a `decision.signed` event (engine/approvals.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.alert_log import AlertLog
from engine.approvals import approvals_for, sign
from engine.config import Config
from engine.decision_socket import Peer, socket_path
from engine.decision_undo import Decision, undo_decisions
from engine.errors import NeedsHumanError, UsageError
from engine.file_modes import owned_store
from engine.operators import SYSTEM_ACCOUNTS, Accounts, Approvers, Operator, resolve
from engine.state import StateStore, iso
from engine.store.events import action_scan, write_events

OPS = ("approve", "reject", "hold", "lift", "retry", "acknowledge", "unreject", "revoke")
_ON_ACTIONS = ("approve", "reject", "retry", "unreject", "revoke")
_UNDOES: dict[str, Decision] = {"unreject": "reject", "revoke": "approve"}  # op → what it undoes
ACTION_ID = re.compile(r"[0-9a-f]{1,64}")


class NotPermitted(NeedsHumanError):
    """This operator may not make decisions here; the message says why."""


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One decision as it travels: the op, its subjects and the operator's words.

    Attributes:
        op: one of `OPS`.
        ids: action ids (approve, reject, retry, unreject, revoke); the scan (hold, lift); the
            alert id (acknowledge).
        note: the note of an approve/reject, the reason of a hold, the why of an acknowledgement.
        expires_at: when a hold lapses (None: never).
        scans: action id → scan, as the operator's plan showed it: only labels the events of
            actions the service has not recorded yet (an id from a fresh dry run).
    """

    op: str
    ids: tuple[str, ...]
    note: str = ""
    expires_at: datetime | None = None
    scans: tuple[tuple[str, str], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "ids": list(self.ids),
            "note": self.note,
            "expires_at": iso(self.expires_at),
            "scans": dict(self.scans),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> DecisionRequest:
        """Raises ValueError, naming the field, for anything malformed."""
        op, ids, note = data.get("op"), data.get("ids"), data.get("note", "")
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)} (got {op!r})")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValueError("ids must be a non-empty list of strings")
        if op in ("hold", "lift", "acknowledge") and len(ids) != 1:
            raise ValueError(f"{op} takes exactly one id")
        if op in _ON_ACTIONS and not all(ACTION_ID.fullmatch(i) for i in ids):
            raise ValueError("action ids are hexadecimal (see --dry-run for ids)")
        if not isinstance(note, str):
            raise ValueError("note must be a string")
        expires = data.get("expires_at")
        if expires is not None and not isinstance(expires, str):
            raise ValueError("expires_at must be an ISO 8601 time or null")
        scans = data.get("scans") or {}
        if not isinstance(scans, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k in ids for k, v in scans.items()
        ):
            raise ValueError("scans must map this request's action ids to scan paths")
        return cls(
            op,
            tuple(ids),
            note,
            datetime.fromisoformat(expires) if expires else None,
            tuple(sorted(scans.items())),
        )


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What was recorded, and under whose name.

    Attributes:
        by: the operator's kernel-resolved name.
        via: `service` (taken by the running service) or `direct` (the service user's command).
        count: actions decided, holds placed or lifted, decisions taken back.
        approvals: for an approve, each action's approvers so far (names, first first).
        detail: words about the result (the acknowledged alert).
        scans: for an unreject or revoke, action id → its scan (when known).
    """

    by: str
    via: str
    count: int = 0
    approvals: dict[str, list[str]] = field(default_factory=dict)
    detail: str = ""
    scans: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "via": self.via,
            "count": self.count,
            "approvals": self.approvals,
            "detail": self.detail,
            "scans": self.scans,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> DecisionResult:
        return cls(
            str(data["by"]),
            str(data["via"]),
            int(data.get("count", 0)),
            {str(k): [str(n) for n in v] for k, v in dict(data.get("approvals") or {}).items()},
            str(data.get("detail", "")),
            {str(k): str(v) for k, v in dict(data.get("scans") or {}).items()},
        )


def record(
    store: StateStore, request: DecisionRequest, operator: Operator, now: datetime, *, via: str
) -> DecisionResult:
    """Write one decision under the operator's name (the caller has checked they may decide).

    An action id the store has not saved yet (one a fresh audit planned) is recorded all
    the same, so the pass that plans it finds it approved.

    Raises:
        UsageError: an alert that cannot be acknowledged, or a decision that cannot be taken
            back (the message names each id and why; nothing is undone then).
    """
    by, ids = operator.name, list(request.ids)
    if request.op in ("approve", "reject"):
        decide = store.approve if request.op == "approve" else store.reject
        with store.transaction() as conn:
            decide(ids, by, now, request.note, scans=dict(request.scans))
            sign(conn, ids, request.op, operator, now, via)
        approvals = {aid: [a.by for a in approvals_for(store, aid)] for aid in ids}
        return DecisionResult(by, via, len(ids), approvals if request.op == "approve" else {})
    if request.op == "hold":
        store.place_hold(ids[0], request.note, by, now, request.expires_at)
        return DecisionResult(by, via, 1)
    if request.op == "lift":
        return DecisionResult(by, via, store.lift_hold(ids[0], by, now))
    if request.op == "retry":
        labels = dict(request.scans)
        with store.transaction() as conn:
            store.request_retry(ids, by, now)
            write_events(  # one event each, with who asked
                conn,
                [
                    (
                        now,
                        "info",
                        "action.retry_requested",
                        action_scan(conn, aid, labels.get(aid)),
                        aid,
                        f"retry requested by {by}",
                        None,
                    )
                    for aid in ids
                ],
            )
        return DecisionResult(by, via, len(ids))
    if request.op in _UNDOES:
        signed = {"uid": operator.uid, "via": via}
        undone = undo_decisions(store, ids, _UNDOES[request.op], by=by, now=now, signed=signed)
        scans = {u.action_id: u.scan for u in undone if u.scan is not None}
        return DecisionResult(by, via, len(undone), scans=scans)
    alert = AlertLog(store).acknowledge(ids[0], by=by, why=request.note, now=now)
    return DecisionResult(by, via, 1, detail=f"{alert.code} at {alert.endpoint or '—'}")


class DecisionDesk:
    """The service's side of the decision socket: who is calling, may they, record it.

    Args:
        store: the service's (writable) state store.
        config: returns the service's config now (a reload may change the approvers).
        clock: the service's clock.
        accounts: the account databases (injected by tests).
    """

    def __init__(
        self,
        store: StateStore,
        config: Callable[[], Config],
        clock: Callable[[], datetime],
        accounts: Accounts = SYSTEM_ACCOUNTS,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.service_uid = os.geteuid()

    def __call__(self, wire: dict[str, Any], peer: Peer) -> dict[str, Any]:
        operator = resolve(peer.uid, self.accounts)
        try:
            request = DecisionRequest.from_wire(wire)
        except ValueError as exc:
            return {"ok": False, "error": "bad_request", "message": str(exc)}
        approvers = Approvers.parse(self.config().approval.approvers)
        refusal = approvers.refusal(operator, service_uid=self.service_uid, accounts=self.accounts)
        if refusal is not None:
            self.store.event(
                self.clock(),
                "decision.refused",
                f"{request.op} refused: {refusal}",
                level="warning",
                data={"op": request.op, "ids": list(request.ids), "uid": peer.uid, "pid": peer.pid},
            )
            return {"ok": False, "error": "not_approver", "message": refusal}
        try:
            result = record(self.store, request, operator, self.clock(), via="service")
        except UsageError as exc:
            return {"ok": False, "error": "bad_request", "message": exc.message}
        return {"ok": True, **result.to_wire()}


def direct_refusal(
    config: Config, operator: Operator, accounts: Accounts = SYSTEM_ACCOUNTS
) -> str | None:
    """Why `operator` may not write a decision into the store itself (no service runs), or None."""
    path = config.state.path
    try:
        info = path.stat()
        owner_uid = info.st_uid
    except FileNotFoundError:
        info, owner_uid = None, operator.uid
    if operator.uid != owner_uid:
        owner = accounts.user(owner_uid)
        return (
            f"no bl931 service is taking decisions (nothing listens on "
            f"{socket_path(path)}), and {operator.describe()} is not the service user "
            f"{owner[0] if owner else f'uid:{owner_uid}'} who owns {path}, so the decision "
            "cannot be recorded: ask for the service to be started, then decide again"
        )
    if info is not None and not os.access(path, os.W_OK):
        return f"{path} is not writable by {operator.describe()} (mode {info.st_mode & 0o7777:04o})"
    approvers = Approvers.parse(config.approval.approvers)
    return approvers.refusal(operator, service_uid=owner_uid, accounts=accounts)


def decide_directly(
    config: Config,
    request: DecisionRequest,
    operator: Operator,
    now: datetime,
    *,
    before: Callable[[StateStore], None] | None = None,
    accounts: Accounts = SYSTEM_ACCOUNTS,
) -> DecisionResult:
    """Record a decision as the service user, with no service running.

    Raises:
        NotPermitted: `operator` is not the service user, or not an approver.
    """
    refusal = direct_refusal(config, operator, accounts)
    if refusal is not None:
        raise NotPermitted(refusal)
    store = owned_store(config)
    try:
        if before is not None:
            before(store)
        return record(store, request, operator, now, via="direct")
    finally:
        store.close()
