"""Checksum throughput of the inventory walk against coreutils `md5sum`.

The inventory computes an acquisition checksum for every new scan, so it must keep up with the
beamline; `md5sum` is the yardstick operators know. Both read the same files from a warm page
cache (so the disk is out of the comparison and only the hashing loop counts), best of N runs.

Run from the repository root:

    .venv/bin/python bench/checksum.py            # 16 x 64 MiB = 1 GiB

The last line is machine-readable:
`checksum_ratio_vs_md5sum=<ours / md5sum> ours_mib_s=<MiB/s> md5sum_mib_s=<MiB/s>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

MIB = 1024 * 1024


def write_files(folder: Path, count: int, file_mib: int) -> list[Path]:
    """Write `count` files of `file_mib` MiB: one random block, made unique per MiB by a counter."""
    block = bytearray(os.urandom(MIB))
    paths = []
    for index in range(count):
        path = folder / f"scan_{index:03d}.h5"
        with path.open("wb") as stream:
            for chunk in range(file_mib):
                block[:8] = (index * file_mib + chunk).to_bytes(8, "little")
                stream.write(block)
        paths.append(path)
    return paths


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once so that both contenders read from memory."""
    buffer = bytearray(8 * MIB)
    for path in paths:
        with path.open("rb", buffering=0) as stream:
            while stream.readinto(buffer):
                pass


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def run_md5sum(paths: list[Path]) -> None:
    subprocess.run(["md5sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Checksum throughput of the inventory walk against md5sum."
    )
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the test files")
    args = parser.parse_args(argv)
    if shutil.which("md5sum") is None:
        print("md5sum is not installed", file=sys.stderr)
        return 1

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from engine.inventory.checksum import CHUNK_SIZE, file_checksum
    from engine.inventory.walk import walk_inventory
    from engine.layout import ScanLayout
    from engine.storage.local import LocalStorage

    total_mib = args.files * args.file_mib
    with tempfile.TemporaryDirectory(prefix="bl931-bench-", dir=args.dir) as scratch:
        root = Path(scratch)
        paths = write_files(root, args.files, args.file_mib)
        warm_page_cache(paths)
        storage = LocalStorage("bench", root)

        def ours_walk() -> None:
            result = walk_inventory(
                storage,
                ScanLayout(),
                algorithm="md5",
                quiet_seconds=0,
                now=datetime.now(UTC),
                known={},
            )
            assert result.checksummed_bytes == total_mib * MIB

        def ours_files() -> None:
            for path in paths:
                file_checksum(path, "md5")

        md5sum_s = best_seconds(lambda: run_md5sum(paths), args.repeats)
        walk_s = best_seconds(ours_walk, args.repeats)
        files_s = best_seconds(ours_files, args.repeats)

    md5sum_rate, walk_rate, files_rate = (total_mib / s for s in (md5sum_s, walk_s, files_s))
    print(f"data: {args.files} files x {args.file_mib} MiB = {total_mib} MiB, warm page cache")
    print(
        f"cpu: {os.cpu_count()} logical; python {sys.version.split()[0]}; chunk {CHUNK_SIZE // MIB} MiB"
    )
    print(
        f"md5sum:                  {md5sum_s:7.3f} s  {md5sum_rate:8.1f} MiB/s (best of {args.repeats})"
    )
    print(
        f"walk_inventory (md5):    {walk_s:7.3f} s  {walk_rate:8.1f} MiB/s (best of {args.repeats})"
    )
    print(
        f"file_checksum loop (md5):{files_s:7.3f} s  {files_rate:8.1f} MiB/s (best of {args.repeats})"
    )
    print(
        f"checksum_ratio_vs_md5sum={walk_rate / md5sum_rate:.2f} "
        f"ours_mib_s={walk_rate:.1f} md5sum_mib_s={md5sum_rate:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
