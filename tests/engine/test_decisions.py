"""The decision log: what is in force, what a submission may spend, refunds, the migration.

The end-to-end scenarios (restored copies, a reject during the last look, two operators) run
through the real CLI in tests/cli/test_approvals.py; these pin the rules one at a time.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.decisions import NOT_APPROVED, ON_HOLD, REJECTED, DecisionLog
from engine.model import Action, ActionKind
from engine.state import MIGRATIONS, StateStore, TaskRow, iso

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def delete(aid: str, scan: str = "s.h5", *, gated: bool = True) -> Action:
    return Action(aid, ActionKind.DELETE, scan, None, "dtn", 10, gated, "retention passed")


def copy(aid: str, scan: str = "s.h5", *, replaces: str | None = None) -> Action:
    return Action(
        aid, ActionKind.COPY, scan, "dtn", "cfs", 10, replaces is not None, "", False, replaces
    )


def submit(store: StateStore, submission: str, actions: list[Action], now: datetime = NOW):  # type: ignore[no-untyped-def]
    """What the executor does: admit and record the task in one write transaction."""
    with store.transaction():
        admitted, refused = DecisionLog(store).admit(actions, submission, now)
        if admitted:
            store.save_plan(admitted, now)
            task = TaskRow(
                submission,
                None,
                "local",
                "delete",
                None,
                "dtn",
                "t",
                "preparing",
                tuple(a.id for a in admitted),
            )
            store.create_task(task, {a.id: a.scan for a in admitted}, now)
    return admitted, refused


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = StateStore(tmp_path / "state.sqlite")
    yield opened
    opened.close()


def test_an_approval_is_spent_by_one_submission(store: StateStore) -> None:
    store.approve(["a1"], "alice", NOW)
    admitted, refused = submit(store, "sub-1", [delete("a1")])
    assert [a.id for a in admitted] == ["a1"] and refused == []
    # In force for its own open submission only (a resumed delete), not for another.
    assert store.decisions()["a1"][:2] == ("approve", "alice")
    with store.transaction():
        again, refused = DecisionLog(store).admit([delete("a1")], "sub-2", NOW)
    assert again == [] and [r.code for r in refused] == [NOT_APPROVED]
    assert "spent by submission sub-1" in refused[0].why
    with store.transaction():
        resumed, _ = DecisionLog(store).admit([delete("a1")], "sub-1", NOW)
    assert [a.id for a in resumed] == ["a1"]

    store.update_task("sub-1", NOW, status="succeeded")
    store.record_success("a1", NOW)
    assert "a1" not in store.decisions(), "a spent approval is still in force"
    (spent,) = DecisionLog(store).history("a1")
    assert (spent.spent_by, spent.by) == ("sub-1", "alice")
    assert DecisionLog(store).spent_by("sub-1", "a1") == spent


def test_the_latest_decision_is_in_force_and_a_reject_is_never_spent(store: StateStore) -> None:
    store.approve(["a1"], "alice", NOW)
    store.reject(["a1"], "bob", NOW)  # the same instant: the order of recording decides
    assert store.decisions()["a1"][:2] == ("reject", "bob")
    _, refused = submit(store, "sub-1", [delete("a1"), delete("a2", gated=False)])
    assert [(r.action.id, r.code) for r in refused] == [("a1", REJECTED)]
    assert store.decisions()["a1"][0] == "reject"
    store.approve(["a1"], "alice", NOW + timedelta(seconds=1))
    admitted, _ = submit(store, "sub-2", [delete("a1")])
    assert [a.id for a in admitted] == ["a1"]
    assert DecisionLog(store).spent_by("sub-2", "a1").by == "alice"  # type: ignore[union-attr]
    kinds = [e["kind"] for e in store.events()]
    assert kinds.count("action.approved") == 2 and kinds.count("action.rejected") == 1


def test_a_hold_stops_deletes_and_replaces_but_not_plain_copies(store: StateStore) -> None:
    store.place_hold("s.h5", "paper in review", "ana", NOW)
    store.approve(["d", "r"], "alice", NOW)
    actions = [delete("d"), copy("r", replaces="old"), copy("c")]
    admitted, refused = submit(store, "sub-1", actions)
    assert [a.id for a in admitted] == ["c"]
    assert {(r.action.id, r.code) for r in refused} == {("d", ON_HOLD), ("r", ON_HOLD)}
    assert all(d.spent_by is None for d in DecisionLog(store).latest(["d", "r"]).values())


def test_no_decision_can_slip_in_between_admission_and_the_submission_record(
    store: StateStore, tmp_path: Path
) -> None:
    store.approve(["a1"], "alice", NOW)
    other = StateStore(tmp_path / "state.sqlite", timeout=0.0)  # another operator, no waiting
    try:
        with store.transaction():
            DecisionLog(store).admit([delete("a1")], "sub-1", NOW)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.reject(["a1"], "bob", NOW)
        other.reject(["a1"], "bob", NOW)  # after the submission: a later decision
    finally:
        other.close()
    assert DecisionLog(store).spent_by("sub-1", "a1").by == "alice"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="inside the submission's transaction"):
        DecisionLog(store).admit([delete("a1")], "sub-2", NOW)


def test_an_unused_approval_comes_back_unless_its_submission_left_a_receipt(
    store: StateStore,
) -> None:
    store.approve(["a1", "a2"], "alice", NOW)
    submit(store, "sub-1", [delete("a1", "one.h5"), delete("a2", "two.h5")])
    store.record_deletion(
        "two.h5", "dtn", "a2", None, NOW, {"partial": True}, submission_id="sub-1"
    )
    assert DecisionLog(store).refund_unused("sub-1", ["a1", "a2"]) == 1
    latest = DecisionLog(store).latest(["a1", "a2"])
    assert latest["a1"].spent_by is None and latest["a2"].spent_by == "sub-1"


def test_receipts_are_one_per_removal(store: StateStore) -> None:
    for n, submission in enumerate(("sub-1", "sub-1", "sub-2")):
        store.record_deletion(
            "s.h5",
            "dtn",
            "a1",
            f"task-{n}",
            NOW + timedelta(minutes=n),
            {"n": n},
            submission_id=submission,
        )
    receipts = store.receipts("s.h5")
    # The second write of sub-1 completes its receipt (an interrupted delete's rest); sub-2,
    # a later removal of the same action, appends its own.
    assert [(r["submission_id"], r["n"], r["task_id"]) for r in receipts] == [
        ("sub-1", 1, "task-1"),
        ("sub-2", 2, "task-2"),
    ]
    assert receipts[0]["receipt_id"] < receipts[1]["receipt_id"]
    assert store.deleted() == {"dtn": {"s.h5"}}


def schema_2_store(path: Path) -> None:
    """A store as the previous release left it: approvals keyed by action, receipts replaced."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    at = iso(NOW)
    later = iso(NOW + timedelta(hours=1))
    conn.executemany(
        "INSERT INTO actions(id, kind, scan, target, status, submission_id, created_at, updated_at)"
        " VALUES (?, 'delete', ?, 'dtn', ?, ?, ?, ?)",
        [
            ("done", "one.h5", "succeeded", "sub-old", at, at),
            ("waiting", "two.h5", "planned", None, at, at),
            ("flying", "three.h5", "submitted", "sub-open", at, at),
        ],
    )
    conn.executemany(
        "INSERT INTO tasks(submission_id, task_id, mover, kind, target, label, status, created_at,"
        " updated_at) VALUES (?, ?, 'local', 'delete', 'dtn', 'l', ?, ?, ?)",
        [
            ("sub-old", "task-old", "succeeded", later, later),
            ("sub-open", "t2", "active", later, later),
        ],
    )
    conn.executemany(
        "INSERT INTO task_items VALUES (?,?,?)",
        [("sub-old", "done", "one.h5"), ("sub-open", "flying", "three.h5")],
    )
    conn.executemany(
        "INSERT INTO approvals VALUES (?,?,?,?,'')",
        [
            ("done", "approve", "alice", at),
            ("waiting", "approve", "bob", at),
            ("flying", "approve", "carol", at),
            ("nope", "reject", "dave", at),
        ],
    )
    conn.execute(
        "INSERT INTO deletions VALUES ('one.h5', 'dtn', 'done', 'task-old', ?, '{\"x\": 1}')",
        (later,),
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def test_the_migration_spends_approvals_already_used_and_keeps_receipts(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    schema_2_store(path)
    old_reader = StateStore(path, readonly=True)  # a TUI opened before the service upgraded
    try:  # it reads the old tables, by the new rules
        assert set(old_reader.decisions()) == {"waiting", "flying", "nope"}
        (old,) = old_reader.receipts("one.h5")
        assert old["x"] == 1 and old["submission_id"] is None
    finally:
        old_reader.close()

    store = StateStore(path)
    try:
        in_force = store.decisions()
        # `done` ran under alice's approval before the upgrade: a restored copy asks again.
        assert set(in_force) == {"waiting", "flying", "nope"}
        assert in_force["flying"][:2] == ("approve", "carol")  # its open task keeps it
        assert DecisionLog(store).spent_by("sub-old", "done").by == "alice"  # type: ignore[union-attr]
        (receipt,) = store.receipts("one.h5")
        assert receipt["x"] == 1 and receipt["submission_id"] == "sub-old"
        assert receipt["receipt_id"] == 1
        rows = store.connection().execute("SELECT action_id FROM approvals ORDER BY 1")
        assert [r[0] for r in rows] == ["flying", "nope", "waiting"]
    finally:
        store.close()
