"""Actions awaiting an operator's decision, and decisions still standing that can be taken back.

Three states, each in groups of one kind at one endpoint: *pending* (planned, gated, undecided),
*rejected* (held back by an operator for as long as the scan stays the same), and *approved,
not yet run* (the next pass acts on them). A rejected action leaves the plan at the next pass,
so its description (kind, endpoints) is recovered from its scan: action ids are deterministic
(`engine.model.action_id`), and the id is matched against the actions that scan could have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import permutations

from bl931tui.render import size
from engine.model import ActionKind, action_id
from engine.policy import Policy
from engine.state import ActionStatus, StateStore
from engine.store import views

PENDING, REJECTED, APPROVED = "pending", "rejected", "approved"
STATE_ORDER = {PENDING: 0, REJECTED: 1, APPROVED: 2}
KIND_ORDER = {"delete": 0, "copy": 1, "register": 2, "update_catalog": 3}
NOUNS = {
    "delete": ("delete", "deletes"),
    "copy": ("copy", "copies"),
    "register": ("registration", "registrations"),
    "update_catalog": ("catalog update", "catalog updates"),
}


@dataclass(frozen=True, slots=True)
class ApprovalItem:
    id: str
    kind: str  # "?" when a decided action can no longer be described (its scan changed)
    scan: str
    source: str | None
    target: str | None
    bytes: int
    reason: str
    state: str = PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None

    @property
    def where(self) -> str:
        if self.kind == "copy":
            return f"{self.source}→{self.target}"
        if self.kind == "delete":
            return self.target or ""
        return "catalog" if self.kind in ("register", "update_catalog") else "?"


@dataclass(frozen=True, slots=True)
class ApprovalGroup:
    kind: str
    target: str | None
    items: tuple[ApprovalItem, ...]
    state: str = PENDING

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def key(self) -> str:
        return f"{self.state}:{self.kind}:{self.target}"

    @property
    def title(self) -> str:
        count = len(self.items)
        what = f"{self.kind} {count:,} {'scan' if count == 1 else 'scans'}{where(self.kind, self.target)}"
        text = f"{what} · {size(self.bytes)}"
        if self.state == REJECTED:
            return f"⊘ rejected: {text}"
        if self.state == APPROVED:
            return f"✓ approved, not yet run: {text}"
        return f"◷ {text}"


def where(kind: str, target: str | None) -> str:
    if kind == "delete":
        return f" from {target}"
    if kind == "copy":
        return f" to {target}"
    return ""


def noun(kind: str, count: int) -> str:
    one, many = NOUNS.get(kind, ("action", "actions"))
    return one if count == 1 else many


def approval_groups(store: StateStore, policy: Policy) -> tuple[ApprovalGroup, ...]:
    """Pending, rejected and approved-not-yet-run actions, grouped by kind and endpoint."""
    items = [*pending(store), *decided(store, policy, "reject"), *decided(store, policy, "approve")]
    return group(items, policy)


def group(items: Iterable[ApprovalItem], policy: Policy) -> tuple[ApprovalGroup, ...]:
    position = {name: index for index, name in enumerate(policy.endpoints)}
    groups: dict[tuple[str, str, str | None], list[ApprovalItem]] = {}
    for item in items:
        groups.setdefault((item.state, item.kind, item.target), []).append(item)
    ordered = sorted(
        groups.items(),
        key=lambda entry: (
            STATE_ORDER[entry[0][0]],
            KIND_ORDER.get(entry[0][1], 9),
            position.get(entry[0][2] or "", -1),
        ),
    )
    return tuple(
        ApprovalGroup(kind, target, tuple(sorted(members, key=lambda i: i.scan)), state)
        for (state, kind, target), members in ordered
    )


def pending(store: StateStore) -> Iterator[ApprovalItem]:
    """Planned gated actions no operator has decided on."""
    for r in views.undecided_gated(store):
        yield ApprovalItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


def decided(
    store: StateStore, policy: Policy, decision: str, scan: str | None = None
) -> Iterator[ApprovalItem]:
    """Decisions that still stand: every rejection, and approvals not yet acted on (an
    approval whose action was submitted or done is spent)."""
    state = REJECTED if decision == "reject" else APPROVED
    for r in views.decisions_with_actions(store, decision):
        if decision == "approve" and r[7] not in (None, ActionStatus.PLANNED):
            continue
        when = datetime.fromisoformat(r[9])
        if r[1] is not None:
            if scan is None or r[2] == scan:
                yield ApprovalItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], state, r[8], when)
            continue
        described = describe(store, policy, r[0])
        if described is None or (scan is not None and described[1] != scan):
            continue
        kind, scan_id, source, target, volume = described
        yield ApprovalItem(r[0], kind, scan_id, source, target, volume, "", state, r[8], when)


def describe(
    store: StateStore, policy: Policy, aid: str
) -> tuple[str, str, str | None, str | None, int] | None:
    """(kind, scan, source, target, bytes) of an action no longer in the plan, from its scan."""
    found = views.last_scan_of_action(store, aid)
    if found is None:
        return None
    scan, facts = found
    if facts is None:
        return "?", scan, None, None, 0
    checksum, volume = facts
    candidates: list[tuple[ActionKind, str | None, str | None]] = [
        (ActionKind.DELETE, None, name) for name in policy.endpoints
    ]
    candidates += [(ActionKind.COPY, a, b) for a, b in permutations(policy.endpoints, 2)]
    candidates += [(ActionKind.REGISTER, None, None), (ActionKind.UPDATE_CATALOG, None, None)]
    for kind, source, target in candidates:
        if action_id(kind, scan, checksum, source, target) == aid:
            moves = kind in (ActionKind.DELETE, ActionKind.COPY)
            return kind.value, scan, source, target, volume if moves else 0
    return "?", scan, None, None, 0  # the scan changed since: the decision names an old version
