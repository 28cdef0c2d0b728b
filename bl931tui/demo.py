"""`bl931tui --demo`: the whole lifecycle on local endpoints, in about a minute.

A workspace with dtn/cfs/hpss folders and a local catalog is built; a detector thread writes
synthetic scans (some with spaces and non-ASCII names); the reconciler runs every two seconds
with retention shortened to seconds, so copies, catalog registration, approval-gated prunes and a
pruned DTN all happen while you watch. Headless, a stand-in operator approves the prunes and
every event is printed; with the TUI, you approve them yourself.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import humanize

from bl931tui.render import printable
from engine.backends import build_backends
from engine.file_modes import owned_store
from engine.lock import OwnerLock
from engine.logs import setup_logging
from engine.reconciler import Reconciler
from engine.service import ServiceLoop
from engine.state import ActionStatus, StateStore
from engine.workspace import LocalWorkspace, create_workspace, scan_path, synthetic_scan_bytes

log = logging.getLogger("bl931.demo")

DEMO_MARKER = ".bl931-demo-workspace"
SCANS = 10
SCAN_EVERY_SECONDS = 3.0
DTN_KEEP_SECONDS = 20
CFS_KEEP_SECONDS = 45


def prepare_workspace(root: Path) -> LocalWorkspace:
    """A fresh demo workspace; refuses to wipe a folder that is not one."""
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise SystemExit(
                f"bl931tui: {root} exists and is not a demo workspace; choose --workspace"
            )
        shutil.rmtree(root)
    workspace = create_workspace(
        root,
        dtn_keep_days=DTN_KEEP_SECONDS / 86400,
        cfs_keep_days=CFS_KEEP_SECONDS / 86400,
        quiet_seconds=1.5,
        interval_seconds=2,
        retry_base_seconds=2,
        hpss_kind="tape",  # scans bundled with htar (local shims stand in for HPSS)
    )
    (root / DEMO_MARKER).write_text("bl931 demo workspace: safe to delete\n", "utf-8")
    return workspace


class Detector(threading.Thread):
    """Writes synthetic scans into the dtn folder, one every few seconds."""

    def __init__(self, workspace: LocalWorkspace, count: int, every: float, seed: int = 931):
        super().__init__(name="demo-detector", daemon=True)
        self.workspace = workspace
        self.count = count
        self.every = every
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.written: list[str] = []

    def run(self) -> None:
        for n in range(1, self.count + 1):
            if self.stop_event.is_set():
                return
            relpath = scan_path(n, datetime.now(UTC))
            size = self.rng.choice((48_000, 200_000, 750_000, 1_500_000))
            self.workspace.write_scan(relpath, synthetic_scan_bytes(self.rng, size))
            self.written.append(relpath)
            log.info("detector wrote %s (%s)", printable(relpath), humanize.naturalsize(size))
            self.stop_event.wait(self.every)


class EventPrinter(threading.Thread):
    """Prints the audit log as it grows, and plays the operator: approves gated prunes."""

    def __init__(self, store: StateStore, *, approve: bool) -> None:
        super().__init__(name="demo-printer", daemon=True)
        self.store = store
        self.approve = approve
        self.stop_event = threading.Event()
        self.seq = 0

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.flush()
            if self.approve:
                self._approve_pending()

    def flush(self) -> None:
        for event in self.store.events(after_seq=self.seq, limit=1000):
            self.seq = event["seq"]
            at = datetime.fromisoformat(event["at"]).astimezone().strftime("%H:%M:%S")
            scan = printable(event["scan"]) if event["scan"] else ""
            print(f"{at}  {event['kind']:<22} {scan}  {event['message']}", flush=True)

    def _approve_pending(self) -> None:
        waiting = [
            a
            for a in self.store.actions([ActionStatus.PLANNED])
            if a.requires_approval and a.id not in self.store.decisions()
        ]
        if not waiting:
            return
        total = sum(a.bytes for a in waiting)
        print(
            f"          operator: {len(waiting)} prune(s) await approval "
            f"({humanize.naturalsize(total)}); approving as demo-operator",
            flush=True,
        )
        self.store.approve(
            [a.id for a in waiting],
            "demo-operator",
            datetime.now(UTC),
            note="approved by the headless demo",
        )


def run_demo(args: argparse.Namespace) -> int:
    root = (args.workspace or Path("bl931-demo")).resolve()
    workspace = prepare_workspace(root)
    config = workspace.config()
    print(f"bl931 demo workspace: {root}")
    if args.headless:
        # One line per event on stdout; the engine's log lines go to a file, not in between.
        log_path = root / "demo.log"
        setup_logging(
            level=logging.DEBUG if args.verbose else logging.INFO,
            fmt=args.log_format or "text",
            path=log_path,
        )
        print(f"  engine log: {log_path}")
    print(
        f"  dtn retention {DTN_KEEP_SECONDS}s, cfs retention {CFS_KEEP_SECONDS}s, "
        f"deletes need approval; {SCANS} scans, one every {SCAN_EVERY_SECONDS:g}s"
    )
    with OwnerLock(config.state.path):
        store = owned_store(config)
        backends = build_backends(config)
        reconciler = Reconciler(config, store, backends)
        loop = ServiceLoop(reconciler, interval_seconds=config.service.interval_seconds)
        detector = Detector(workspace, SCANS, SCAN_EVERY_SECONDS)
        try:
            detector.start()
            if not args.headless:
                from bl931tui.launch import run_tui_with_engine

                code = run_tui_with_engine(config, args, loop)
                if code is not None:
                    return code
                print("bl931tui: the TUI is not available; running headless", file=sys.stderr)
            return _run_headless(store, loop, detector, args.duration, workspace)
        finally:
            detector.stop_event.set()
            loop.stop()
            if not loop.wait_stopped(timeout=60):  # a pass still running in a worker
                log.warning("the engine's last pass did not finish; closing anyway")
            backends.close()
            store.close()


def _run_headless(
    store: StateStore,
    loop: ServiceLoop,
    detector: Detector,
    duration: float,
    workspace: LocalWorkspace,
) -> int:
    printer = EventPrinter(store, approve=True)
    engine = threading.Thread(target=loop.run, name="demo-engine", daemon=True)
    printer.start()
    engine.start()
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline:
            time.sleep(0.25)
    except KeyboardInterrupt:
        print("interrupted")
    loop.stop()
    engine.join(timeout=30)
    printer.stop_event.set()
    printer.join(timeout=5)
    printer.flush()
    _print_summary(store, detector, workspace)
    return 0


def _print_summary(store: StateStore, detector: Detector, workspace: LocalWorkspace) -> None:
    replicas = store.load_replicas()
    deleted = store.deleted()
    print()
    print("Where every scan is now (✓ verified copy, – pruned by bl931, · none):")
    for relpath in detector.written:
        marks = []
        for name in ("dtn", "cfs", "hpss"):
            if relpath in deleted.get(name, set()):
                marks.append(f"– {name}")
            elif relpath in replicas.get(name, {}):
                marks.append(f"✓ {name}")
            else:
                marks.append(f"· {name}")
        print(f"  {'  '.join(marks)}  {printable(relpath)}")
    pruned = len(deleted.get("dtn", ()))
    print(
        f"\n{len(detector.written)} scans written, {pruned} pruned from dtn, "
        f"{len(deleted.get('cfs', ()))} pruned from cfs; receipts: "
        f"bl931tui --config {workspace.config_path} --receipt SCAN"
    )
