"""deploy/prefect.yaml is what `prefect deploy` reads: its own model accepts it, and every
entrypoint names a flow of bl931_prefect with the parameters the deployment passes."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_valid_and_its_entrypoints_are_flows(monkeypatch) -> None:
    raw = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text("utf-8"))
    model = PrefectYamlModel.model_validate(raw)
    assert {d.name for d in model.deployments} == {
        "bl931-931-reconcile",
        "bl931-931-notify",
        "bl931-931-flight-check",
    }
    monkeypatch.chdir(ROOT)
    for deployment in raw["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert set(deployment.get("parameters") or {}) <= set(flow.parameters.properties)
        assert deployment["work_pool"]["job_variables"]["env"]["BL931_CONFIG"]
    notify = load_flow_from_entrypoint("bl931_prefect/flows.py:notify_new_scan")
    # The splash_flows dispatcher's signature: (file_path, is_export_control=False).
    assert list(notify.parameters.properties)[:2] == ["file_path", "is_export_control"]
    assert notify.parameters.required == ["file_path"]
