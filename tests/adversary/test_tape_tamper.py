"""Adversary: the bundle on HPSS is tampered with after it was verified, while a CFS prune that
relies on it waits for (or already has) the operator's approval.

Promises (docs/hpss.md "Before a CFS prune", docs/safety.md "Known gaps"): the last look re-checks
the bundle's presence at its verified size (`hsi ls -l`) and its index listing (`htar -tvf`); a
bundle failing either is marked broken and its scans bundled again before any prune relies on
them; same-size rot is not seen by the last look but a restore's checksum check never hands
back other bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.adversary.tape_world import (
    TapeWorld,
    acknowledge_alerts,
    approve_all,
    bundled_bytes,
    churn,
    make_tape_world,
    on_disk,
    passes,
    restore,
    sql,
)
from tests.conftest import RunCli

S0, S1 = "2026/s0.h5", "2026/s1.h5"
D0, D1 = b"scan zero: the acquisition's bytes", b"scan one: other acquisition bytes"


def bundled_and_approved(tmp_path: Path, run_cli: RunCli) -> tuple[TapeWorld, Path]:
    """Two scans copied to CFS and bundled; the CFS prunes approved but not yet run."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    w.write(S1, D1)
    passes(run_cli, w, 2)
    (bundle,) = w.bundles()
    assert sql(w, "SELECT state FROM tape_bundles") == [("verified",)]
    approve_all(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0
    return w, bundle


def bundle_states(w: TapeWorld) -> dict[str, str]:
    return {b: s for b, s in sql(w, "SELECT bundle, state FROM tape_bundles")}


def assert_rebundled_then_pruned(run_cli: RunCli, w: TapeWorld, broken: Path) -> None:
    passes(run_cli, w)
    acknowledge_alerts(run_cli, w, "missing_fraction")  # the operator accepts the loss
    churn(run_cli, w, 3)
    parts = [b for b in w.bundles() if b != broken]
    assert parts, "the broken bundle's scans were never bundled again"
    held = bundled_bytes(w)
    for rel, data in ((S0, D0), (S1, D1)):
        if on_disk(w, "cfs", rel) != data:
            # pruned: only once an intact, other bundle holds the bytes
            in_new = []
            for tar in parts:
                with tarfile.open(tar) as t:
                    member = t.extractfile(rel)
                    in_new.append(member is not None and member.read() == data)
            assert any(in_new), f"{rel} pruned from CFS with no intact new bundle holding it"
    assert held  # the census read something


def test_deleted_bundle_blocks_the_prune_and_rebundles(tmp_path: Path, run_cli: RunCli) -> None:
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    bundle.unlink()
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert bundle_states(w)["/" + bundle.relative_to(w.folder("hpss")).as_posix()] == "broken"
    assert_rebundled_then_pruned(run_cli, w, bundle)


def test_deleted_index_blocks_the_prune(tmp_path: Path, run_cli: RunCli) -> None:
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    bundle.with_name(bundle.name + ".idx").unlink()
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert "broken" in bundle_states(w).values()
    assert_rebundled_then_pruned(run_cli, w, bundle)


def test_bundle_truncated_by_one_byte_blocks_the_prune(tmp_path: Path, run_cli: RunCli) -> None:
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    data = bundle.read_bytes()
    bundle.write_bytes(data[:-1])
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert "broken" in bundle_states(w).values()
    assert_rebundled_then_pruned(run_cli, w, bundle)


def other_bundle(names_and_bytes: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in names_and_bytes:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_bundle_swapped_for_a_valid_bundle_of_other_size_blocks_the_prune(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Another valid tar (index untouched, so `htar -tvf` still lists the manifest) at the same
    name, of a different size: `hsi ls -l` must catch it."""
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    fake = other_bundle([(S0, b"x" * 20_000), (S1, b"y" * 20_000)])
    assert len(fake) != bundle.stat().st_size
    bundle.write_bytes(fake)
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert_rebundled_then_pruned(run_cli, w, bundle)


def test_same_size_rot_is_caught_by_the_restore_never_returned(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """The documented gap: same-size rot passes the last look (the prune runs), but a restore
    must never put other bytes in place of the acquisition's."""
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) is None, "setup: the approved prune ran"
    raw = bytearray(bundle.read_bytes())
    at = bytes(raw).index(D0)
    raw[at] ^= 0xFF  # one member byte flipped in place: same size, index untouched
    bundle.write_bytes(bytes(raw))
    done = restore(run_cli, w, S0, "cfs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert on_disk(w, "cfs", S0) is None, (
        "a restore put other bytes than the acquisition's in place"
    )
    rotten = [p for p in w.folder("cfs").rglob("*") if p.is_file() and p.read_bytes()[1:] == D0[1:]]
    assert rotten == [], f"rotten bytes left on CFS: {rotten}"


def test_deleted_manifest_file_does_not_stop_a_restore(tmp_path: Path, run_cli: RunCli) -> None:
    """The manifest next to the bundle is a copy; the state store's manifest is what counts."""
    w, bundle = bundled_and_approved(tmp_path, run_cli)
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) is None, "setup: the approved prune ran"
    bundle.with_name(bundle.name + ".manifest.json").unlink()
    done = restore(run_cli, w, S0, "cfs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert on_disk(w, "cfs", S0) == D0
