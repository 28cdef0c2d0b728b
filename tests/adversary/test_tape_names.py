"""Adversary: scan names that the generated bash job script, `md5sum -c` and htar/ustar find
awkward, through the real CLI on the local runner.

Promises (docs/hpss.md): a file that rotted on CFS is never archived as verified: *its scan*
needs attention, the others are bundled again without it; names htar cannot store (ustar prefix
over 154 or name over 99 bytes) go through `hsi cput` with verification, never silently
dropped; no path reaches the shell unquoted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.adversary.tape_world import (
    TapeWorld,
    approve_all,
    audit,
    bundled_bytes,
    make_tape_world,
    on_disk,
    passes,
    restore,
    sql,
)
from tests.conftest import RunCli


def rot_on_cfs(w: TapeWorld, rel: str) -> None:
    """Flip a byte of the CFS copy, keeping its size and mtime (bit rot the listing misses)."""
    p = w.folder("cfs") / rel
    st = p.stat()
    raw = bytearray(p.read_bytes())
    raw[0] ^= 0x01
    p.write_bytes(bytes(raw))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def rotted_world(tmp_path: Path, run_cli: RunCli, bad: str) -> TapeWorld:
    w = make_tape_world(tmp_path, cfs_retention=False)
    w.write("2026/good.h5", b"a good scan")
    w.write(bad, b"a scan that will rot on CFS")
    passes(run_cli, w)  # copied to CFS
    assert on_disk(w, "cfs", bad) is not None
    rot_on_cfs(w, bad)
    passes(run_cli, w, 3)
    return w


def test_rotted_scan_is_isolated_and_the_good_one_archived(tmp_path: Path, run_cli: RunCli) -> None:
    w = rotted_world(tmp_path, run_cli, "2026/bad.h5")
    held = bundled_bytes(w)
    assert held.get("2026/good.h5") == [b"a good scan"] or b"a good scan" in held["2026/good.h5"]
    assert "2026/bad.h5" not in held or all(
        b == b"a scan that will rot on CFS" for b in held["2026/bad.h5"]
    )


def test_rotted_scan_with_a_backslash_in_its_name_is_isolated(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = rotted_world(tmp_path, run_cli, "2026/b\\ad.h5")
    assert b"a good scan" in bundled_bytes(w).get("2026/good.h5", [])


def test_heredoc_delimiter_in_a_scan_name_does_not_crash_or_inject(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_tape_world(tmp_path, cfs_retention=False)
    w.write("2026/good.h5", b"a good scan")
    w.write("2026/BL931_EOF", b"named like the script's heredoc delimiter")
    passes(run_cli, w, 3)
    rc, doc = audit(run_cli, w)
    assert not list(tmp_path.rglob("PWNED"))
    # the good scan must not be held hostage by its neighbour's name
    assert b"a good scan" in bundled_bytes(w).get("2026/good.h5", []), (rc, doc.get("blocked"))


@pytest.mark.parametrize(
    "name",
    [
        "2026/$(touch PWNED).h5",
        "2026/`touch PWNED`.h5",
        "2026/a'b\"c; touch PWNED #.h5",
        "2026/-Hverify=all",
    ],
)
def test_shell_metacharacters_reach_no_shell(tmp_path: Path, run_cli: RunCli, name: str) -> None:
    w = make_tape_world(tmp_path)
    data = b"bytes of a scan with an evil name"
    w.write(name, data)
    passes(run_cli, w, 2)
    assert not list(tmp_path.rglob("PWNED")), "a scan name ran as a shell command"
    assert data in bundled_bytes(w).get(name, [])
    approve_all(run_cli, w)
    passes(run_cli, w)
    assert on_disk(w, "cfs", name) is None, "setup: the approved prune ran"
    restore(run_cli, w, name, "cfs")
    assert on_disk(w, "cfs", name) == data
    assert not list(tmp_path.rglob("PWNED")), "a scan name ran as a shell command"


def test_names_of_99_100_154_155_bytes_are_archived_and_restored(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """99-byte name: in the tar; 100-byte name and a 155-byte prefix: through `hsi cput`."""
    names = {
        "2026/" + "a" * 99: b"name of 99 bytes",
        "2026/" + "b" * 100: b"name of 100 bytes",
        "2026/" + "c" * 149 + "/x.h5": b"prefix of 154 bytes",
        "2026/" + "d" * 150 + "/x.h5": b"prefix of 155 bytes",
    }
    w = make_tape_world(tmp_path, scan_unit="file", depth=1)
    for rel, data in names.items():
        w.write(rel, data)
    passes(run_cli, w, 2)
    held = bundled_bytes(w)
    for rel, data in names.items():
        assert data in held.get(rel, []), f"{len(rel)}-byte path {rel[:12]}… not on tape"
    approve_all(run_cli, w)
    passes(run_cli, w)
    for rel in names:
        assert on_disk(w, "cfs", rel) is None, "setup: the approved prune ran"
    for rel, data in names.items():
        restore(run_cli, w, rel, "cfs")
        assert on_disk(w, "cfs", rel) == data, rel[:20]


def test_names_differing_only_in_case_or_a_trailing_space(tmp_path: Path, run_cli: RunCli) -> None:
    names = {
        "2026/scan.h5": b"lower",
        "2026/SCAN.h5": b"upper",
        "2026/scan.h5 ": b"trailing space",
    }
    w = make_tape_world(tmp_path)
    for rel, data in names.items():
        w.write(rel, data)
    passes(run_cli, w, 2)
    held = bundled_bytes(w)
    for rel, data in names.items():
        assert held.get(rel) == [data], rel
    approve_all(run_cli, w)
    passes(run_cli, w)
    for rel, data in names.items():
        if on_disk(w, "cfs", rel) is None:
            restore(run_cli, w, rel, "cfs")
            assert on_disk(w, "cfs", rel) == data, repr(rel)


def test_empty_scan_is_archived_and_restorable(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_tape_world(tmp_path)
    w.write("2026/full.h5", b"not empty")
    w.write("2026/empty.h5", b"")
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    passes(run_cli, w)
    if on_disk(w, "cfs", "2026/empty.h5") is None:
        assert b"" in bundled_bytes(w).get("2026/empty.h5", []), "empty scan pruned, not on tape"
        restore(run_cli, w, "2026/empty.h5", "cfs")
        assert on_disk(w, "cfs", "2026/empty.h5") == b""
    assert sql(w, "SELECT count(*) FROM tape_bundles WHERE state = 'verified'")[0][0] >= 1


def test_directory_scan_round_trip(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_tape_world(tmp_path, scan_unit="directory", depth=2)
    files = {"2026/d0/a.h5": b"first file", "2026/d0/sub/b.h5": b"second file"}
    for rel, data in files.items():
        w.write(rel, data)
    passes(run_cli, w, 2)
    held = bundled_bytes(w)
    for rel, data in files.items():
        assert data in held.get(rel, []), rel
    approve_all(run_cli, w)
    passes(run_cli, w)
    assert on_disk(w, "cfs", "2026/d0/a.h5") is None, "setup: the approved prune ran"
    restore(run_cli, w, "2026/d0", "cfs")
    for rel, data in files.items():
        assert on_disk(w, "cfs", rel) == data, rel
