"""The service as systemd runs it: one owner, signals, reload, metrics, logs, receipts."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from engine.catalog.dataset import dataset_pid
from engine.identity import MARKER_NAME
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import RunCli
from tests.service.helpers import ServiceProcess, metrics_port, sample, wait_for


@pytest.fixture
def services(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start services; every one still running at the end of the test is killed."""
    started: list[ServiceProcess] = []

    def start(ws: LocalWorkspace, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(
            ws.config_path, *args, log_path=tmp_path / f"service{len(started)}.log", env=env
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def test_a_second_reconciler_is_refused_naming_the_holder(
    services, run_cli: RunCli, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan("2026/s0.h5", b"x" * 100)
    first = services(ws, "--interval", "3600")
    first.wait_log("pass done in")
    for args in (("--reconcile", "--once"), ("--reconcile", "--interval", "1")):
        second = run_cli(*args, config=ws.config_path, timeout=30)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert "another bl931 reconciler owns" in second.stderr
    assert first.proc.poll() is None, "the first owner was disturbed"
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    # The lock dies with its holder: the next owner starts at once.
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_mid_copy_finishes_the_copy_and_exits_0(
    services, run_cli: RunCli, tmp_path: Path, signum: int
) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    block = os.urandom(1 << 20)
    for i in range(4):
        ws.write_scan(f"2026/big{i}.h5", block * 16 + bytes([i]))
    service = services(ws, "--interval", "3600")
    wait_for(
        lambda: (ws.cfs / "2026").is_dir() and any((ws.cfs / "2026").glob(".bl931-*")),
        what="a copy in progress",
    )
    service.signal(signum)
    assert service.wait(45) == 0, service.log()
    log = service.log()
    assert f"{signal.Signals(signum).name}: finishing the current pass" in log
    assert "stopped" in log
    # Checkpointed, not abandoned: what was copied was verified and recorded before exit, so no
    # temporary file is left and nothing is submitted a second time.
    assert [p.name for p in ws.root.rglob(".bl931-*")] == [MARKER_NAME] * 3  # no temp file
    store = StateStore(ws.state_path, readonly=True)
    copies = [a for a in store.actions(["succeeded"]) if a.kind.value == "copy"]
    assert len(copies) == 4
    for _ in range(2):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    assert all(store.count_submissions(a.id) == 1 for a in copies)
    assert len([p for p in (ws.hpss / "2026").iterdir()]) == 4
    store.close()


def test_sighup_reloads_the_config_and_keeps_the_old_one_when_the_new_is_invalid(
    services, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan("2026/s0.h5", b"keep me until approved" * 50)
    service = services(ws, "--interval", "0.2")
    # Deletes wait for approval under the running config.
    service.wait_log(r"awaiting_approval=1", count=2)
    good = ws.config_path.read_text("utf-8")

    ws.config_path.write_text(
        good.replace("max_missing_fraction = 0.1", "max_missing_fraction = 7")
    )
    service.signal(signal.SIGHUP)
    log = service.wait_log("config reload failed; keeping the running config")
    assert "max_missing_fraction" in log
    before = service.passes()
    wait_for(lambda: service.passes() >= before + 2, what="passes after a failed reload")
    assert (ws.dtn / "2026/s0.h5").exists()

    ws.config_path.write_text(good.replace('required_for = ["delete"]', "required_for = []"))
    service.signal(signal.SIGHUP)
    service.wait_log("config reloaded from")
    wait_for(
        lambda: not (ws.dtn / "2026/s0.h5").exists() and not (ws.cfs / "2026/s0.h5").exists(),
        what="the deletes the new config no longer gates",
    )
    assert (ws.hpss / "2026/s0.h5").exists()
    service.signal(signal.SIGTERM)
    assert service.wait(30) == 0


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode("utf-8"))


def test_metrics_are_served_on_localhost(services, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    for i in range(3):
        ws.write_scan(f"2026/s{i}.h5", b"y" * (1000 + i))
    service = services(ws, "--interval", "0.2", "--metrics-port", "0")
    port = metrics_port(service)
    service.wait_log(r"awaiting_approval=3", count=2)

    def scraped_settled() -> str | None:
        text = _scrape(port)
        return text if sample(text, "bl931_deletes_awaiting_approval") == 3 else None

    text = wait_for(scraped_settled, what="3 deletes awaiting approval in the metrics")
    assert sample(text, "bl931_scans", state="awaiting_approval") == 3
    assert sample(text, "bl931_scans", state="in_sync") == 0
    assert sample(text, "bl931_replicas", endpoint="hpss", level="checksum") == 3
    assert sample(text, "bl931_replicas", endpoint="dtn", level="checksum") == 3
    assert sample(text, "bl931_bytes_pending", endpoint="cfs") == 0
    assert sample(text, "bl931_actions_total", kind="copy", outcome="submitted") == 6
    assert sample(text, "bl931_actions_total", kind="copy", outcome="succeeded") == 6
    assert sample(text, "bl931_actions_total", kind="register", outcome="succeeded") == 3
    assert sample(text, "bl931_endpoint_up", endpoint="cfs") == 1
    assert (sample(text, "bl931_last_successful_pass_timestamp_seconds") or 0) > 1.7e9
    assert (sample(text, "bl931_pass_duration_seconds_count") or 0) >= 2

    # An endpoint goes away: errors are counted by class and endpoint, and it shows as down.
    os.rename(ws.cfs, ws.root / "cfs-unmounted")

    def cfs_down() -> str | None:
        text = _scrape(port)
        # An unmounted root fails the endpoint's identity check: a person must look.
        errors = sample(text, "bl931_errors_total", error_class="needs_human", endpoint="cfs")
        return text if errors and sample(text, "bl931_endpoint_up", endpoint="cfs") == 0 else None

    text = wait_for(cfs_down, what="cfs errors in the metrics")
    assert (sample(text, "bl931_passes_total", result="error") or 0) >= 1
    service.signal(signal.SIGTERM)
    assert service.wait(30) == 0
    with pytest.raises(OSError):
        _scrape(port)


def test_receipt_names_the_catalog_pid(run_cli: RunCli, workspace: LocalWorkspace) -> None:
    ws = workspace
    scan = "2026/11/ALS-1/scan 0002.h5"
    ws.write_scan(scan, b"receipt" * 100)
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    assert run_cli("--approve-all", "--yes", config=ws.config_path).returncode == 0
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    pid = dataset_pid(scan, prefix="bl931", beamline="9.3.1")
    catalog = json.loads((ws.root / "state" / "catalog.json").read_text("utf-8"))
    assert pid in json.dumps(catalog)  # the catalog really registered the scan under this pid
    printed = run_cli("--receipt", scan, config=ws.config_path)
    assert printed.returncode == 0, printed.stderr
    assert f"Deleted {scan} from dtn" in printed.stdout
    assert f"catalog pid {pid}" in printed.stdout
    (receipt,) = json.loads(run_cli("--receipt", scan, "--json", config=ws.config_path).stdout)
    assert receipt["catalog_pid"] == pid


def test_sigterm_interrupts_a_single_pass_cleanly(run_cli: RunCli, tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    block = os.urandom(1 << 20)
    for i in range(6):
        ws.write_scan(f"2026/big{i}.h5", block * 24 + bytes([i]))
    once = ServiceProcess(ws.config_path, "--once", log_path=tmp_path / "once.log")
    try:
        wait_for(
            lambda: (ws.cfs / "2026").is_dir() and any((ws.cfs / "2026").glob(".bl931-*")),
            what="a copy in progress",
        )
        once.signal(signal.SIGTERM)
        assert once.wait(30) == 0, once.log()
        assert "interrupted: in-process copies stop before their next file" in once.log()
    finally:
        once.close()
    for _ in range(3):  # the next passes finish the job from what was recorded
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    assert [p.name for p in ws.root.rglob(".bl931-*")] == [MARKER_NAME] * 3  # no temp file
    assert sorted(p.name for p in (ws.hpss / "2026").iterdir()) == [f"big{i}.h5" for i in range(6)]
    store = StateStore(ws.state_path, readonly=True)
    assert store.integrity_check() == "ok"
    store.close()
