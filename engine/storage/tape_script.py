"""The bash scripts a tape endpoint's jobs run, and how their output is read back.

One archive job per bundle: it checks every member's bytes against the manifest's acquisition
checksums (`md5sum -c` or the algorithm's tool), writes the bundle with `htar -cvf -Hcrc
-Hverify=all` (CRCs stored and re-read after writing), lists it back with `htar -tvf`, sends the
members htar cannot hold (`hsi cput`, each re-read with `hsi hashverify`), and writes the manifest
next to the bundle. One restore job per bundle extracts just the wanted members into a staging
folder and checks them against the manifest again. Every result the engine needs is a line
starting `BL931 ` or an `htar -tvf` line; nothing else in the output is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SUM_TOOLS = {
    "md5": "md5sum",
    "sha1": "sha1sum",
    "sha256": "sha256sum",
    "sha512": "sha512sum",
    "blake2b": "b2sum",
}
MAX_HTAR_MEMBER = 64 * 10**9  # bytes; larger members go through `hsi cput` (htar's limit is 68 GB)
_LISTED = re.compile(r"^HTAR: \S+\s+\S+\s+(\d+) \d{4}-\d\d-\d\d \d\d:\d\d  (.*)$")
_HSI_LS = re.compile(r"^\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\w{3} \d\d \d{4} \d\d:\d\d (.*)$")


def htar_can_store(path: str) -> bool:
    """Whether ustar (htar's format) can hold this path: name ≤ 99 bytes, or a split at a '/'
    into prefix ≤ 154 and name ≤ 99 bytes."""
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) <= 99:
        return True
    return any(
        byte == 0x2F and i <= 154 and 0 < len(raw) - i - 1 <= 99 for i, byte in enumerate(raw)
    )


@dataclass(frozen=True, slots=True)
class Member:
    scan: str
    path: str  # relative to the source root (the scan's own path)
    size: int
    mtime: float
    checksum: str
    via: str  # "htar" | "cput"
    hpss_path: str  # the bundle, or the file's own HPSS path for cput


def heredoc_delimiter(body: str) -> str:
    """A heredoc delimiter that occurs nowhere in `body`: derived from the body's own hash
    (so the same script is generated for the same members), lengthened in the astronomically
    unlikely case a path holds it. No member path can end the heredoc early or inject."""
    digest = hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()
    for n in range(16, len(digest) + 1):
        delimiter = f"BL931_EOF_{digest[:n]}"
        if delimiter not in body:
            return delimiter
    n = 0
    while f"BL931_EOF_{digest}_{n}" in body:
        n += 1
    return f"BL931_EOF_{digest}_{n}"


def _heredoc(path_var: str, lines: Iterable[str]) -> str:
    body = "\n".join(lines)
    end = heredoc_delimiter(body)
    return f"cat > \"{path_var}\" <<'{end}'\n{body}\n{end}\n"


def _check_sums(algorithm: str, members: Sequence[Member]) -> str:
    tool = SUM_TOOLS[algorithm]
    return (
        _heredoc("$WORK/sums", (f"{m.checksum}  {m.path}" for m in members))
        + f'{tool} -c "$WORK/sums" > "$WORK/check" 2>&1; rc=$?\n'
        + "grep -v ': OK$' \"$WORK/check\" | sed 's/^/BL931 SUM /'\n"
        + 'if [ $rc -ne 0 ]; then echo "BL931 SUMS FAILED"; exit 65; fi\n'
        + 'echo "BL931 SUMS OK"\n'
    )


def _hsi(command: str) -> str:
    return f"hsi -q {shlex.quote(command)}"


def archive_script(
    source_root: str,
    bundle: str,
    algorithm: str,
    members: Sequence[Member],
    manifest: dict[str, object],
) -> str:
    """The job that builds, verifies and lists one bundle (see the module docstring)."""
    in_tar = [m for m in members if m.via == "htar"]
    cput = [m for m in members if m.via == "cput"]
    folder = bundle.rsplit("/", 1)[0] or "/"
    parts = [
        "set -uo pipefail",
        f"cd -- {shlex.quote(source_root)} || {{ echo 'BL931 SOURCE UNREADABLE'; exit 66; }}",
        "WORK=$(mktemp -d); trap 'rm -rf \"$WORK\"' EXIT",
        _check_sums(algorithm, members),
        _hsi(f"mkdir -p {shlex.quote(folder)}") + ' || { echo "BL931 HSI FAILED $?"; exit 72; }',
    ]
    if in_tar:
        parts += [
            _heredoc("$WORK/members", (m.path for m in in_tar)),
            f'htar -cvf {shlex.quote(bundle)} -Hcrc -Hverify=all -L "$WORK/members"; rc=$?',
            'echo "BL931 HTAR $rc"; [ $rc -eq 0 ] || exit $rc',
            'echo "BL931 LISTING BEGIN"',
            f"htar -tvf {shlex.quote(bundle)}; rc=$?",
            'echo "BL931 LISTING END $rc"; [ $rc -eq 0 ] || exit 71',
            f'echo "BL931 SIZE $({_hsi(f"ls -l {shlex.quote(bundle)}")} | head -1)"',
        ]
    for m in cput:
        remote = shlex.quote(m.hpss_path)
        local = shlex.quote(m.path)
        parts += [
            f"want=$(md5sum < {local} | cut -d' ' -f1)",
            _hsi(f"mkdir -p {shlex.quote(m.hpss_path.rsplit('/', 1)[0])}") + " || exit 72",
            _hsi(f"cput -c on {local} : {remote}") + " || exit 72",
            f"got=$({_hsi(f'hashverify {remote}')} 2>&1 | sed -n 's/.*(md5) \\([0-9a-f]*\\).*/\\1/p')",
            f'if [ "$got" = "$want" ]; then echo "BL931 CPUT OK $want "{shlex.quote(m.hpss_path)}; '
            f'else echo "BL931 CPUT BAD "{shlex.quote(m.hpss_path)}; exit 67; fi',
        ]
    parts += [
        _heredoc("$WORK/manifest.json", [json.dumps(manifest, sort_keys=True)]),
        f'hsi -q "cput $WORK/manifest.json : {shlex.quote(bundle + ".manifest.json")}" || exit 72',
        'echo "BL931 DONE"',
    ]
    return "\n".join(parts) + "\n"


def restore_script(stage: str, bundle: str, algorithm: str, members: Sequence[Member]) -> str:
    """The job that recalls some members of one bundle into `stage` and checks them."""
    in_tar = [m for m in members if m.via == "htar"]
    cput = [m for m in members if m.via == "cput"]
    parts = [
        "set -uo pipefail",
        f"mkdir -p -- {shlex.quote(stage)} && cd -- {shlex.quote(stage)} || exit 66",
        "WORK=$(mktemp -d); trap 'rm -rf \"$WORK\"' EXIT",
    ]
    if in_tar:
        names = " ".join(shlex.quote(m.path) for m in in_tar)
        parts += [
            f"htar -xvf {shlex.quote(bundle)} -Hverify=crc {names}; rc=$?",
            'echo "BL931 HTAR $rc"; [ $rc -eq 0 ] || exit $rc',
        ]
    for m in cput:
        parts.append(
            f'mkdir -p -- "$(dirname -- {shlex.quote(m.path)})" && '
            + _hsi(f"get {shlex.quote(m.path)} : {shlex.quote(m.hpss_path)}")
            + " || exit 72"
        )
    parts += [_check_sums(algorithm, members), 'echo "BL931 DONE"']
    return "\n".join(parts) + "\n"


def marked(output: str, word: str) -> list[str]:
    """The rest of every `BL931 <word> …` line."""
    prefix = f"BL931 {word}"
    return [line[len(prefix) :].strip() for line in output.splitlines() if line.startswith(prefix)]


def failed_sums(output: str) -> list[str]:
    """Paths `md5sum -c` reported as not matching (or unreadable)."""
    out = []
    for rest in marked(output, "SUM "):
        if ": FAILED" in rest:
            out.append(rest.rsplit(": FAILED", 1)[0])
    return out


def listing(output: str) -> dict[str, int] | None:
    """path → size from the `htar -tvf` lines between the LISTING marks (None: no listing)."""
    lines = output.splitlines()
    try:
        start = lines.index("BL931 LISTING BEGIN")
    except ValueError:
        return None
    found: dict[str, int] = {}
    for line in lines[start + 1 :]:
        if line.startswith("BL931 LISTING END"):
            return found
        match = _LISTED.match(line)
        if match:
            found[match.group(2)] = int(match.group(1))
    return None


def parse_tvf(output: str) -> dict[str, int]:
    found = {}
    for line in output.splitlines():
        match = _LISTED.match(line)
        if match:
            found[match.group(2)] = int(match.group(1))
    return found


def parse_ls(output: str) -> dict[str, int]:
    """HPSS path → size from `hsi ls -l` lines."""
    found = {}
    for line in output.splitlines():
        match = _HSI_LS.match(line.strip())
        if match:
            found[match.group(2)] = int(match.group(1))
    return found
