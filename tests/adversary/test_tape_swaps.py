"""Adversary: a tape job (a bundle, or a restore from tape) ran to completion, then the process
was SIGKILLed before it judged the job; before the next `--reconcile --once`, the endpoint the
job wrote to is unmounted (a bare mount point) or swapped (another filesystem holding the same
tree, carrying another endpoint's marker).

Promise (docs/safety.md, "Is it the right filesystem?", "Crashes and interruptions"): nothing is
written below a bare mount point or onto another filesystem, no copy is recorded at an endpoint
whose identity does not hold, no prune relies on one, and everything converges once the
filesystem is back. The crash is placed by `tape_inject/sitecustomize.py`; the rest is the CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.state import StateStore
from engine.storage.restore_target import marker_guard
from tests.adversary.tape_world import (
    TapeWorld,
    approve_all,
    audit,
    blocked,
    bundled_bytes,
    churn,
    make_tape_world,
    on_disk,
    passes,
    planned,
    run_ok,
    sql,
)
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "tape_inject"
S0 = "2026/s0.h5"
D0 = os.urandom(3000)


def crash_at(run_cli: RunCli, w: TapeWorld, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AT_TAPE", step)
        done = run_cli("--reconcile", "--once", config=w.config_path)
    assert done.returncode == 137, f"no tape job was cut at {step}: {done.stderr}"


def unmount(root: Path, how: str, foreign: Path) -> Path:
    """Take `root`'s filesystem away; leave a bare mount point or another filesystem holding a
    copy of the same tree (without its marker) that carries `foreign`'s marker. Returns where the real one went."""
    away = root.with_name(root.name + ".away")
    os.rename(root, away)
    if how == "bare mount point":
        root.mkdir()
    else:
        shutil.copytree(away, root)
        for own in root.glob(".bl931-*endpoint*"):  # its own marker (local or tape) stays behind
            shutil.rmtree(own) if own.is_dir() else own.unlink()
        shutil.copy2(foreign / MARKER_NAME, root / MARKER_NAME)
    return away


def census(root: Path) -> dict[str, bytes]:
    """Every file below `root` but the identity marker: relative path -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER_NAME
    }


def remount(root: Path, away: Path) -> None:
    shutil.rmtree(root)
    os.rename(away, root)


def evidence_scans(w: TapeWorld, endpoint: str) -> set[str]:
    return {s for (s,) in sql(w, "SELECT scan FROM evidence WHERE endpoint = ?", endpoint)}


def restore_cut_before_its_judgement(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> TapeWorld:
    """s0 pruned from cfs (on tape only), its restore to cfs approved, the recall job run, then
    the process killed before the job was judged (the members staged, nothing placed)."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    passes(run_cli, w)
    cfs = w.folder("cfs")
    assert on_disk(w, "cfs", S0) is None, "setup: the approved prune of cfs ran"
    assert D0 in bundled_bytes(w)[S0]
    run_ok(run_cli, w, "--restore", S0, "--to", "cfs")
    passes(run_cli, w)
    approve_all(run_cli, w)
    crash_at(run_cli, w, monkeypatch, "restore_ran")
    assert S0 not in evidence_scans(w, "cfs")
    assert list(cfs.glob(".bl931-staging/*/2026/*")), "setup: nothing was staged"
    return w


@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
def test_a_restore_judged_after_a_crash_places_nothing_on_a_swapped_target(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    w = restore_cut_before_its_judgement(run_cli, tmp_path, monkeypatch)
    cfs = w.folder("cfs")
    away = unmount(cfs, how, w.folder("dtn"))
    before = census(cfs)
    for _ in range(2):
        done = run_ok(run_cli, w, "--reconcile", "--once")
        assert done.returncode == 1, done.stderr  # cfs is unknown: a person must look
    assert census(cfs) == before, f"written onto cfs's {how}"
    assert S0 not in evidence_scans(w, "cfs"), "a restore recorded at cfs while it is not cfs"

    remount(cfs, away)
    churn(run_cli, w, 3)
    assert D0 in bundled_bytes(w)[S0] and on_disk(w, "dtn", S0) == D0
    assert not list(cfs.rglob(".bl931-staging/*/*")), "the recall's staging was left behind"


def test_a_restore_whose_staging_vanished_is_not_placed_and_the_pass_ends(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone cleaned `.bl931-staging` between the crash and the restart: judging the job
    finds a staged file gone. Nothing is placed, `--once` ends (it used to wait on the task for
    an hour: the judgement raised at each poll), and the recall runs again."""
    w = restore_cut_before_its_judgement(run_cli, tmp_path, monkeypatch)
    cfs = w.folder("cfs")
    (staged,) = cfs.glob(".bl931-staging/*/2026/*")
    staged.unlink()
    done = run_ok(run_cli, w, "--reconcile", "--once")
    assert done.returncode in (0, 1), done.stderr
    assert on_disk(w, "cfs", S0) is None
    churn(run_cli, w, 2)
    assert not sql(w, "SELECT scan FROM tape_restores"), "the recall never ran again"


@pytest.mark.parametrize("step", ["archive_ran", "archive_running"])
@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
def test_a_bundle_judged_after_a_crash_is_not_relied_on_while_hpss_is_swapped(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, step: str
) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0
    crash_at(run_cli, w, monkeypatch, step)
    hpss = w.folder("hpss")
    assert w.bundles(), "setup: the bundle job did not write its bundle"

    away = unmount(hpss, how, w.folder("dtn"))
    before = census(hpss)
    for _ in range(2):
        done = run_ok(run_cli, w, "--reconcile", "--once")
        assert done.returncode == 1, done.stderr
        approve_all(run_cli, w)
    assert census(hpss) == before, f"written onto hpss's {how}"
    assert on_disk(w, "cfs", S0) == D0, "cfs pruned relying on a bundle on an unproven hpss"

    remount(hpss, away)
    churn(run_cli, w, 3)
    assert D0 in bundled_bytes(w)[S0] and on_disk(w, "dtn", S0) == D0
    if step == "archive_ran":
        assert on_disk(w, "cfs", S0) is None, "the prune never ran once hpss was back"
    else:  # the job read as failed: bundled again after the retry back-off (wall-clock seconds)
        _, doc = audit(run_cli, w)
        reasons = {(b["kind"], b["reason_code"]) for b in blocked(doc, S0)}
        assert ("copy", "backing_off") in reasons or planned(doc, S0, "copy"), doc
        assert on_disk(w, "cfs", S0) == D0


@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
def test_a_recall_job_run_after_its_target_was_unmounted_creates_nothing_there(
    run_cli: RunCli, tmp_path: Path, how: str
) -> None:
    """A job the `sfapi` runner starts later, at NERSC, after cfs was unmounted: its first line
    (the marker guard) stops it before it makes its staging folder below the mount point."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w)
    cfs = w.folder("cfs")
    store = StateStore(w.state_path, readonly=True)
    try:
        guard = marker_guard(store, "cfs", cfs)
    finally:
        store.close()
    stage = cfs / ".bl931-staging" / "bl931-restore-x"
    job = guard + f"mkdir -p -- '{stage}' && echo made\n"
    ran = subprocess.run(["bash", "-c", job], capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and stage.is_dir(), ran.stderr  # the real cfs: the job runs
    shutil.rmtree(stage.parent)

    unmount(cfs, how, w.folder("dtn"))
    before = census(cfs)
    ran = subprocess.run(["bash", "-c", job], capture_output=True, text=True, check=False)
    assert ran.returncode == 65 and "BL931 TARGET UNPROVEN" in ran.stdout, ran
    assert census(cfs) == before and not stage.parent.exists(), f"created on cfs's {how}"
