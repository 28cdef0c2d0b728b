"""`bl931tui --flight-check` and `bl931tui --import-splash CONFIG.yml`.

`--flight-check` runs the canary through the copy chain (engine/flight_check.py), prints the
report (a table, or JSON with `--json`), hands it to the store's owner to record (the running
service over its socket, else this process under the owner lock: engine/flight_record.py), and
exits 0 when every leg passed, 1 otherwise (the alert is then standing).

`--import-splash` prints `[endpoints.NAME]` tables for every Globus endpoint of a splash_flows
`config.yml` (engine/splash.py); it needs no bl931 config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from engine.config import Config

log = logging.getLogger("bl931.flight")


def add_modes(mode: argparse._MutuallyExclusiveGroup) -> None:
    mode.add_argument(
        "--flight-check",
        action="store_true",
        help="copy a canary file through the copy chain, verify, clean up, report per-leg "
        "latency; exit 1 and alert when a leg fails",
    )
    mode.add_argument(
        "--import-splash",
        type=Path,
        metavar="CONFIG_YML",
        help="print bl931 [endpoints.*] tables for the Globus endpoints of a splash_flows "
        "config.yml",
    )


def import_splash(path: Path) -> int:
    from engine.splash import endpoint_tables, read_splash

    print(endpoint_tables(read_splash(path), path), end="")
    return 0


def run_flight(config: Config, args: argparse.Namespace) -> int:
    from engine.flight_check import run_flight_check
    from engine.flight_record import hand_over
    from engine.pushgateway import gateway_settings, push_flight

    gateway_settings(os.environ)  # a malformed PUSHGATEWAY_* is a config error (78) up front
    report = run_flight_check(config)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.to_markdown(), end="")
    try:
        where = hand_over(config, report)
    except Exception as exc:  # the check ran; not recording it is reported, and fails the run
        print(f"bl931tui: the flight check could not be recorded: {exc}", file=sys.stderr)
        return 1
    print(
        {
            "service": "recorded by the running service",
            "direct": "recorded in the state store (no service running)",
            "none": f"not recorded: no state store at {config.state.path} yet (the service "
            "creates it at its first pass)",
        }[where],
        file=sys.stderr,
    )
    push_flight(config, report, os.environ)
    if not report.ok:
        print("bl931tui: flight check FAILED (an alert stands until one passes)", file=sys.stderr)
    return 0 if report.ok else 1
