"""`bl931tui`: the entry point for the TUI, the service, the audit and the demo.

Exit codes (every case: docs/audit.md, "Exit codes of every command", checked by
tests/cli/test_exit_code_table.py): `--dry-run` reports the most serious class present — 0
settled, 2 work pending, 1 needs a person (see `Plan.outcome`); `--check` 0 all good, 1 an
endpoint or the catalog needs a person; `--receipt` 1 when nothing matched; a held lock, a
refused decision, an `--approve-all` not confirmed: 1; 64 usage · 78 configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bl931tui import notify_cli
from bl931tui.as_of import parse_as_of
from engine.config import Config, load_config
from engine.errors import Bl931Error, ConfigError, StateLocked, UsageError
from engine.operator_decisions import NotPermitted

EXIT_OK, EXIT_ERROR, EXIT_DRIFT, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 64, 78

log = logging.getLogger("bl931")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bl931tui",
        description="Data-lifecycle manager for ALS Beamline 9.3.1: copies, archives, catalog "
        "and retention, reconciled declaratively.",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="config file (default: ./bl931.toml, then ~/.config/bl931/config.toml)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--reconcile", action="store_true", help="run the reconciler (service)")
    mode.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    mode.add_argument("--approve", nargs="+", metavar="ACTION_ID", help="approve gated actions")
    mode.add_argument("--approve-all", action="store_true", help="approve every gated action")
    mode.add_argument(
        "--reject", nargs="+", metavar="ACTION_ID", help="reject planned or in-flight actions"
    )
    mode.add_argument(
        "--unreject", nargs="+", metavar="ACTION_ID", help="withdraw rejections (recorded)"
    )
    mode.add_argument(
        "--revoke",
        nargs="+",
        metavar="ACTION_ID",
        help="withdraw approvals not yet acted on (recorded)",
    )
    mode.add_argument("--demo", action="store_true", help="the whole lifecycle on local endpoints")
    mode.add_argument(
        "--receipt",
        nargs="?",
        const="",
        metavar="SCAN",
        help="print deletion receipts: of a scan, of every scan under a folder ending in / "
        "(a proposal ALS-1234/, a month 2026/01/), or of every scan (no value)",
    )
    mode.add_argument(
        "--init-endpoint",
        metavar="NAME",
        help="write the identity marker of a local or tape endpoint (after checking it is the right storage)",
    )
    mode.add_argument(
        "--adopt-endpoint",
        metavar="NAME",
        help="after a deliberate storage migration: re-key the endpoint's evidence from its old "
        "storage (with --from-identity) instead of re-verifying it",
    )
    mode.add_argument(
        "--init-catalog",
        action="store_true",
        help="create the local catalog, or adopt the file at its path (after checking it is "
        "the right one)",
    )
    mode.add_argument(
        "--acknowledge",
        metavar="ALERT_ID",
        help="acknowledge a standing alert (with --why); e.g. accept replicas lost at an endpoint",
    )
    mode.add_argument(
        "--backup-state",
        type=Path,
        metavar="DEST",
        help="write a consistent copy of the state store to DEST (safe while the service runs)",
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="probe the configured components read-only: exit 0 ok, 1 a component failed, 78 config",
    )
    mode.add_argument(
        "--backfill-catalog",
        action="store_true",
        help="register every locally catalogued scan in the configured SciCat",
    )
    from bl931tui.flight_cli import add_modes

    add_modes(mode)
    p.add_argument("--once", action="store_true", help="with --reconcile: one pass, then exit")
    p.add_argument(
        "--interval", type=float, metavar="SECONDS", help="with --reconcile: pass period"
    )
    p.add_argument(
        "--restore",
        metavar="SCAN",
        help="request a recall of SCAN from its tape endpoint (an approval then runs it)",
    )
    p.add_argument(
        "--to",
        metavar="ENDPOINT",
        help="with --restore: the endpoint to restore into (default: the first endpoint copies "
        "go to from the inventory)",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run/--receipt: JSON on stdout")
    p.add_argument(
        "--since", metavar="DATE", help="with --receipt: deleted at or after (ISO 8601, UTC)"
    )
    p.add_argument(
        "--until", metavar="DATE", help="with --receipt: deleted before the end of (a date) or at"
    )
    p.add_argument("--as-of", metavar="ISO8601", help="with --dry-run: plan as if it were then")
    p.add_argument("--yes", action="store_true", help="with --approve-all: do not ask")
    p.add_argument("--why", metavar="TEXT", help="with --acknowledge: the reason, recorded")
    p.add_argument(
        "--from-identity",
        metavar="IDENTITY",
        help="with --adopt-endpoint: the old storage identity, as the storage_changed alert names it",
    )
    p.add_argument(
        "--rearchive",
        action="store_true",
        help='with --adopt-endpoint of a per-file HPSS endpoint now kind = "tape": bundle every '
        "scan afresh instead of recording its per-file objects as legacy members",
    )
    p.add_argument("--headless", action="store_true", help="with --demo: no screen, print events")
    p.add_argument(
        "--duration",
        type=float,
        default=75.0,
        metavar="SECONDS",
        help="with --demo --headless: how long to run (default 75)",
    )
    p.add_argument(
        "--workspace", type=Path, help="with --demo: where to build it (default ./bl931-demo)"
    )
    p.add_argument("--read-only", action="store_true", help="TUI: make no decisions")
    p.add_argument("--no-mouse", action="store_true", help="TUI: keyboard only")
    p.add_argument("--log-format", choices=("text", "json"), help="log line format (stderr)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail")
    p.add_argument("--version", action="version", version=f"bl931 {_version()}")
    mode.add_argument(
        "--example-config", action="store_true", help="print the example config (every key)"
    )
    mode.add_argument(
        "--systemd-unit",
        action="store_true",
        help="print the systemd unit, with this installation's paths filled in",
    )
    notify_cli.add_flags(mode, p)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bl931")
    except PackageNotFoundError:
        return "(not installed)"


def _check_combinations(args: argparse.Namespace) -> None:
    notify_cli.check_combinations(args)
    if args.once and not args.reconcile:
        raise UsageError("--once goes with --reconcile")
    if args.interval is not None and not args.reconcile:
        raise UsageError("--interval goes with --reconcile")
    if args.interval is not None and args.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    if args.as_of and not args.dry_run:
        raise UsageError("--as-of goes with --dry-run")
    if args.json and not (
        args.dry_run or args.receipt is not None or args.check or args.flight_check
    ):
        raise UsageError("--json goes with --dry-run, --receipt, --check or --flight-check")
    if (args.since or args.until) and args.receipt is None:
        raise UsageError("--since and --until go with --receipt")
    if args.yes and not args.approve_all:
        raise UsageError("--yes goes with --approve-all")
    if args.headless and not args.demo:
        raise UsageError("--headless goes with --demo")
    if args.why is not None and not args.acknowledge:
        raise UsageError("--why goes with --acknowledge")
    if args.acknowledge and not (args.why or "").strip():
        raise UsageError("--acknowledge needs --why TEXT: the reason is recorded with your name")
    if args.from_identity is not None and not args.adopt_endpoint:
        raise UsageError("--from-identity goes with --adopt-endpoint")
    if args.rearchive and not args.adopt_endpoint:
        raise UsageError("--rearchive goes with --adopt-endpoint")
    if args.adopt_endpoint and not (args.from_identity or "").strip():
        raise UsageError(
            "--adopt-endpoint needs --from-identity IDENTITY: the old storage whose evidence "
            "you vouch for (the storage_changed alert names it)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.logs import setup_logging

    try:
        _check_combinations(args)
    except UsageError as exc:
        print(f"bl931tui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(
        level=logging.DEBUG if args.verbose else logging.INFO,
        fmt=args.log_format or "text",
    )
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"bl931tui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"bl931tui: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateLocked as exc:
        print(f"bl931tui: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except NotPermitted as exc:
        print(f"bl931tui: refused: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Bl931Error as exc:
        print(f"bl931tui: {exc.error_class.value} error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.example_config or args.systemd_unit:
        from bl931tui import shipped

        print(shipped.example_config() if args.example_config else shipped.systemd_unit(), end="")
        return EXIT_OK
    if args.demo:
        from bl931tui.demo import run_demo

        return run_demo(args)
    if args.import_splash:
        from bl931tui.flight_cli import import_splash

        return import_splash(args.import_splash)
    config = load_config(args.config)
    if args.log_format is None and config.service.log_format == "json":
        from engine.logs import setup_logging

        setup_logging(level=logging.DEBUG if args.verbose else logging.INFO, fmt="json")
    if args.dry_run:
        return dry_run(config, args)
    if args.flight_check:
        from bl931tui.flight_cli import run_flight

        return run_flight(config, args)
    if args.reconcile:
        from bl931tui.service import run_service

        return run_service(config, args)
    if args.approve or args.approve_all:
        from bl931tui.decide import approve

        return approve(config, args)
    if args.reject:
        from bl931tui.decide import reject

        return reject(config, args)
    if args.unreject or args.revoke:
        from bl931tui.decide import undo

        return undo(config, args)
    if args.restore is not None:
        from bl931tui.restore_cli import request_restore

        return request_restore(config, args.restore, args.to)
    if args.receipt is not None:
        from bl931tui.receipts_cli import run_receipt

        return run_receipt(config, args)
    if args.backfill_catalog:
        return backfill_catalog(config)
    if args.backup_state:
        from bl931tui.backup import backup_state

        return backup_state(config, args.backup_state)
    if args.check:
        from bl931tui.check import run_check

        return run_check(config, as_json=args.json)
    if args.init_endpoint:
        from bl931tui.operator import init_endpoint

        return init_endpoint(config, args.init_endpoint)
    if args.adopt_endpoint:
        from bl931tui.operator import adopt_endpoint

        return adopt_endpoint(
            config, args.adopt_endpoint, args.from_identity.strip(), rearchive=args.rearchive
        )
    if args.init_catalog:
        from bl931tui.operator import init_catalog

        return init_catalog(config)
    if args.notify is not None:
        return notify_cli.run_notify(config, args)
    if args.acknowledge:
        from bl931tui.operator import acknowledge

        return acknowledge(config, args.acknowledge, args.why)
    from bl931tui.launch import run_tui

    return run_tui(config, args)


def dry_run(config: Config, args: argparse.Namespace) -> int:
    from bl931tui.render import render_plan
    from bl931tui.session import readonly_reconciler
    from engine.file_modes import startup_findings
    from engine.model import EndpointError, ErrorClass

    now = parse_as_of(args.as_of) if args.as_of else None
    with readonly_reconciler(config) as reconciler:
        plan = reconciler.dry_run(now)
    unsafe = [
        EndpointError(_file_role(config, finding), finding, ErrorClass.NEEDS_HUMAN)
        for finding in startup_findings(config)
    ]
    if unsafe:
        plan = plan.with_findings(errors=tuple(unsafe))
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_plan(plan, verbose=args.verbose))
    return int(plan.outcome())


def _file_role(config: Config, finding: str) -> str:
    """`state` or `catalog`: which part of bl931 a permission finding concerns."""
    if config.catalog.kind == "local" and finding.startswith(str(config.catalog.path)):
        return "catalog"
    return "state"


def backfill_catalog(config: Config) -> int:
    """Catch SciCat up with what the local catalog recorded while SciCat was not configured."""
    from engine.catalog.backfill import backfill
    from engine.catalog.factory import build_catalog, local_catalog

    if config.catalog.kind != "scicat":
        raise UsageError('--backfill-catalog needs [catalog] kind = "scicat"')
    source = local_catalog(config)
    if source is None:
        print(f"No local catalog at {config.catalog.path}; nothing to back-fill.")
        return EXIT_OK
    target = build_catalog(config)
    assert target is not None

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"back-fill: {done}/{total}", file=sys.stderr, flush=True)

    try:
        result = backfill(source, target, progress)
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
    print(f"back-fill: {result.summary()}")
    for failure in result.failed:
        print(
            f"  failed: {failure.scan}: {failure.reason} ({failure.error_class.value})",
            file=sys.stderr,
        )
    return EXIT_OK if result.ok else EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
