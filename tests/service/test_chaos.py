"""Chaos: the service converges, never loses a scan version and never duplicates work, whatever
happens — with file scans and with directory scans.

With local endpoints (`chaos.py`) and with Globus endpoints served by the fake Transfer API
(`chaos_globus.py`); and, with deletes gated by approval, with an operator approving,
rejecting, un-rejecting and revoking at random points (`chaos_decisions.py`). The default run is short enough for CI; the full run is
`pytest tests/service/test_chaos.py --chaos-passes=200` (or `BL931_CHAOS_PASSES=200`), and
`BL931_CHAOS_SEED` replays another seed (for both flavours).
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.layout import ENGINE_TEMP_PREFIX
from engine.state import StateStore, TaskRow
from tests.service.chaos import ENDPOINTS, Chaos
from tests.service.chaos_globus import GlobusChaos

DEFAULT_PASSES = 30


@pytest.fixture
def chaos_passes(request: pytest.FixtureRequest) -> int:
    option = request.config.getoption("--chaos-passes")
    if option is not None:
        return int(option)
    return int(os.environ.get("BL931_CHAOS_PASSES", DEFAULT_PASSES))


# Every kind of fault the harness draws: a default run that misses one needs another seed.
FAULT_KINDS = (
    "unmount",
    "alias",
    "disk faults",
    "corrupt",
    "SIGKILL",
    "crash at delete step",
    "resize",
    "same size",
    "truncate",
)


@pytest.mark.parametrize(("unit", "default_seed"), [("file", 931), ("directory", 931)])
def test_chaos_converges_without_loss_or_duplicates(
    tmp_path: Path, chaos_passes: int, unit: str, default_seed: int
) -> None:
    seed = int(os.environ.get("BL931_CHAOS_SEED", default_seed))
    chaos = Chaos(tmp_path, seed, scan_unit=unit)
    for number in range(chaos_passes):
        chaos.run_pass(number)
        chaos.check_no_scan_lost()
    chaos.settle(chaos_passes)
    chaos.check_no_scan_lost(settled=True)

    faults = " ".join(" ".join(r.faults) for r in chaos.journal)
    if "BL931_CHAOS_SEED" not in os.environ:
        for kind in FAULT_KINDS:
            assert kind in faults, chaos.report(
                f"the run never injected {kind!r}; pick another seed"
            )
    assert any(r.killed for r in chaos.journal)

    _converged_placement(chaos)
    store = StateStore(chaos.ws.state_path, readonly=True)
    try:
        assert store.integrity_check() == "ok"
        _no_overlapping_submissions(chaos, store)
        _deletes_had_verified_copies(chaos, store)
    finally:
        store.close()


# What the operator does in a gated run (chaos_decisions.py); holds have no CLI path.
DECISION_KINDS = ("approve", "reject", "unreject", "revoke")


@pytest.mark.parametrize(("unit", "default_seed"), [("file", 931)])
def test_chaos_with_operator_decisions_never_deletes_without_a_standing_approval(
    tmp_path: Path, chaos_passes: int, unit: str, default_seed: int
) -> None:
    """Deletes gated by approval; before each pass the seeded RNG may approve a random subset
    of what awaits approval, reject some, un-reject some and revoke an unspent approval. After
    every pass: no delete without an approval the harness gave and had not revoked or
    overridden, nothing submitted while rejected, no approval spent twice (`Decider.check`)."""
    seed = int(os.environ.get("BL931_CHAOS_SEED", default_seed))
    chaos = Chaos(tmp_path, seed, scan_unit=unit, gated=True)
    decider = chaos.decider
    assert decider is not None
    for number in range(chaos_passes):
        chaos.run_pass(number)
        chaos.check_no_scan_lost()
    decider.withdraw_all()
    chaos.settle(chaos_passes)
    chaos.check_no_scan_lost(settled=True)

    if "BL931_CHAOS_SEED" not in os.environ:
        for kind in DECISION_KINDS:
            assert decider.counts[kind] > 0, chaos.report(
                f"the run never made a {kind!r} decision ({dict(decider.counts)}); pick another seed"
            )
    print(f"decisions: {dict(decider.counts)}")
    _converged_placement(chaos)
    store = StateStore(chaos.ws.state_path, readonly=True)
    try:
        assert store.integrity_check() == "ok"
        _no_overlapping_submissions(chaos, store)
        _deletes_had_verified_copies(chaos, store)
    finally:
        store.close()


# What Transfer does to a client in the Globus flavour (chaos_globus.py).
GLOBUS_FAULT_KINDS = (
    "delete fails part-way (PERMISSION_DENIED",
    "delete fails part-way (EXPIRED",
    "transfer fails part-way",
    "copy corrupted in flight",
    "503 burst",
    "refuses the client",
    "SIGKILL",
    "crash before a delete",
    "crash after a delete",
    "resize",
)


@pytest.mark.parametrize(("unit", "default_seed"), [("file", 931), ("directory", 931)])
def test_chaos_with_globus_endpoints_converges_without_loss_or_duplicates(
    tmp_path: Path, chaos_passes: int, unit: str, default_seed: int
) -> None:
    seed = int(os.environ.get("BL931_CHAOS_SEED", default_seed))
    chaos = GlobusChaos(tmp_path, seed, scan_unit=unit)
    try:
        for number in range(chaos_passes):
            chaos.run_pass(number)
            chaos.check_no_scan_lost()
        chaos.settle(chaos_passes)
        chaos.check_no_scan_lost(settled=True)

        faults = " ".join(" ".join(r.faults) for r in chaos.journal)
        if "BL931_CHAOS_SEED" not in os.environ:
            for kind in GLOBUS_FAULT_KINDS:
                assert kind in faults, chaos.report(
                    f"the run never injected {kind!r}; pick another seed"
                )
        _converged_placement(chaos)
        store = StateStore(chaos.ws.state_path, readonly=True)
        try:
            assert store.integrity_check() == "ok"
            _no_overlapping_submissions(chaos, store)
            _deletes_had_verified_copies(chaos, store)
        finally:
            store.close()
    finally:
        chaos.close()


def _converged_placement(chaos: Chaos) -> None:
    """Desired placement (retention passed everywhere but tape): only hpss, with the right bytes.

    For scans whose bytes never changed; a changed scan's versions are held by the safety
    checks (`check_no_scan_lost(settled=True)`), and write-once tape keeps its older version.
    """
    for scan in chaos.originals:
        assert chaos.good_copies(scan) == ["hpss"], chaos.report(f"{scan!r} not converged", scan)
        for endpoint in ("dtn", "cfs"):
            left = [f for f in chaos.files_of(scan) if (chaos.ws.root / endpoint / f).exists()]
            assert not left, chaos.report(f"{scan!r} still at {endpoint}: {left}")
    partial = [p for p in chaos.ws.root.rglob(f"{ENGINE_TEMP_PREFIX}*") if p.name != MARKER_NAME]
    assert partial == [], chaos.report(f"partial files left: {partial}")
    for endpoint in ENDPOINTS:
        assert not chaos.away(endpoint).exists()


def _no_overlapping_submissions(chaos: Chaos, store: StateStore) -> None:
    """An action was only ever resubmitted once its earlier task had ended (or was lost)."""
    tasks_of: dict[str, list[TaskRow]] = defaultdict(list)
    tasks = store.tasks()
    for task in tasks:
        assert task.status not in ("preparing", "active"), chaos.report(f"task left open: {task}")
        for action_id in task.action_ids:
            tasks_of[action_id].append(task)
    rows = {t.submission_id: t for t in tasks}
    updated = {
        row["submission_id"]: row["updated_at"]
        for row in store.connection().execute("SELECT submission_id, updated_at FROM tasks")
    }
    for action_id, action_tasks in tasks_of.items():
        assert store.count_submissions(action_id) == len(action_tasks)
        ordered = sorted(action_tasks, key=lambda t: (t.created_at, t.submission_id))
        for earlier, later in itertools.pairwise(ordered):
            assert earlier.created_at is not None and later.created_at is not None
            assert updated[earlier.submission_id] <= later.created_at.isoformat(), chaos.report(
                f"action {action_id} submitted again while task "
                f"{rows[earlier.submission_id]} was still open"
            )


def _deletes_had_verified_copies(chaos: Chaos, store: StateStore) -> None:
    """Every delete's receipt names checksum-verified copies that really survived it (for scans
    whose bytes never changed; every receipt of a changed scan is checked by the safety checks:
    its version, the copies it relied on, and every verified copy's removal accounted for)."""
    deleted_at: dict[tuple[str, str], str] = {}
    receipts = {scan: store.receipts(scan) for scan in chaos.originals}
    for scan, scan_receipts in receipts.items():
        # One complete receipt per endpoint; a delete cut part-way (a task cancelled on a
        # persistent fault, then retried) leaves a `partial` receipt before it, for other files.
        whole = [r for r in scan_receipts if not r.get("partial")]
        endpoints = sorted(r["endpoint"] for r in whole)
        assert endpoints == ["cfs", "dtn"], chaos.report(f"{scan!r} receipts: {endpoints}")
        for endpoint in endpoints:
            removed = [
                name
                for r in scan_receipts
                if r["endpoint"] == endpoint
                for name in (r.get("removed") or [])
            ]
            assert len(removed) == len(set(removed)), chaos.report(
                f"{scan!r}: a file receipted twice at {endpoint}: {removed}", scan
            )
        for receipt in scan_receipts:
            deleted_at[(scan, receipt["endpoint"])] = receipt["deleted_at"]
    for scan, scan_receipts in receipts.items():
        for receipt in scan_receipts:
            acquisition = receipt["acquisition"]["checksum"]
            assert receipt["verified_copies"], chaos.report(f"{scan!r}: a delete with no copy")
            for copy in receipt["verified_copies"]:
                assert copy["level"] == "checksum" and copy["checksum"] == acquisition, (
                    chaos.report(f"{scan!r}: delete at {receipt['endpoint']} relied on {copy}")
                )
                # The copy it relied on outlived it: still good now, or deleted later in turn.
                later = deleted_at.get((scan, copy["endpoint"]))
                if later is None:
                    assert copy["endpoint"] in chaos.good_copies(scan), chaos.report(
                        f"{scan!r}: {copy['endpoint']} gone without a receipt", scan
                    )
                else:
                    assert later >= receipt["deleted_at"], chaos.report(
                        f"{scan!r}: {copy['endpoint']} deleted before {receipt['endpoint']}", scan
                    )
