"""An endpoint's replicas read through its verdicts, without a second map of every scan.

The observer keeps each endpoint's verdicts (`Assessed`, one per listed scan, which the next
pass reuses) and hands the planner the replicas they hold. Building a second dict for those
cost one entry per scan per endpoint (~5 MB an endpoint at 100k scans) and kept it alive as long
as the settled observation; `ReplicaView` reads the replica off the verdict instead. The
verdicts are not changed once the endpoint's observation is built (the observer finishes an
endpoint's verdicts — tape versions, re-hashed copies, a Globus slice's carried verdicts —
before it makes the observation), so the view is as fixed as the dict it replaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, ValuesView

from engine.model import Replica
from engine.observe.assess import Assessed


class ReplicaView(Mapping[str, Replica]):
    """scan id → the replica of its verdict."""

    __slots__ = ("_verdicts",)

    def __init__(self, verdicts: Mapping[str, Assessed]) -> None:
        self._verdicts = verdicts

    def __getitem__(self, scan_id: str) -> Replica:
        return self._verdicts[scan_id].replica

    def get(self, scan_id: str, default: Replica | None = None) -> Replica | None:  # type: ignore[override]
        verdict = self._verdicts.get(scan_id)
        return default if verdict is None else verdict.replica

    def __contains__(self, scan_id: object) -> bool:
        return scan_id in self._verdicts

    def __len__(self) -> int:
        return len(self._verdicts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._verdicts)

    def values(self) -> ValuesView[Replica]:
        return _Replicas(self)


class _Replicas(ValuesView[Replica]):
    def __iter__(self) -> Iterator[Replica]:
        verdicts: Mapping[str, Assessed] = self._mapping._verdicts  # type: ignore[attr-defined]
        return (verdict.replica for verdict in verdicts.values())
