"""Which batches may be submitted now: task slots per mover, kind and route.

Globus works on 3 transfer and 3 delete tasks per identity at a time and queues the rest
(Transfer docs, "Task Behavior", Queuing). One shared count of open tasks let slow CFS → HPSS
tasks, or the batches of a backlog (the first sync of 100,000 old scans), hold every slot while a
scan acquired a minute ago waited hours for its first copy. So:

- transfers and deletes have separate budgets (`max_active_tasks` each);
- `realtime_slots` transfer slots are kept for *new* scans copied from the inventory endpoint
  (acquired within `REALTIME_WINDOW`): their batches go first, newest scans first, and a new
  scan is submitted in the pass that finds it while such a slot is free;
- the other slots are shared by every other copy (backlog scans of the inventory endpoint, and
  every other route), handed out route by route in turn, one bounded batch
  (`max_items_per_task`) per slot, so a backlog drains in batches without starving a route.

All of this is pure: it takes the open tasks and the actions, and returns the batches to submit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.model import Action, Scan

# A scan acquired within this long before the pass counts as new: the real-time leg.
REALTIME_WINDOW = timedelta(hours=24)
# Marks the label of a task that carries new scans (to count the real-time slots in use).
REALTIME_MARK = "new scans"

Route = tuple[str | None, str | None]


@dataclass(frozen=True, slots=True)
class Batch:
    """One task to submit: its route, its actions, and whether it is real-time."""

    source: str | None
    target: str | None
    actions: tuple[Action, ...]
    realtime: bool = False


def plan_batches(
    kind: str,
    actions: Sequence[Action],
    scans: dict[str, Scan],
    *,
    open_labels: Sequence[str],
    max_active: int,
    max_items: int,
    realtime_slots: int,
    inventory_endpoint: str,
    now: datetime,
) -> tuple[list[Batch], int]:
    """The batches that fit the free slots of one mover for one kind of task.

    Args:
        kind: "copy" or "delete".
        actions: the runnable actions of that kind on this mover.
        scans: the pass's scans (for acquisition times).
        open_labels: labels of this mover's open tasks of this kind.
        max_active: tasks of this kind the mover may keep open.
        max_items: scans per task.
        realtime_slots: slots kept for new scans from the inventory endpoint (copies only).
        inventory_endpoint: where new scans appear.
        now: the pass's time.

    Returns:
        The batches to submit, in order, and the number of actions left waiting.
    """
    reserved = min(realtime_slots, max_active - 1) if kind == "copy" else 0
    open_realtime = sum(1 for label in open_labels if REALTIME_MARK in label)
    # Real-time tasks beyond the reserved slots occupy shared slots.
    shared_used = len(open_labels) - min(open_realtime, reserved)
    realtime_free = max(0, reserved - open_realtime)
    shared_free = max(0, (max_active - reserved) - shared_used)

    fresh: list[Action] = []
    routes: dict[Route, list[Action]] = defaultdict(list)
    for action in actions:
        scan = scans.get(action.scan)
        new = (
            kind == "copy"
            and action.source == inventory_endpoint
            and scan is not None
            and now - scan.acquired_at <= REALTIME_WINDOW
        )
        if new:
            fresh.append(action)
        else:
            routes[(action.source, action.target)].append(action)
    fresh.sort(key=lambda a: scans[a.scan].acquired_at, reverse=True)

    batches: list[Batch] = []
    fresh_by_route: dict[Route, list[Action]] = defaultdict(list)
    for action in fresh:
        fresh_by_route[(action.source, action.target)].append(action)
    # New scans first: into the reserved slots, then (if any wait still) into shared ones.
    queues = [list(group) for group in fresh_by_route.values()]
    for queue, (source, target) in zip(queues, fresh_by_route, strict=True):
        while queue and (realtime_free > 0 or shared_free > 0):
            chunk, queue[:] = queue[:max_items], queue[max_items:]
            if realtime_free > 0:
                realtime_free -= 1
            else:
                shared_free -= 1
            batches.append(Batch(source, target, tuple(chunk), realtime=True))
    # Then the shared slots, one batch per route in turn.
    pending = {route: list(group) for route, group in routes.items()}
    while shared_free > 0 and any(pending.values()):
        for route, queue in pending.items():
            if shared_free <= 0 or not queue:
                continue
            chunk, queue[:] = queue[:max_items], queue[max_items:]
            shared_free -= 1
            batches.append(Batch(route[0], route[1], tuple(chunk)))
    waiting = sum(len(q) for q in queues) + sum(len(q) for q in pending.values())
    return batches, waiting
