"""`bl931tui --notify PATH [--export-control]`: the acquisition watcher says a scan is complete.

The hint is handed to the state store's owner (engine/notify.py): the running service records
it and starts a pass; with no service running this process records it itself, under the owner
lock, for the next pass. Exit 0 recorded · 64 the path is no scan of the inventory endpoint ·
1 not recorded (refused, or the store stayed busy; the message says which).
"""

from __future__ import annotations

import argparse
import sys

from engine.config import Config
from engine.errors import UsageError


def add_flags(mode: argparse._MutuallyExclusiveGroup, parser: argparse.ArgumentParser) -> None:
    mode.add_argument(
        "--notify",
        metavar="PATH",
        help="a scan is complete (from the acquisition watcher): record the hint and wake the "
        "service's next pass; PATH is under the inventory endpoint or relative to its root",
    )
    parser.add_argument(
        "--export-control",
        action="store_true",
        help="with --notify: the scan is export-controlled (never copied off-site)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="with --notify: how long to wait for a busy store (a --once pass, a flow run; "
        "default 300)",
    )


def check_combinations(args: argparse.Namespace) -> None:
    if args.export_control and args.notify is None:
        raise UsageError("--export-control goes with --notify")
    if args.wait is not None and args.notify is None:
        raise UsageError("--wait goes with --notify")
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be a number of seconds, 0 or more")


def run_notify(config: Config, args: argparse.Namespace) -> int:
    from engine.notify import DEFAULT_WAIT_SECONDS, notify

    wait = DEFAULT_WAIT_SECONDS if args.wait is None else args.wait
    done = notify(config, args.notify, args.export_control, wait_seconds=wait)
    where = (
        "recorded by the running service (its next pass starts now)"
        if done.via == "service"
        else "written to the store (no service running; the next pass uses it)"
    )
    flag = "export-controlled" if done.export_controlled else "not export-controlled"
    print(f"notified: {done.scan} ({flag}); {where}", file=sys.stderr)
    return 0
