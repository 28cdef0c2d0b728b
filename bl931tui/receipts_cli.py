"""`--receipt [SCAN | FOLDER/] [--since WHEN] [--until WHEN] [--json]`: deletion receipts.

One scan id, or a folder ending in `/` matched at any depth (a proposal `ALS-1234/`, a month
`2026/01/`), or, with no value, every scan; `--since`/`--until` bound when the delete happened
(a plain date is midnight UTC; `--until` takes a plain date as the whole of that day). Exit 0
when something matched, 1 when nothing did (also with `--json`, which then prints `[]`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from bl931tui.as_of import parse_as_of
from engine.config import Config
from engine.errors import UsageError
from engine.receipt_search import ReceiptQuery, find_receipts

EXIT_FOUND, EXIT_NONE = 0, 1


def query_of(args: argparse.Namespace) -> ReceiptQuery:
    """The query the flags describe.

    Raises:
        UsageError: a bound that is not a date or time, or `--since` after `--until`.
    """
    since = parse_as_of(args.since, "--since") if args.since else None
    until = None
    if args.until:
        until = parse_as_of(args.until, "--until")
        if "T" not in args.until:  # a plain date: the whole of that day
            until += timedelta(days=1)
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since {args.since} is after --until {args.until}: nothing can match")
    return ReceiptQuery(args.receipt or "", since, until)


def describe(query: ReceiptQuery, args: argparse.Namespace) -> str:
    """`scans under 'ALS-1234/' deleted since 2026-01-01`: what was searched, in words."""
    if not query.scan:
        words = "any scan"
    elif query.folder:
        words = f"scans under {query.scan!r}"
    else:
        words = repr(query.scan)
    if args.since:
        words += f" deleted since {args.since}"
    if args.until:
        words += f"{' and' if args.since else ' deleted'} until {args.until}"
    return words


def run_receipt(config: Config, args: argparse.Namespace) -> int:
    from bl931tui.session import readonly_store

    query = query_of(args)
    with readonly_store(config) as store:
        receipts = find_receipts(store, query)
    if args.json:
        json.dump(receipts, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not receipts:
        print(f"No deletion receipts for {describe(query, args)}.")
    else:
        for receipt in receipts:  # one per removal, oldest first
            print_receipt(receipt)
        if query.folder or not query.scan or args.since or args.until:
            print(count_line(receipts, query, args))
    return EXIT_FOUND if receipts else EXIT_NONE


def count_line(
    receipts: list[dict[str, Any]], query: ReceiptQuery, args: argparse.Namespace
) -> str:
    """`2 receipts, 2 scans under 'ALS-1234/'.`: the closing line of a listing."""
    scans = len({r["scan"] for r in receipts})
    words = [
        f"{len(receipts)} {'receipt' if len(receipts) == 1 else 'receipts'},",
        f"{scans} {'scan' if scans == 1 else 'scans'}",
    ]
    if query.folder:
        words.append(f"under {query.scan!r}")
    if args.since:
        words.append(f"deleted since {args.since}")
    if args.until:
        words.append(f"{'and' if args.since else 'deleted'} until {args.until}")
    return " ".join(words) + "."


def print_receipt(r: dict[str, Any]) -> None:
    acq = r["acquisition"]
    print(
        f"Deleted {r['scan']} from {r['endpoint']} at {r['deleted_at']} "
        f"(receipt {r['receipt_id']}, action {r['action_id']}, "
        f"task {r['delete_task_id']})"
        + (" — part of the scan; the rest was still there" if r.get("partial") else "")
    )
    print(
        f"  acquisition {acq['algorithm']} {acq['checksum']} "
        f"(version {acq['version']}, {acq['files']} files, {acq['bytes']} bytes)"
    )
    if r.get("catalog_pid"):
        print(f"  catalog pid {r['catalog_pid']}")
    for copy in r["verified_copies"]:
        print(
            f"  verified copy at {copy['endpoint']}: {copy['level']} "
            f"{copy['algorithm']} {copy['checksum']} by {copy['how']} "
            f"(task {copy['task_id']}, {copy['verified_at']})"
        )
        tape = copy.get("tape")
        if tape:
            print(f"    {tape_words(tape)}")
    approval = r.get("approval")
    print(
        f"  approval: {approval['by']} at {approval['at']}"
        + (
            f", used by submission {approval['submission_id']}"
            if approval.get("submission_id")
            else ""
        )
        if approval
        else "  approval: not required by policy"
    )
    for signer in r.get("approvers") or []:
        print(f"  approved by {signer['by']} at {signer['at']} (via {signer['via']})")


def tape_words(tape: dict[str, Any]) -> str:
    """`in bundle /2026-1/….tar (member 2026/03/s.h5), job 123, CRC verified (…)`."""
    members = tape.get("members") or []
    shown = ", ".join(members[:3]) + (f", … ({len(members)} in all)" if len(members) > 3 else "")
    words = f"in bundle {tape['bundle']} ({'member' if len(members) == 1 else 'members'} {shown})"
    if tape.get("legacy_from"):
        words = f"a legacy per-file object {tape['bundle']}, from {tape['legacy_from']}"
    words += f", job {tape.get('job_id') or 'unknown'}"
    if tape.get("crc"):
        words += f", CRC verified ({tape['crc']})"
    if tape.get("cput"):
        words += f", {len(tape['cput'])} file(s) by hsi cput, re-read and matched"
    return words
