"""Deterministic beamline states for the TUI: built once, used by pilot tests, snapshots and bench.

Each scenario writes a local workspace config and fills its state store directly (no engine pass,
no real time), so what the TUI shows depends only on the data and the fixed clock `NOW`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.alert_log import AlertLog
from engine.config import Config
from engine.model import (
    Action,
    ActionKind,
    Alert,
    AlertEffect,
    Blocked,
    CatalogView,
    ClearedBy,
    ErrorClass,
    Evidence,
    Level,
    Plan,
    Scan,
    ScanFile,
    action_id,
)
from engine.pass_findings import PassFindings
from engine.state import ReplicaRow, StateStore, TaskRow
from engine.storage.base import ItemProgress
from engine.task_progress import record_item_progress
from engine.workspace import create_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
USER = "operator"
NAMES = (
    "S{n:04d}_sulfur_K_edge.h5",
    "S{n:04d}_phosphorus_XANES.h5",
    "S{n:04d}_chlorine K edge.h5",
    "S{n:04d}_Ångström_calibration.h5",
    "S{n:04d}_argon_EXAFS.h5",
)


def fixed_clock() -> datetime:
    return NOW


@dataclass
class Scenario:
    name: str
    config: Config
    store_path: Path
    scans: list[Scan]

    def store(self) -> StateStore:
        return StateStore(self.store_path)

    def app(self, **kwargs: object):  # type: ignore[no-untyped-def]
        """The app over this scenario: fixed clock and user, no timed refresh."""
        from bl931tui.app import Bl931App

        options: dict[str, object] = {"clock": fixed_clock, "user": USER, "refresh_seconds": None}
        options.update(kwargs)
        return Bl931App(self.config, **options)  # type: ignore[arg-type]


def make_scan(n: int, *, age_days: float, size: int = 1_500_000) -> Scan:
    acquired = NOW - timedelta(days=age_days)
    path = f"{acquired:%Y}/{acquired:%m}/ALS-11234/{NAMES[n % len(NAMES)].format(n=n)}"
    checksum = hashlib.md5(path.encode()).hexdigest()
    files = (ScanFile(path, size, acquired.timestamp(), checksum),)
    return Scan(path, files, acquired, "md5", checksum)


def copy_action(scan: Scan, source: str, target: str) -> Action:
    return Action(
        action_id(ActionKind.COPY, scan.id, scan.checksum, source, target),
        ActionKind.COPY,
        scan.id,
        source,
        target,
        scan.size,
        False,
        f"{target} copy is absent",
    )


def delete_action(scan: Scan, target: str, *, gated: bool = True) -> Action:
    return Action(
        action_id(ActionKind.DELETE, scan.id, scan.checksum, None, target),
        ActionKind.DELETE,
        scan.id,
        None,
        target,
        scan.size,
        gated,
        "retention passed; cfs verified by checksum",
    )


def register_action(scan: Scan) -> Action:
    return Action(
        action_id(ActionKind.REGISTER, scan.id, scan.checksum, None, None),
        ActionKind.REGISTER,
        scan.id,
        None,
        None,
        0,
        False,
        "cfs copy verified; not yet in the catalog",
    )


def put_replicas(
    store: StateStore, endpoint: str, scans: Iterable[Scan], *, evidence: bool = True
) -> None:
    rows = {
        s.id: ReplicaRow(Level.CHECKSUM, s.size, 1, f"sig-{s.checksum[:8]}", NOW) for s in scans
    }
    store.replace_replicas(endpoint, rows, [])
    if evidence:
        for scan_id, row in rows.items():
            store.record_evidence(
                scan_id,
                endpoint,
                Evidence(
                    Level.CHECKSUM,
                    "md5",
                    scan_id_checksum(scan_id),
                    f"task-{endpoint}-1",
                    NOW - timedelta(hours=1),
                    row.signature,
                    "copy" if endpoint != "dtn" else "inventory",
                ),
            )


def scan_id_checksum(scan_id: str) -> str:
    return hashlib.md5(scan_id.encode()).hexdigest()


def beat(store: StateStore, *, age: timedelta = timedelta(seconds=20)) -> None:
    finished = NOW - age
    store.beat(
        finished - timedelta(seconds=3),
        pid=4242,
        host="flow-vm",
        mode="service",
        pass_started_at=finished - timedelta(seconds=3),
    )
    store.beat(finished, pass_finished_at=finished, last_ok_pass_at=finished, summary={})


def _succeed(store: StateStore, actions: Iterable[Action]) -> None:
    actions = list(actions)
    store.save_plan(actions, NOW - timedelta(hours=2))
    for a in actions:
        store.record_success(a.id, NOW - timedelta(hours=1))


def _settled(store: StateStore, scans: list[Scan]) -> None:
    """Every scan copied to cfs and hpss and registered."""
    put_replicas(store, "dtn", scans)
    put_replicas(store, "cfs", scans)
    put_replicas(store, "hpss", scans)
    _succeed(
        store,
        [copy_action(s, "dtn", "cfs") for s in scans]
        + [copy_action(s, "cfs", "hpss") for s in scans]
        + [register_action(s) for s in scans],
    )


def fresh(store: StateStore, scans: list[Scan]) -> tuple[Blocked, ...]:
    put_replicas(store, "dtn", scans)
    store.save_plan([copy_action(s, "dtn", "cfs") for s in scans], NOW)
    beat(store)
    why = "waits for the cfs copy to be verified first"
    return tuple(Blocked(s.id, ActionKind.COPY, "hpss", "waiting_for_source", why) for s in scans)


def in_flight(store: StateStore, scans: list[Scan]) -> None:
    done, moving, queued = scans[:2], scans[2:5], scans[5:]
    _settled(store, done)
    put_replicas(store, "dtn", moving + queued)
    copies = [copy_action(s, "dtn", "cfs") for s in moving]
    store.save_plan(copies + [copy_action(s, "dtn", "cfs") for s in queued], NOW)
    task = TaskRow(
        "sub-0001",
        "task-7f3a",
        "local",
        "copy",
        "dtn",
        "cfs",
        "bl931 copy dtn → cfs: 3 scans",
        "active",
        tuple(a.id for a in copies),
        bytes_total=sum(s.size for s in moving),
        files_total=3,
    )
    store.create_task(task, {a.id: a.scan for a in copies}, NOW - timedelta(minutes=2))
    total = sum(s.size for s in moving)
    store.update_task(
        "sub-0001",
        NOW,
        bytes_done=int(total * 0.43),
        files_done=1,
        rate=25_000.0,
        status="active",
    )
    # Per scan, as the local mover reports it: the first done, the second 40%, the third not begun.
    first, second, _ = moving
    record_item_progress(
        store,
        "sub-0001",
        [
            ItemProgress(copies[0].id, 1, first.size),
            ItemProgress(copies[1].id, 0, int(second.size * 0.4)),
            ItemProgress(copies[2].id, 0, 0),
        ],
    )
    beat(store, age=timedelta(seconds=5))


def awaiting_approval(store: StateStore, scans: list[Scan]) -> None:
    _settled(store, scans)
    store.save_plan([delete_action(s, "dtn") for s in scans[1:]], NOW)
    store.place_hold(scans[0].id, "user asked to keep raw data", USER, NOW - timedelta(days=1))
    beat(store)


def failures(store: StateStore, scans: list[Scan]) -> tuple[Blocked, ...]:
    _settled(store, scans[:3])
    put_replicas(store, "dtn", scans[3:])
    bad = [copy_action(s, "dtn", "cfs") for s in scans[3:5]]
    store.save_plan(bad + [copy_action(s, "dtn", "cfs") for s in scans[5:]], NOW)
    for a in bad:
        store.record_failure(a.id, ErrorClass.NEEDS_HUMAN, "permission denied on cfs", NOW, None)
    store.endpoint_failed("hpss", "listing timed out after 60 s", NOW - timedelta(minutes=1))
    store.event(NOW, "alert", "hpss: listing failed 1 time(s)", level="error")
    beat(store)
    why = "permission denied on cfs (retry it to try again)"
    return tuple(
        Blocked(s.id, ActionKind.COPY, "cfs", "needs_attention", why) for s in scans[3:5]
    ) + tuple(
        Blocked(s.id, ActionKind.COPY, "hpss", "endpoint_unknown", "hpss could not be listed")
        for s in scans[3:]
    )


def stale(store: StateStore, scans: list[Scan]) -> None:
    _settled(store, scans)
    beat(store, age=timedelta(hours=2, minutes=5))


def scenario_alerts(scans: list[Scan]) -> tuple[Alert, Alert, Alert]:
    """Replicas vanished from cfs, hpss not provably its storage, files a prune left at dtn."""
    missing = Alert(
        "missing_fraction",
        AlertEffect.FREEZE_DELETES,
        "cfs: 5 of 8 previously seen replicas are missing (62% > 20%); no deletes are planned "
        "anywhere and cfs is unknown for every action until the replicas return or an operator "
        "acknowledges the loss",
        endpoint="cfs",
        cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
    )
    identity = Alert(
        "endpoint_identity",
        AlertEffect.UNKNOWN_ENDPOINT,
        "hpss is unknown for every action: the identity marker /data/hpss/.bl931-endpoint is "
        "missing: is the filesystem unmounted or replaced? Nothing there is trusted until it "
        "is back",
        endpoint="hpss",
        cleared_by=ClearedBy.CONDITION,
    )
    foreign = Alert(
        "foreign_files",
        AlertEffect.NOTIFY,
        f"the prune of {scans[1].id!r} at dtn left 1 file(s) it never copied anywhere: 'notes.txt'",
        endpoint="dtn",
        scan=scans[1].id,
        cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
    )
    return missing, identity, foreign


def alerts(store: StateStore, scans: list[Scan]) -> None:
    """Settled scans under three standing alerts; the notify one already acknowledged."""
    _settled(store, scans)
    missing, identity, foreign = scenario_alerts(scans)
    log = AlertLog(store)
    log.refresh([missing, identity], NOW - timedelta(hours=3), write=True)
    log.refresh([missing, identity, foreign], NOW - timedelta(minutes=40), write=True)
    log.acknowledge(
        foreign.id,
        by="jdoe",
        why="notes.txt is the user's log, kept",
        now=NOW - timedelta(minutes=10),
    )
    beat(store)


def decisions(store: StateStore, scans: list[Scan]) -> tuple[Blocked, ...]:
    """Prunes awaiting approval at two endpoints, and one the operator rejected.

    The rejected prune was planned, rejected by jdoe, then left the plan at the next pass (as
    the planner drops a rejected action), so only its decision and its blocked entries remain.
    """
    _settled(store, scans)
    rejected = delete_action(scans[0], "dtn")
    store.save_plan([rejected], NOW - timedelta(hours=2))
    store.reject([rejected.id], "jdoe", NOW - timedelta(hours=2))
    gated = [delete_action(s, "dtn") for s in scans[1:6]] + [
        delete_action(s, "cfs") for s in scans[6:]
    ]
    store.save_plan(gated, NOW - timedelta(hours=1))
    beat(store)
    return (
        Blocked(scans[0].id, ActionKind.DELETE, "dtn", "rejected", "rejected by an operator"),
        Blocked(
            scans[0].id,
            ActionKind.DELETE,
            "cfs",
            "still_needed",
            "the dtn copy relies on this one until it is pruned (dtn: rejected)",
        ),
    )


def stopped(store: StateStore, scans: list[Scan]) -> None:
    """Settled scans; the service stopped cleanly ten minutes ago."""
    _settled(store, scans)
    beat(store, age=timedelta(minutes=12))
    store.beat(NOW - timedelta(minutes=10), stopped_at=NOW - timedelta(minutes=10))


SCENARIOS: dict[str, Callable[[StateStore, list[Scan]], tuple[Blocked, ...] | None]] = {
    "fresh": fresh,
    "in_flight": in_flight,
    "awaiting_approval": awaiting_approval,
    "failures": failures,
    "stale": stale,
    "alerts": alerts,
    "decisions": decisions,
    "stopped": stopped,
}


def record_pass(store: StateStore, blocked: tuple[Blocked, ...]) -> None:
    """What a service pass records beside its plan: blocked entries and the catalog as read
    (a scan counts as registered once its registration succeeded)."""
    registered = {
        row[0]: frozenset({"dtn", "cfs", "hpss"})
        for row in store.connection().execute(
            "SELECT scan FROM actions WHERE kind = 'register' AND status = 'succeeded'"
        )
    }
    plan = Plan(as_of=NOW - timedelta(seconds=20), actions=(), blocked=blocked)
    PassFindings(store).record(
        plan, CatalogView(enabled=True, locations=registered), NOW - timedelta(minutes=30)
    )


def build(root: Path, name: str, *, count: int = 8) -> Scenario:
    """Write a workspace under `root` and fill its store with scenario `name`."""
    workspace = create_workspace(root, dtn_keep_days=30, cfs_keep_days=730)
    config = workspace.config()
    scans = [make_scan(n, age_days=45 + n * 3, size=1_500_000 + n * 250_000) for n in range(count)]
    store = StateStore(config.state.path)
    try:
        store.upsert_scans(scans, NOW - timedelta(days=1))
        for scan in scans:
            store.event(NOW - timedelta(days=1), "scan.inventoried", "inventoried", scan=scan.id)
        blocked = SCENARIOS[name](store, scans)
        record_pass(store, blocked or ())
    finally:
        store.close()
    return Scenario(name, config, config.state.path, scans)


def populate_large(store: StateStore, count: int) -> list[Scan]:
    """`count` scans in a realistic mix (the `hundred_thousand_scans` fixture of STYLE.md).

    Most are settled everywhere; a tenth are in flight, a tenth await a gated delete, a few
    failed, and the newest wait for their first copy.
    """
    scans = [
        make_scan(n, age_days=count / 1000 - n / 1000, size=1_000_000 + n % 977)
        for n in range(count)
    ]
    store.upsert_scans(scans, NOW - timedelta(days=1))
    settled = scans[: int(count * 0.75)]
    moving = scans[int(count * 0.75) : int(count * 0.85)]
    gated = scans[: int(count * 0.10)]
    failed = scans[int(count * 0.85) : int(count * 0.88)]
    fresh_ = scans[int(count * 0.88) :]
    put_replicas(store, "dtn", scans, evidence=False)
    put_replicas(store, "cfs", settled, evidence=False)
    put_replicas(store, "hpss", settled, evidence=False)
    done = [copy_action(s, "dtn", "cfs") for s in settled] + [register_action(s) for s in settled]
    store.save_plan(done, NOW - timedelta(hours=2))
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE actions SET status = 'succeeded' WHERE id = ?", [(a.id,) for a in done]
        )
    copies = [copy_action(s, "dtn", "cfs") for s in moving]
    bad = [copy_action(s, "dtn", "cfs") for s in failed]
    waiting = [copy_action(s, "dtn", "cfs") for s in fresh_]
    deletes = [delete_action(s, "dtn") for s in gated]
    store.save_plan(copies + bad + waiting + deletes, NOW)
    for start in range(0, len(copies), 1000):
        batch = copies[start : start + 1000]
        sub = f"sub-{start:06d}"
        store.create_task(
            TaskRow(
                sub,
                f"task-{start}",
                "local",
                "copy",
                "dtn",
                "cfs",
                sub,
                "active",
                tuple(a.id for a in batch),
                bytes_total=sum(a.bytes for a in batch),
            ),
            {a.id: a.scan for a in batch},
            NOW,
        )
        store.update_task(sub, NOW, bytes_done=sum(a.bytes for a in batch) // 3, rate=1e8)
    with store.transaction() as conn:
        conn.executemany(
            """UPDATE actions SET status = 'failed', error_class = 'needs_human',
               error = 'permission denied on cfs' WHERE id = ?""",
            [(a.id,) for a in bad],
        )
    beat(store)
    record_pass(store, ())  # the catalog as read: the settled scans registered
    return scans


def build_large(root: Path, count: int) -> Scenario:
    workspace = create_workspace(root, dtn_keep_days=30, cfs_keep_days=730)
    config = workspace.config()
    store = StateStore(config.state.path)
    try:
        scans = populate_large(store, count)
    finally:
        store.close()
    return Scenario(f"large_{count}", config, config.state.path, scans)
