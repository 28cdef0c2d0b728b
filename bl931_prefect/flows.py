"""The Prefect 3 flows: `reconcile_pass`, `notify_new_scan`, `flight_check`.

Every flow reads the beamline's config from `config_path`, else `$BL931_CONFIG`, else the
usual places (./bl931.toml, ~/.config/bl931/config.toml); secrets come from the environment as
for the service. A run's state follows what happened: `Completed`, `Failed` (a pass with errors
or standing alerts, a notify not recorded, a red flight check), or `Skipped` (a Completed state:
another process owns the store). Deployments: deploy/prefect.yaml; docs/prefect.md.
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from bl931_prefect.owner import run_owned_pass
from bl931_prefect.pass_report import render
from engine.config import Config, load_config
from engine.notify import DEFAULT_WAIT_SECONDS, notify


def _config(config_path: str | None) -> Config:
    return load_config(config_path or os.environ.get("BL931_CONFIG") or None)


def artifact_key(kind: str, beamline: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): `bl931-pass-9-3-1`."""
    return re.sub(r"[^a-z0-9-]+", "-", f"bl931-{kind}-{beamline}".lower()).strip("-")


@flow(name="bl931-reconcile-pass", flow_run_name="reconcile-{config_path}")
def reconcile_pass(config_path: str | None = None) -> State[Any]:
    """One `reconcile_once` as the store's owner; Failed on errors or alerts, Skipped when
    another process owns the store. Its markdown artifact: summary, blocked, alerts, receipts."""
    log = get_run_logger()
    config = _config(config_path)
    done = run_owned_pass(config)
    if done.report is None:
        log.info("%s", done.skipped)
        return Completed(message=done.skipped, name="Skipped")
    report = done.report
    markdown = render(report, done.receipts, beamline=config.beamline.name)
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("pass", config.beamline.name),
        description=f"bl931 pass for {config.beamline.name}",
    )
    summary = ", ".join(f"{k}={v}" for k, v in report.summary().items())
    if not report.ok:
        errors = "; ".join(f"{e.endpoint}: {e.message}" for e in report.plan.errors)
        alerts = "; ".join(a.message for a in report.plan.alert_details)
        message = f"pass failed: {errors or alerts} ({summary})"
        log.error("%s", message)
        return Failed(message=message, data=report.summary())
    log.info("pass: %s", summary)
    return Completed(message=f"pass: {summary}", data=report.summary())


@flow(name="bl931-notify-new-scan", flow_run_name="notify-{file_path}")
def notify_new_scan(
    file_path: str,
    is_export_control: bool = False,
    config_path: str | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> dict[str, Any]:
    """The acquisition watcher's call (splash_flows' dispatcher signature): records that the
    scan is complete, and its export-control flag, through the store's owner. Never copies.
    Raises (Failed) on a path that is no scan, or a hint that could not be recorded."""
    config = _config(config_path)
    done = notify(config, file_path, is_export_control, wait_seconds=wait_seconds)
    get_run_logger().info(
        "notified %s (export-controlled: %s, recorded %s)",
        done.scan,
        done.export_controlled,
        "by the running service" if done.via == "service" else "in the store",
    )
    return {"scan": done.scan, "export_controlled": done.export_controlled, "via": done.via}


@flow(name="bl931-flight-check", flow_run_name="flight-check-{config_path}")
def flight_check(config_path: str | None = None) -> State[Any]:
    """The canary through the copy chain (engine/flight_check.py); Failed when a leg fails.
    Its markdown artifact is the flight report."""
    from engine.flight_check import run_flight_check
    from engine.flight_record import hand_over

    config = _config(config_path)
    report = run_flight_check(config)
    # Recorded like `bl931tui --flight-check`: with the store's owner (the running service over
    # its socket, else under the owner lock), so a red check raises the same alert and metric.
    where = hand_over(config, report)
    create_markdown_artifact(
        markdown=report.to_markdown(),
        key=artifact_key("flight-check", config.beamline.name),
        description=f"bl931 flight check for {config.beamline.name}",
    )
    recorded = "" if where != "none" else " (not recorded: no state store yet)"
    if not report.ok:
        return Failed(message=f"flight check failed (see the artifact){recorded}")
    return Completed(message=f"flight check ok{recorded}")
