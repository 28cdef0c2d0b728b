"""The local tape runner's promises: only COMPLETED + exit 0 is ok, jobs are found again by
name after a restart, and a job script of any size runs (a 10k-member bundle's script is larger
than one command-line argument may be)."""

from __future__ import annotations

from pathlib import Path

from engine.storage.tape_local import LocalTapeRunner
from engine.storage.tape_runner import JobState


def test_a_large_script_runs_and_is_found_again_after_a_restart(tmp_path: Path) -> None:
    hpss = tmp_path / "hpss"
    hpss.mkdir()
    runner = LocalTapeRunner(hpss, tmp_path / "jobs")
    script = "# " + "x" * 300_000 + "\necho done\n"  # over MAX_ARG_STRLEN (128 KiB)
    job = runner.submit("bl931-archive-a", script)
    status = runner.status(job)
    assert status.ok and "done" in status.output
    again = LocalTapeRunner(hpss, tmp_path / "jobs")  # a new process
    assert again.find("bl931-archive-a") == job
    assert again.find("bl931-archive-b") is None
    assert again.status(job).ok


def test_a_nonzero_exit_is_not_ok_and_job_ids_keep_counting(tmp_path: Path) -> None:
    hpss = tmp_path / "hpss"
    hpss.mkdir()
    runner = LocalTapeRunner(hpss, tmp_path / "jobs")
    first = runner.submit("one", "exit 3\n")
    status = runner.status(first)
    assert status.state is JobState.FAILED and status.exit_code == 3 and not status.ok
    second = LocalTapeRunner(hpss, tmp_path / "jobs").submit("two", "true\n")
    assert (first, second) == ("local-1", "local-2")


def test_the_shims_run_on_the_stand_in_directory(tmp_path: Path) -> None:
    hpss = tmp_path / "hpss"
    hpss.mkdir()
    runner = LocalTapeRunner(hpss, tmp_path / "jobs")
    assert runner.command(["hsi", "-q", "mkdir -p /a"]).returncode == 0
    assert (hpss / "a").is_dir()
    listed = runner.command(["hsi", "-q", "ls -l /nope"])
    assert listed.returncode != 0 and "No such file" in listed.stderr
