"""Operator decisions at random points of a chaos run, and what they must mean in the store.

Before each chaotic pass the seeded RNG may have the operator (through the real CLI) approve a
random subset of what awaits approval (`--approve ID…`), reject some planned actions
(`--reject`), withdraw some of its standing rejects (`--unreject`) and revoke some of its
unspent approvals (`--revoke`). Holds have no CLI path (TUI / decision channel only): not drawn.

The harness keeps its own record of every decision it made (the `decisions` rows each command
appended, by `seq`) and after every pass checks, from the store's tasks, decisions and receipts:

- every delete submission spent an approval the harness gave, and that approval was in force
  when the pass began: not revoked, not overridden by a later reject;
- no action was submitted while a reject of it stood;
- an approval, once spent by a submission, is never moved to another one, and never licenses
  more than one complete removal (one non-partial receipt per approval).

Before the end phase, `withdraw_all` un-rejects every standing reject and approves the rest.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.state import StateStore

AUDIT = Callable[[], tuple[int, dict[str, Any]]]


@dataclass
class Decider:
    cli: list[str]
    config: Path
    state_path: Path
    env: Callable[[], dict[str, str]]
    report: Callable[[str], str]
    counts: Counter[str] = field(default_factory=Counter)
    given: set[int] = field(default_factory=set)  # approve seqs the harness recorded
    revoked: set[int] = field(default_factory=set)
    overridden: set[int] = field(default_factory=set)  # approvals a later reject overrode
    # Action id → the harness's latest standing decision: ("approve" | "reject", seq).
    standing: dict[str, tuple[str, int]] = field(default_factory=dict)
    last_seq: int = 0
    seen_tasks: set[str] = field(default_factory=set)
    spent: dict[int, str] = field(default_factory=dict)  # approve seq → submission that spent it
    action_of: dict[int, str] = field(default_factory=dict)  # decision seq → action id
    at_start: dict[str, tuple[str, int]] = field(default_factory=dict)  # standing at pass start

    # ---- the operator -------------------------------------------------------------------
    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.cli, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=self.env(),
        )
        assert done.returncode in ok, self.report(f"{args} exit {done.returncode}: {done.stderr}")
        return done

    def _rows(self, sql: str, *params: object) -> list[sqlite3.Row]:
        if not self.state_path.exists():  # before the first pass
            return []
        store = StateStore(self.state_path, readonly=True)
        try:
            return list(store.connection().execute(sql, params))
        finally:
            store.close()

    def _learn(self) -> None:
        """Take the decisions rows the last command appended as the harness's own."""
        for row in self._rows(
            "SELECT seq, action_id, decision FROM decisions WHERE seq > ? ORDER BY seq",
            self.last_seq,
        ):
            seq, aid = int(row["seq"]), row["action_id"]
            self.last_seq = seq
            self.action_of[seq] = aid
            previous = self.standing.get(aid)
            if row["decision"] == "approve":
                self.given.add(seq)
            elif previous is not None and previous[0] == "approve":
                self.overridden.add(previous[1])
            self.standing[aid] = (row["decision"], seq)

    def approve(self, ids: list[str]) -> None:
        self._run("--approve", *ids)
        self.counts["approve"] += len(ids)
        self._learn()

    def approve_all(self) -> None:
        self._run("--approve-all", "--yes")
        before = len(self.given)
        self._learn()
        self.counts["approve-all"] += len(self.given) - before

    def reject(self, ids: list[str]) -> None:
        self._run("--reject", *ids)
        self.counts["reject"] += len(ids)
        self._learn()

    def unreject(self, ids: list[str]) -> None:
        self._run("--unreject", *ids)
        self.counts["unreject"] += len(ids)
        for aid in ids:
            self.standing.pop(aid, None)

    def revoke(self, aid: str) -> None:
        # Refused (64, naming the id) if the approval was spent meanwhile: not revoked then.
        done = self._run("--revoke", aid, ok=(0, 64))
        if done.returncode == 0:
            self.counts["revoke"] += 1
            self.revoked.add(self.standing.pop(aid)[1])
        else:
            self.counts["revoke refused (spent)"] += 1

    def _unspent_approvals(self) -> list[str]:
        rows = self._rows(
            "SELECT action_id, seq FROM decisions WHERE decision = 'approve' "
            "AND superseded = 0 AND spent_by IS NULL"
        )
        return sorted(
            r["action_id"]
            for r in rows
            if self.standing.get(r["action_id"]) == ("approve", int(r["seq"]))
        )

    def draw(self, rng: random.Random, doc: dict[str, Any], notes: list[str]) -> None:
        """This pass's decisions, chosen by the run's RNG from the audit before the pass."""
        awaiting = sorted(
            a["id"] for a in doc["actions"] if a["requires_approval"] and not a["approved"]
        )
        rejects = sorted(aid for aid, (op, _) in self.standing.items() if op == "reject")
        if awaiting and rng.random() < 0.5:
            chosen = rng.sample(awaiting, rng.randint(1, len(awaiting)))
            self.approve(chosen)
            notes.append(f"approve {len(chosen)}/{len(awaiting)}")
            awaiting = [a for a in awaiting if a not in chosen]
        unspent = self._unspent_approvals()
        planned = {a["id"] for a in doc["actions"]}
        pool = awaiting + [a for a in unspent if a in planned]
        if pool and rng.random() < 0.3:
            chosen = rng.sample(pool, rng.randint(1, min(3, len(pool))))
            self.reject(chosen)
            notes.append(f"reject {len(chosen)}")
        if rejects and rng.random() < 0.4:
            chosen = rng.sample(rejects, rng.randint(1, len(rejects)))
            self.unreject(chosen)
            notes.append(f"unreject {len(chosen)}")
        unspent = self._unspent_approvals()
        if unspent and rng.random() < 0.3:
            self.revoke(rng.choice(unspent))
            notes.append("revoke 1")

    def withdraw_all(self) -> None:
        """Before the end phase: un-reject every standing reject, approve what remains."""
        rejects = sorted(aid for aid, (op, _) in self.standing.items() if op == "reject")
        if rejects:
            self.unreject(rejects)
        self.approve_all()

    # ---- the checks ---------------------------------------------------------------------
    def before_pass(self) -> None:
        self.at_start = dict(self.standing)

    def check(self, scans: list[str]) -> None:
        """After a pass: the decisions the harness made are the only licence deletes had."""
        tasks = self._rows("SELECT submission_id, kind, status FROM tasks")
        items = self._rows("SELECT submission_id, action_id FROM task_items")
        of: dict[str, list[str]] = {}
        for item in items:
            of.setdefault(item["submission_id"], []).append(item["action_id"])
        spent = {
            (r["spent_by"], r["action_id"]): r
            for r in self._rows(
                "SELECT seq, action_id, spent_by FROM decisions WHERE spent_by IS NOT NULL"
            )
        }
        status = {t["submission_id"]: t["status"] for t in tasks}
        for row in spent.values():
            seq, submission = int(row["seq"]), row["spent_by"]
            before = self.spent.setdefault(seq, submission)
            if before != submission:
                # Only a refunded approval moves: its submission removed nothing and never will.
                assert status.get(before) in ("withdrawn", "lost"), self.report(
                    f"approval {seq} spent by {before} ({status.get(before)}), then by {submission}"
                )
                self.counts["approvals refunded and spent again"] += 1
                self.spent[seq] = submission
        for task in tasks:
            submission = task["submission_id"]
            if submission in self.seen_tasks:
                continue
            self.seen_tasks.add(submission)
            for aid in of.get(submission, []):
                standing = self.at_start.get(aid)
                assert standing is None or standing[0] != "reject", self.report(
                    f"{task['kind']} {submission} carries {aid}, rejected (seq {standing})"
                )
            if task["kind"] != "delete":
                continue
            for aid in of.get(submission, []):
                used = spent.get((submission, aid))
                assert used is not None, self.report(
                    f"delete {submission} of {aid} spent no approval"
                )
                seq = int(used["seq"])
                assert self.at_start.get(aid) == ("approve", seq), self.report(
                    f"delete {submission} of {aid} spent approval {seq}, not in force at the "
                    f"pass's start ({self.at_start.get(aid)})"
                )
                assert seq in self.given and seq not in self.revoked | self.overridden
        self._check_receipts(scans)
        refused = self._rows(
            "SELECT data FROM events WHERE kind = 'delete.recheck_failed' AND "
            "(data LIKE '%rejected%' OR data LIKE '%not_approved%')"
        )
        self.counts["refused at submission (rejected/not approved)"] = len(refused)
        self.counts["delete submissions"] = sum(1 for t in tasks if t["kind"] == "delete")

    def _check_receipts(self, scans: list[str]) -> None:
        if not self.state_path.exists():
            return
        store = StateStore(self.state_path, readonly=True)
        try:
            receipts = [r for scan in scans for r in store.receipts(scan)]
        finally:
            store.close()
        whole: Counter[int] = Counter()
        for receipt in receipts:
            approval = receipt.get("approval")
            assert approval is not None, self.report(f"receipt without approval: {receipt}")
            seq = next(
                (
                    s
                    for s, sub in self.spent.items()
                    if sub == approval["submission_id"]
                    and self.action_of[s] == receipt["action_id"]
                ),
                None,
            )
            assert seq is not None and seq in self.given, self.report(
                f"receipt names an approval the harness did not give: {approval}"
            )
            assert seq not in self.revoked and seq not in self.overridden, self.report(
                f"receipt names approval {seq}, revoked or overridden: {receipt}"
            )
            if not receipt.get("partial"):
                whole[seq] += 1
        twice = {seq: n for seq, n in whole.items() if n > 1}
        assert not twice, self.report(f"an approval licensed more than one removal: {twice}")
        self.counts["receipts checked"] = len(receipts)
