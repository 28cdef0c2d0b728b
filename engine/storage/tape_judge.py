"""Judging a finished archive job: does its bundle count as a verified copy of its scans?

Only when the job COMPLETED with exit 0, its in-job checksums of every member matched the
manifest's acquisition checksums, htar wrote the bundle with CRCs and verified them, its
`htar -tvf` listing matches the manifest, and every `hsi cput` member was re-read and matched.
A member whose bytes do not match at the source fails its scan for a person; the rest of the
bundle's scans are bundled again at once (a new part).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from engine.model import ErrorClass, Evidence, FileStat, Level
from engine.storage.base import ItemResult, listing_signature
from engine.storage.tape_script import failed_sums, listing, marked, parse_ls
from engine.store import tape as tape_store

if TYPE_CHECKING:
    from engine.storage.tape import TapeMover


def judge_archive(mover: TapeMover, row: tape_store.BundleRow, status: Any) -> list[ItemResult]:
    """Whether a finished archive job made a verified bundle; one result per scan (keyed by
    scan; the caller maps scans to actions)."""
    ep = mover.endpoint
    store = ep.need_store()
    now = ep.clock()
    manifest = row.manifest
    scans = sorted(manifest["scans"])
    members = manifest["members"]
    output = status.output or ""

    def fail(
        error: str, error_class: ErrorClass, only: Collection[str] | None = None
    ) -> list[ItemResult]:
        tape_store.update_bundle(
            store, ep.name, row.bundle, state="failed", error=error, finished_at=now
        )
        out = []
        for scan in scans:
            if only is None or scan in only:
                out.append(ItemResult(scan, False, error, error_class))
            else:
                out.append(
                    ItemResult(
                        scan, False, f"bundled again: {error}", ErrorClass.TRANSIENT, retry_now=True
                    )
                )
        return out

    rotted = failed_sums(output)
    if rotted:
        bad = {m["scan"] for m in members if m["path"] in rotted}
        return fail(
            f"{len(rotted)} file(s) at the source do not match the acquisition checksum "
            f"(e.g. {rotted[0]!r}); not archived",
            ErrorClass.NEEDS_HUMAN,
            bad,
        )
    if not status.ok:
        last = output.strip().splitlines()[-1:] or [""]
        return fail(
            f"tape job {row.job_id} ended {status.state} with exit {status.exit_code}: {last[0][-200:]}",
            ErrorClass.TRANSIENT,
        )
    if not marked(output, "SUMS OK"):
        return fail(
            f"tape job {row.job_id} did not check the members' checksums", ErrorClass.TRANSIENT
        )
    in_tar = {m["path"]: m["size"] for m in members if m["via"] == "htar"}
    size: int | None = None
    if in_tar:
        if marked(output, "HTAR") != ["0"]:
            return fail(f"tape job {row.job_id}: htar did not report success", ErrorClass.TRANSIENT)
        listed = listing(output)
        if listed != in_tar:
            return fail(
                f"bundle {row.bundle}: htar -tvf does not match the manifest", ErrorClass.TRANSIENT
            )
        sizes = parse_ls(" ".join(marked(output, "SIZE")))
        size = sizes.get(row.bundle)
        if size is None:
            return fail(
                f"bundle {row.bundle}: its size on HPSS was not reported", ErrorClass.TRANSIENT
            )
    cput_ok = {line.split(" ", 1)[1] for line in marked(output, "CPUT OK") if " " in line}
    for m in members:
        if m["via"] == "cput" and m["hpss_path"] not in cput_ok:
            return fail(f"{m['hpss_path']}: hsi cput not verified", ErrorClass.TRANSIENT)
    tape_store.update_bundle(
        store, ep.name, row.bundle, state="verified", archive_size=size, finished_at=now
    )
    results, recorded = [], []
    for scan in scans:
        own = [m for m in members if m["scan"] == scan]
        kept_as = manifest["kept_as"][scan]
        detail = {
            "bundle": row.bundle,
            "job_id": row.job_id,
            "verified_at": now.isoformat(),
            "crc": "htar -Hcrc -Hverify=all" if any(m["via"] == "htar" for m in own) else None,
            "cput": [m["hpss_path"] for m in own if m["via"] == "cput"],
            "files": own,
        }
        recorded.append((kept_as, manifest["scans"][scan], detail))
        files = [FileStat(m["listed_as"], m["size"], m["mtime"]) for m in own]
        evidence = Evidence(
            Level.CHECKSUM,
            manifest["algorithm"],
            manifest["scans"][scan],
            row.job_id,
            now,
            listing_signature(files),
            how="htar" if detail["crc"] else "cput",
        )
        results.append(ItemResult(scan, True, evidence=evidence))
    tape_store.add_members(store, ep.name, row.bundle, recorded)
    return results
