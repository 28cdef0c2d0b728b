"""Adversary: `bl931tui --notify PATH` with bad and odd paths, no store, a busy store, bursts.

Promises (docs/watcher.md, docs/audit.md): a path that is no scan of the inventory endpoint
(outside it, `..`, excluded, nothing there) exits 64 and names the path; a hint not recorded
exits 1 and says so (no store yet, the store busy longer than `--wait`); while another process
owns the store, notify writes nothing itself; with no owner it takes the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adversary.export_world import hint_rows, make_world, notify, passes
from tests.conftest import RunCli

SCAN = "2026/s0.h5"


@pytest.fixture
def world(tmp_path: Path, run_cli: RunCli):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path / "w", copies=(("dtn", "cfs"),))
    w.write(SCAN, b"scan zero")
    passes(run_cli, w)
    return w


def test_notify_before_any_store_exists_records_nothing(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_world(tmp_path / "w")
    w.write(SCAN, b"scan zero")
    done = notify(run_cli, w, SCAN, "--export-control")
    assert done.returncode == 1, done.stderr
    assert "NOT recorded" in done.stderr
    assert not w.state_path.exists()


@pytest.mark.parametrize(
    "path_of",
    [
        lambda w: "/etc/passwd",
        lambda w: "../cfs/2026/s0.h5",
        lambda w: str(w.folder("dtn")) + "/../cfs/2026/s0.h5",
        lambda w: "2026/nothing_here.h5",
        lambda w: "2026/S0.H5",  # another case: no such file on a case-sensitive disk
        lambda w: "",
    ],
    ids=["outside", "dotdot-relative", "dotdot-absolute", "missing", "case", "empty"],
)
def test_bad_path_exits_64_naming_it(world, run_cli: RunCli, path_of) -> None:  # type: ignore[no-untyped-def]
    path = path_of(world)
    before = hint_rows(world)
    done = notify(run_cli, world, path)
    assert done.returncode == 64, (done.returncode, done.stderr)
    if path:
        assert path in done.stderr, done.stderr
    assert hint_rows(world) == before


def test_symlinked_file_pointing_out_of_the_inventory_is_refused(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """dtn/2026/evil.h5 → a file outside dtn: the walk never follows symlinks, so this is no
    scan; the notify must say so (64) and record nothing."""
    outside = world.root / "outside.h5"
    outside.write_bytes(b"not the beamline's")
    os.symlink(outside, world.folder("dtn") / "2026" / "evil.h5")
    done = notify(run_cli, world, "2026/evil.h5", "--export-control")
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert "2026/evil.h5" in done.stderr
    assert [r for r in hint_rows(world) if r[0] == "2026/evil.h5"] == []


def test_symlinked_folder_pointing_out_is_refused(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """dtn/2027 → a folder outside dtn: a file below it is no scan of the inventory."""
    outside = world.root / "elsewhere"
    outside.mkdir()
    (outside / "x.h5").write_bytes(b"x")
    os.symlink(outside, world.folder("dtn") / "2027")
    done = notify(run_cli, world, str(world.folder("dtn") / "2027" / "x.h5"))
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert "2027/x.h5" in done.stderr


def test_symlink_pointing_inside_the_inventory_is_no_scan_either(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """dtn/2026/alias.h5 → dtn/2026/s0.h5: the walk never follows a link, so the alias is no
    scan even though its target is one; nothing is recorded for it."""
    os.symlink(world.folder("dtn") / SCAN, world.folder("dtn") / "2026" / "alias.h5")
    done = notify(run_cli, world, "2026/alias.h5", "--export-control")
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert "2026/alias.h5" in done.stderr and "symlink" in done.stderr
    assert [r for r in hint_rows(world) if r[0] == "2026/alias.h5"] == []


def test_trailing_slash_and_dot_segments_name_the_same_scan(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    done = notify(run_cli, world, "./2026//s0.h5", "--export-control")
    assert done.returncode == 0, done.stderr
    assert hint_rows(world) == [(SCAN, 1, "direct")]


def test_non_utf8_file_name_gives_a_clear_answer(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """A file whose name is not UTF-8 (the walk reports it as a problem): the notify must not
    crash with a traceback; 64 (no scan) or a recorded hint are both acceptable answers."""
    name = b"2026/bad\xff.h5"
    with open(os.path.join(os.fsencode(world.folder("dtn")), name), "wb") as f:
        f.write(b"bad name")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bl931tui",
            "--config",
            str(world.config_path),
            "--notify",
            os.fsdecode(name),
            "--export-control",
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert done.returncode in (0, 64), (done.returncode, err)
    if done.returncode == 64:
        assert "2026/bad\\xff.h5" in err, err  # named, its byte escaped


def test_notify_while_another_process_holds_the_lock_writes_nothing(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """A `--once` pass holds the owner lock (simulated by a child process taking the same
    OwnerLock); `--notify --wait 0` must exit 1, say NOT recorded, and write nothing."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from engine.lock import OwnerLock\n"
            "with OwnerLock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()\n",
            str(world.state_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = hint_rows(world)
        done = notify(run_cli, world, SCAN, "--export-control", "--wait", "0")
        assert done.returncode == 1, (done.returncode, done.stderr)
        assert "NOT recorded" in done.stderr
        assert hint_rows(world) == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
    done = notify(run_cli, world, SCAN, "--export-control", "--wait", "0")
    assert done.returncode == 0, done.stderr
    assert hint_rows(world) == [(SCAN, 1, "direct")]


def test_burst_of_concurrent_notifies_all_recorded_and_flag_sticks(world, run_cli: RunCli) -> None:  # type: ignore[no-untyped-def]
    """Twelve notifies at once with no service: each takes the lock in turn; all are recorded,
    and the one flagged notify of s0 among plain ones leaves s0 flagged."""
    scans = [f"2026/b{i:02d}.h5" for i in range(8)]
    for i, s in enumerate(scans):
        world.write(s, f"burst {i}".encode())
    argv = [sys.executable, "-m", "bl931tui", "--config", str(world.config_path)]
    calls = [[*argv, "--notify", s, "--wait", "120"] for s in scans]
    calls += [[*argv, "--notify", SCAN, "--wait", "120"] for _ in range(3)]
    calls.insert(5, [*argv, "--notify", SCAN, "--export-control", "--wait", "120"])
    procs = [
        subprocess.Popen(
            c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for c in calls
    ]
    results = [(p.wait(240), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert all(rc == 0 for rc, _ in results), results
    rows = dict((r[0], r[1]) for r in hint_rows(world))
    assert set(rows) == {*scans, SCAN}
    assert rows[SCAN] == 1
    assert all(rows[s] == 0 for s in scans)
