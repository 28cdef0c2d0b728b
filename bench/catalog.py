"""Local catalog benchmark: memory and time of the embedded catalog at 100,000 documents.

A catalog file of `--docs` SciCat-shaped documents (one-file scans located at CFS and HPSS,
the shape a settled beamline has) is written once. Then each measure runs in its own child
process, so that one measure's memory never inflates the next:

- `baseline`: the interpreter with the engine imported, nothing read;
- `parsed`: the whole-file model, as a yardstick: `json.load` of the file, kept (what a catalog
  holding every document holds), then `json.dumps` of it (what rewriting it costs);
- `observe`: a `LocalCatalog` bound to the file, one `observe()` of every scan (a pass);
- `write`: then 1,000 new registrations and 1,000 location updates, and one `flush()`
  (the compare-and-swap write a pass ends with), and a second `observe()`.

Each child reports its RSS (VmRSS) and its peak RSS (VmHWM); what the catalog holds is the RSS
above the baseline child's. Ratios are against the baseline and the file's size, measured in the
same run.

Run: `.venv/bin/python bench/catalog.py` (about two minutes; `--docs`, `--dir`). The last line is
`catalog_docs=… file_mb=… documents_mb=… observe_rss_mb=… held_to_documents_ratio=…
write_peak_mb=… peak_to_documents_ratio=… held_mb_per_1k_docs=… observe_s=… flush_s=…
flush_to_rewrite_ratio=…`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.catalog.base import Location
from engine.catalog.dataset import local_document, to_iso
from engine.catalog.local import LocalCatalog
from engine.config import CatalogConfig
from engine.model import Level, Scan, ScanFile, scan_digest

ACQUIRED = datetime(2026, 11, 1, tzinfo=UTC)
CREATED = datetime(2026, 11, 2, tzinfo=UTC)
CONFIG = CatalogConfig(
    kind="local",
    source_endpoint="cfs",
    path_template="{proposal}/{user}/{scan}",
    access_groups=("als-9.3.1-staff",),
    data_format="NeXus/HDF5",
    principal_investigator="Jane PI",
)


def scan(i: int) -> Scan:
    scan_id = f"2026/p{i % 97:03d}/u{i % 13:02d}/scan_{i:06d}.h5"
    files = (ScanFile(scan_id, 1_000_000 + i, ACQUIRED.timestamp(), f"{i:032x}"),)
    return Scan(scan_id, files, ACQUIRED, "md5", scan_digest("md5", files), is_directory=False)


def locations(s: Scan, *, tape: bool = True) -> list[Location]:
    out = [
        Location(
            "cfs",
            f"/global/cfs/cdirs/als/raw/{s.id}",
            Level.CHECKSUM,
            delete_after=s.acquired_at + timedelta(days=730),
        )
    ]
    if tape:
        out.append(Location("hpss", f"/home/a/alsdev/raw/{s.id}", Level.CHECKSUM, tape=True))
    return out


def build(path: Path, docs: int) -> str:
    """Write a catalog of `docs` documents; returns its identity."""
    catalog = LocalCatalog(path, CONFIG, clock=lambda: CREATED)
    catalog_id, _ = catalog.initialise(now=CREATED)
    table = {}
    for i in range(docs):
        s = scan(i)
        doc = local_document(s, locations(s), CONFIG, beamline="9.3.1", template=None)
        doc["createdAt"] = doc["updatedAt"] = to_iso(CREATED)
        table[str(i + 1)] = doc
    identity = {"id": catalog_id, "generation": 2, "beamline": "9.3.1"}
    path.write_text(json.dumps({"datasets": table, "bl931_catalog": {"1": identity}}))
    return catalog_id


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(measure: str, path: Path, catalog_id: str, docs: int) -> None:
    out: dict[str, float] = {}
    if measure == "parsed":
        started = time.perf_counter()
        with open(path, "rb") as handle:
            everything = json.load(handle)
        out["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        json.dumps(everything, ensure_ascii=False, sort_keys=True)
        out["dump_s"] = time.perf_counter() - started
        out["rss_mb"] = status_mb("VmRSS")
        out["hwm_mb"] = status_mb("VmHWM")
        print(json.dumps(out))
        return
    if measure != "baseline":
        catalog = LocalCatalog(path, CONFIG, clock=lambda: CREATED)
        catalog.expect(catalog_id)
        wanted = {scan(i).id for i in range(docs)}
        started = time.perf_counter()
        view = catalog.observe(wanted)
        out["observe_s"] = time.perf_counter() - started
        assert len(view.locations) == docs
        if measure == "write":
            for i in range(docs, docs + 1000):
                s = scan(i)
                catalog.register(s, locations(s, tape=False))
            for i in range(1000):
                s = scan(i)
                catalog.update_locations(s, locations(s)[1:])  # the CFS copy was pruned
            started = time.perf_counter()
            catalog.flush()
            out["flush_s"] = time.perf_counter() - started
            started = time.perf_counter()
            assert len(catalog.observe(wanted).locations) == docs
            out["observe_after_write_s"] = time.perf_counter() - started
        del wanted
    out["rss_mb"] = status_mb("VmRSS")
    out["hwm_mb"] = status_mb("VmHWM")
    print(json.dumps(out))


def run_child(measure: str, path: Path, catalog_id: str, docs: int) -> dict[str, float]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            measure,
            "--path",
            str(path),
            "--id",
            catalog_id,
            "--docs",
            str(docs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--child", default=None)
    parser.add_argument("--path", type=Path, default=None)
    parser.add_argument("--id", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.id, args.docs)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "catalog.json"
        started = time.perf_counter()
        catalog_id = build(path, args.docs)
        file_mb = path.stat().st_size / 2**20
        print(
            f"built {args.docs} documents in {time.perf_counter() - started:.1f} s: "
            f"{file_mb:.1f} MB"
        )
        base = run_child("baseline", path, catalog_id, args.docs)
        whole = run_child("parsed", path, catalog_id, args.docs)
        seen = run_child("observe", path, catalog_id, args.docs)
        wrote = run_child("write", path, catalog_id, args.docs)
    measures = (("baseline", base), ("parsed", whole), ("observe", seen), ("write", wrote))
    for name, figures in measures:
        print(name, " ".join(f"{k}={v:.2f}" for k, v in figures.items()))
    held = seen["rss_mb"] - base["rss_mb"]
    documents = whole["rss_mb"] - base["rss_mb"]
    rewrite_s = whole["load_s"] + whole["dump_s"]
    print(
        f"catalog_docs={args.docs} file_mb={file_mb:.1f} documents_mb={documents:.0f} "
        f"observe_rss_mb={held:.0f} held_to_documents_ratio={held / documents:.3f} "
        f"write_peak_mb={wrote['hwm_mb'] - base['rss_mb']:.0f} "
        f"peak_to_documents_ratio={(wrote['hwm_mb'] - base['rss_mb']) / documents:.3f} "
        f"held_mb_per_1k_docs={held / args.docs * 1000:.2f} observe_s={seen['observe_s']:.2f} "
        f"flush_s={wrote['flush_s']:.2f} flush_to_rewrite_ratio={wrote['flush_s'] / rewrite_s:.2f}"
    )


if __name__ == "__main__":
    main()
