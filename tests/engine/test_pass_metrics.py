"""The action metrics of real passes, pinned: `bl931_actions_total` and `bl931_errors_total` on the
service's registry and in the Pushgateway's payload, pass by pass, after copies that succeed, a
copy that fails transiently, one that needs a person, a delete awaiting approval then approved
and done, a delete its last look refuses, and a catalog registration that fails.

The values were read off the engine before its action tallies came from the executor instead of
the audit log (a characterisation): the metrics must not change with how they are counted.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bl931tui.service_ops import observe_and_push
from engine.backends import Backends
from engine.errors import CatalogUnavailable, NeedsHumanError
from engine.metrics import ServiceMetrics
from engine.pushgateway import Pusher
from engine.storage import local_mover
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import MakeEngine
from tests.engine_world import Engine
from tests.ops.test_owner_and_push import gateway

START = datetime(2026, 3, 1, tzinfo=UTC)
SCANS = ("2026/s0.h5", "2026/s1.h5", "2026/s2.h5", "2026/s3.h5")
FAMILIES = ("bl931_actions_total", "bl931_errors_total")


def fail_first_copy(
    monkeypatch: pytest.MonkeyPatch, faults: dict[tuple[str, str], Exception]
) -> None:
    """The first copy of each (scan, target endpoint) in `faults` raises that error where the
    local mover places a file (`localfs.place_file`, whose errors the mover classifies: an
    `OSError` is transient, a `NeedsHumanError` such as "holds other bytes" needs a person);
    every later copy runs as usual."""
    place = local_mover.place_file
    armed = dict(faults)

    def flaky(source: Path, target: Path, *args: Any, **kwargs: Any) -> Any:
        for (scan, endpoint), error in list(armed.items()):
            if kwargs.get("endpoint") == endpoint and target.as_posix().endswith(scan):
                del armed[(scan, endpoint)]
                raise error
        return place(source, target, *args, **kwargs)

    monkeypatch.setattr(local_mover, "place_file", flaky)


def refuse_first_registration(scan: str) -> Callable[[Backends], None]:
    """The catalog refuses the first registration of `scan` as a catalog gone away mid-pass
    would (`CatalogUnavailable`: a transient failure, at `catalog`)."""

    def prepare(backends: Backends) -> None:
        catalog = backends.catalog
        assert catalog is not None
        register = catalog.register
        refused: list[str] = []

        def flaky(one: Any, locations: Any) -> str:
            if one.id == scan and not refused:
                refused.append(scan)
                raise CatalogUnavailable("catalog: connection reset by peer")
            return register(one, locations)

        catalog.register = flaky  # type: ignore[method-assign]

    return prepare


def rot(path: Path) -> None:
    """Change bytes in place and put size and mtime back, as silent corruption would look."""
    before = os.stat(path)
    with path.open("r+b") as stream:
        stream.write(b"\0" * 16)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def rot_before_execute(monkeypatch: pytest.MonkeyPatch, engine: Engine, path: Path) -> None:
    """In the next pass, `path` rots after the walk and the plan, before the last look."""
    executor = engine.reconciler.executor
    execute = executor.execute

    def rot_then_execute(plan: Any, seen: Any, now: datetime) -> Any:
        rot(path)
        monkeypatch.setattr(executor, "execute", execute)
        return execute(plan, seen, now)

    monkeypatch.setattr(executor, "execute", rot_then_execute)


def action_samples(body: str) -> dict[str, float]:
    """The action families' samples of a Prometheus text payload: `name{labels}` → value."""
    out = {}
    for line in body.splitlines():
        if line.startswith(FAMILIES):
            head, _, value = line.rpartition(" ")
            out[head] = float(value)
    return out


def world(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000, retry_base_seconds=1
    )
    for i, scan in enumerate(SCANS):
        ws.write_scan(scan, bytes([i + 1]) * (100 + i), mtime=START - timedelta(days=1))
    return ws


def A(kind: str, outcome: str) -> str:
    return f'bl931_actions_total{{kind="{kind}",outcome="{outcome}"}}'


def E(error_class: str, endpoint: str) -> str:
    return f'bl931_errors_total{{endpoint="{endpoint}",error_class="{error_class}"}}'


# What each pass adds to the action families (samples that did not move are left out).
EXPECTED_PER_PASS: list[dict[str, float]] = [
    # 0: copies to cfs; s3's target holds other bytes: a person must look
    {
        A("copy", "submitted"): 4,
        A("copy", "succeeded"): 3,
        A("copy", "failed"): 1,
        E("needs_human", "cfs"): 1,
    },
    # 1: copies on to hpss, s1's runs out of space; registrations, s2's refused
    {
        A("copy", "submitted"): 3,
        A("copy", "succeeded"): 2,
        A("copy", "failed"): 1,
        A("register", "succeeded"): 2,
        A("register", "failed"): 1,
        E("transient", "hpss"): 1,
        E("transient", "catalog"): 1,
    },
    # 2: both retried
    {
        A("copy", "submitted"): 1,
        A("copy", "succeeded"): 1,
        A("register", "succeeded"): 1,
        A("update_catalog", "succeeded"): 1,
    },
    # 3
    {A("update_catalog", "succeeded"): 1},
    # 4: the dtn prunes wait for approval; s0's and s2's are approved after this pass
    {},
    # 5: s0's prune is done; s2 rotted before its last look: skipped
    {A("delete", "submitted"): 1, A("delete", "succeeded"): 1, A("delete", "skipped"): 1},
    # 6: the catalog follows
    {A("update_catalog", "succeeded"): 2},
    # 7: settled
    {},
]


def test_action_metrics_of_real_passes(
    tmp_path: Path, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = world(tmp_path)
    fail_first_copy(
        monkeypatch,
        {
            ("s1.h5", "hpss"): OSError(errno.ENOSPC, "No space left on device"),
            ("s3.h5", "cfs"): NeedsHumanError("holds other bytes than the version being copied"),
        },
    )
    engine = make_engine(ws.config(), start=START, prepare=refuse_first_registration("2026/s2.h5"))
    metrics = ServiceMetrics()
    per_pass: list[dict[str, float]] = []
    with gateway() as pushes:
        pusher = Pusher("9.3.1", metrics.registry, {"PUSHGATEWAY_URL": pushes[0][1]})
        on_pass = observe_and_push(metrics, pusher)
        before: dict[str, float] = {}
        for n in range(len(EXPECTED_PER_PASS)):
            report = engine.reconcile()
            on_pass(report)
            (_, path, body) = pushes[-1]
            assert path == "/metrics/job/bl931/beamline/9.3.1"
            now = action_samples(body)
            per_pass.append(
                {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}
            )
            before = now
            if n == 4:
                waiting = {a.scan: a for a in report.plan.actions if not a.approved}
                assert {a.kind.value for a in waiting.values()} == {"delete"}
                assert (
                    len(waiting) == 3
                    and metrics.registry.get_sample_value("bl931_deletes_awaiting_approval") == 3
                )
                approve = [waiting["2026/s0.h5"].id, waiting["2026/s2.h5"].id]
                engine.store.approve(approve, "operator", engine.clock.now())
                rot_before_execute(monkeypatch, engine, ws.dtn / "2026/s2.h5")
            engine.clock.advance(seconds=60)
    assert per_pass == EXPECTED_PER_PASS
    # The registry serves what was pushed: every label of the two families, the counters the
    # service creates at start included (kind × submitted/succeeded/failed, at 0 if never seen).
    total = dict(before)
    assert total == {
        A("copy", "submitted"): 8,
        A("copy", "succeeded"): 6,
        A("copy", "failed"): 2,
        A("delete", "submitted"): 1,
        A("delete", "succeeded"): 1,
        A("delete", "failed"): 0,
        A("delete", "skipped"): 1,
        A("register", "submitted"): 0,
        A("register", "succeeded"): 3,
        A("register", "failed"): 1,
        A("update_catalog", "submitted"): 0,
        A("update_catalog", "succeeded"): 4,
        A("update_catalog", "failed"): 0,
        E("needs_human", "cfs"): 1,
        E("transient", "hpss"): 1,
        E("transient", "catalog"): 1,
    }
    for head, value in total.items():
        name, _, labels = head.partition("{")
        keyed = dict(pair.split("=") for pair in labels.rstrip("}").split(","))
        assert (
            metrics.registry.get_sample_value(name, {k: v.strip('"') for k, v in keyed.items()})
            == value
        ), head
