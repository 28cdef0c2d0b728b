"""Who may decide, in the TUI: read-only with the reason for everyone else; a running service
names the operator from the kernel, whatever name the TUI shows."""

from __future__ import annotations

import os
import pwd
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.dialogs import ConfirmDialog
from engine.config import Config
from engine.decision_socket import DecisionServer, socket_path
from engine.operator_decisions import DecisionDesk
from engine.state import StateStore
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import NOW, Scenario

pytestmark = pytest.mark.asyncio
ME = pwd.getpwuid(os.geteuid()).pw_name


def with_approvers(config: Config, approvers: list[str] | None) -> Config:
    approval = config.approval.model_copy(update={"approvers": approvers})
    return config.model_copy(update={"approval": approval})


def decided(scenario: Scenario) -> list[tuple[str, str]]:
    with sqlite3.connect(scenario.store_path) as conn:
        return conn.execute("SELECT decision, decided_by FROM approvals").fetchall()


@pytest.fixture
def service() -> Iterator[Any]:
    """The decision socket of a service over a scenario's store, served from a thread."""
    opened: list[tuple[DecisionServer, StateStore]] = []

    def start(scenario: Scenario, approvers: list[str] | None) -> None:
        store = scenario.store()
        config = with_approvers(scenario.config, approvers)
        desk = DecisionDesk(store, lambda: config, lambda: NOW)
        server = DecisionServer(socket_path(scenario.store_path), desk).start()
        opened.append((server, store))

    yield start
    for server, store in opened:
        server.close()
        store.close()


async def approve_all(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("a")
    await settle(pilot)
    await pilot.press("A")
    await pilot.pause()
    dialog = pilot.app.screen
    if isinstance(dialog, ConfirmDialog):
        await pilot.press("tab", *dialog.typed or "", "enter")
    await settle(pilot)


async def test_someone_who_is_not_an_approver_gets_a_read_only_tui_saying_why(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("awaiting_approval")
    app = replace(scenario, config=with_approvers(scenario.config, ["alice"])).app(user=None)
    assert app.read_only
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await approve_all(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        messages = [n.message for n in app._notifications]
        assert (
            f"Read-only session: approve refused. {ME} (uid {os.geteuid()}) is not an approver "
            "([approval] approvers = alice)."
        ) in messages
    assert decided(scenario) == []


async def test_a_running_service_records_the_kernels_name_not_the_tuis(
    make_scenario: MakeScenario, service: Any
) -> None:
    scenario = make_scenario("awaiting_approval")
    service(scenario, [ME])
    app = scenario.app()  # shows the name "operator"
    async with app.run_test(size=(120, 40)) as pilot:
        await approve_all(pilot)
    assert decided(scenario) and set(decided(scenario)) == {("approve", ME)}


async def test_the_services_refusal_reaches_the_operator(
    make_scenario: MakeScenario, service: Any
) -> None:
    scenario = make_scenario("awaiting_approval")
    service(scenario, ["alice"])  # the service's config, not the TUI's, decides
    app = replace(scenario, config=with_approvers(scenario.config, [ME])).app(user=None)
    assert not app.read_only
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await approve_all(pilot)
        messages = [n.message for n in app._notifications]
        assert any(
            m.startswith(f"approve refused: {ME} (uid {os.geteuid()}) is not an approver")
            for m in messages
        ), messages
    assert decided(scenario) == []
