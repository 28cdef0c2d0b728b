"""The rest of a scan a delete removed part of: the same version, not a new one.

A delete that stops part-way (cancelled because an operator rejected or held it while the task
ran, failed on a permission error, interrupted by a crash) leaves some of a directory scan's
files. Its `partial` receipt names exactly which of the submitted version's files were removed
(`engine/deletes.py`, `record_partial`). On the inventory endpoint the walk would otherwise read
what is left as the scan's content changing, give it a new checksum and version, and the plan
would then treat bl931's own half-deleted remnant as new data: offer to replace the complete
copies elsewhere with it, and plan its delete under a new action id that no decision on the
old one (a reject, a spent approval) applies to.

So the walk asks this module first (`RemnantIndex.is_remnant`): a listing that is the recorded
version minus files a partial receipt of *that version* (same checksum) at that endpoint says
were removed, with every remaining file still the very file that was hashed (path, size,
mtime, inode, ctime), keeps the recorded version. Its delete keeps its action id: a reject of
it still blocks it, and since its approval was spent by the submission that removed part of it,
the rest awaits a new approval. Anything else — a remaining file rewritten, a file added, a
removed file put back, a file gone that no receipt names — is a change, judged as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.model import FileStat, Scan
from engine.state import StateStore


@dataclass(frozen=True, slots=True)
class RemnantIndex:
    """scan → version checksum → files partial receipts at one endpoint say were removed."""

    removed: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)

    def is_remnant(
        self, known: Scan, listed: tuple[FileStat, ...], *, by_identity: bool = True
    ) -> bool:
        """Is `listed` exactly `known` minus files receipted removed from that version?

        `by_identity`: each remaining file must still be the very file that was hashed (inode
        and ctime too: the walk, which decides the version). Without it, path, size and mtime
        must match, the standard the observation holds the inventory endpoint's listing to (a
        listing through Globus shows no inodes)."""
        gone_by_receipt = self.removed.get(known.id, {}).get(known.checksum)
        if not gone_by_receipt:
            return False
        recorded = {f.path: f for f in known.files}
        seen: set[str] = set()
        for stat in listed:
            old = recorded.get(stat.path)
            if (
                old is None  # a file added: a change
                or stat.path in gone_by_receipt  # a removed file is back: a change
                or (old.size, old.mtime) != (stat.size, stat.mtime)
                or (
                    by_identity
                    and (
                        old.inode is None
                        or (old.inode, old.ctime_ns) != (stat.inode, stat.ctime_ns)
                    )
                )
            ):
                return False
            seen.add(stat.path)
        missing = set(recorded) - seen
        return bool(missing) and missing <= gone_by_receipt


def remnant_index(store: StateStore, endpoint: str) -> RemnantIndex:
    """The partial receipts at `endpoint`, indexed by scan and the version they were of."""
    rows = (
        store.connection()
        .execute(
            """SELECT scan, receipt FROM deletions
               WHERE endpoint = ? AND json_extract(receipt, '$.partial') = 1""",
            (endpoint,),
        )
        .fetchall()
    )
    out: dict[str, dict[str, set[str]]] = {}
    for scan, body in rows:
        receipt = json.loads(body)
        checksum = (receipt.get("acquisition") or {}).get("checksum")
        removed = receipt.get("removed") or []
        if checksum and removed:
            out.setdefault(scan, {}).setdefault(checksum, set()).update(removed)
    return RemnantIndex({s: {c: frozenset(p) for c, p in by.items()} for s, by in out.items()})
