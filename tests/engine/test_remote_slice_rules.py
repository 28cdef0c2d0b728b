"""The slice's schedule and the rule that no delete relies on an unlisted replica (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.config import parse_config
from engine.incremental.remote_slice import RemoteSlice
from engine.incremental.unlisted_deletes import block_unlisted_deletes
from engine.model import Action, ActionKind, EndpointObservation, Plan, Scan, ScanFile
from engine.policy import Policy

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _scans(dirs: int, per_dir: int) -> dict[str, Scan]:
    out = {}
    for d in range(dirs):
        for n in range(per_dir):
            sid = f"2026/d{d:03}/s{n:03}.h5"
            out[sid] = Scan(
                sid,
                (ScanFile(sid, 1, T0.timestamp() - 86400, "c"),),
                T0 - timedelta(days=1),
                "md5",
                "c",
            )
    return out


def _policy() -> Policy:
    config = parse_config(
        {"endpoints": {"dtn": {"kind": "local", "path": "/tmp/dtn"}, "cfs": {"kind": "local", "path": "/tmp/cfs"}},
         "copy": [{"from": "dtn", "to": "cfs"}]}
    )  # fmt: skip
    return Policy.from_config(config)


def test_every_folder_is_listed_within_reverify_days_at_the_expected_rate() -> None:
    """100 folders, reverify_days 7, one pass a minute for 15 days."""
    scans, policy = _scans(100, 3), _policy()
    remote = RemoteSlice(7)
    last: dict[str, datetime] = {}
    worst = timedelta(0)
    taken = 0
    now = T0
    passes = 15 * 24 * 60
    for i in range(passes):
        remote.begin(now, scans, (), policy, frozenset({"cfs"}), "file")
        wanted = remote.wanted("cfs")
        if wanted is None:
            folders = {s.rsplit("/", 1)[0] for s in scans}
        else:
            folders = {s.rsplit("/", 1)[0] for s in wanted}
            taken += len(folders) if i > 0 else 0
        for folder in folders:
            if folder in last:
                worst = max(worst, now - last[folder])
            last[folder] = now
        remote.merge("cfs", {}, scans)
        remote.end(Plan(as_of=now, actions=(), blocked=()))
        now += timedelta(minutes=1)
    assert worst <= timedelta(days=7), worst
    per_pass = taken / (passes - 1)
    assert per_pass <= 1.2 * 100 / (7 * 24 * 60), per_pass  # about 0.01 folders a pass


def test_a_pass_whose_plan_never_came_makes_the_next_list_everything() -> None:
    scans, policy = _scans(4, 2), _policy()
    remote = RemoteSlice(7)
    remote.begin(T0, scans, (), policy, frozenset({"cfs"}), "file")
    assert remote.wanted("cfs") is None
    remote.merge("cfs", {}, scans)
    remote.end(Plan(as_of=T0, actions=(), blocked=()))
    remote.begin(T0 + timedelta(minutes=1), scans, (), policy, frozenset({"cfs"}), "file")
    assert remote.wanted("cfs") is not None  # sliced
    remote.merge("cfs", {}, scans)  # ... and the pass dies here: no `end`
    remote.begin(T0 + timedelta(minutes=2), scans, (), policy, frozenset({"cfs"}), "file")
    assert remote.wanted("cfs") is None


def test_a_delete_relying_on_a_carried_replica_is_blocked() -> None:
    policy = Policy.from_config(
        parse_config(
            {
                "endpoints": {
                    "dtn": {"kind": "local", "path": "/tmp/dtn"},
                    "cfs": {"kind": "local", "path": "/tmp/cfs"},
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "retention": {"dtn": {"keep_days": 1, "delete_requires": ["cfs"]}},
            }
        )
    )
    delete = Action("a1", ActionKind.DELETE, "s1", None, "dtn", 0, False, "retention passed")
    other = Action("a2", ActionKind.DELETE, "s2", None, "dtn", 0, False, "retention passed")
    plan = Plan(as_of=T0, actions=(delete, other), blocked=())
    observations = {
        "dtn": EndpointObservation("dtn", ok=True),
        "cfs": EndpointObservation("cfs", ok=True, carried={"s1": T0 - timedelta(days=3)}),
    }
    out = block_unlisted_deletes(plan, observations, policy)
    assert [a.id for a in out.actions] == ["a2"]
    (blocked,) = out.blocked
    assert (blocked.scan, blocked.reason_code, blocked.endpoint) == (
        "s1",
        "observation_stale",
        "dtn",
    )
    assert "cfs copy was not listed this pass" in blocked.reason
