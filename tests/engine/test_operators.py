"""Operator identity and `[approval] approvers`, with the account databases injected.

The kernel's uid is the only input; names and groups come from the (injected) passwd and group
databases, so users this machine does not have can be tested, and the environment never counts.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.errors import ConfigError
from engine.operators import Approvers, Operator, current_operator, resolve
from engine.reconciler import os_user


class FakeAccounts:
    """passwd: uid → (name, primary gid); group: gid → name; supplementary memberships."""

    def __init__(
        self,
        users: dict[int, tuple[str, int]],
        groups: dict[int, str],
        members: dict[str, set[int]] | None = None,
    ) -> None:
        self.users, self.groups, self.members = users, groups, members or {}

    def user(self, uid: int) -> tuple[str, int] | None:
        return self.users.get(uid)

    def group_ids(self, name: str, primary_gid: int) -> Iterable[int]:
        return [primary_gid, *sorted(self.members.get(name, set()))]

    def group_name(self, gid: int) -> str | None:
        return self.groups.get(gid)


ACCOUNTS = FakeAccounts(
    users={1001: ("alice", 1001), 1002: ("bob", 1002), 1003: ("carol", 2000), 990: ("bl931", 990)},
    groups={1001: "alice", 1002: "bob", 2000: "bl931-ops", 990: "bl931", 3000: "beamline"},
    members={"bob": {2000}, "alice": {3000}},
)
SERVICE = 990


def op(uid: int) -> Operator:
    return resolve(uid, ACCOUNTS)


def test_the_name_and_groups_come_from_the_account_databases() -> None:
    assert op(1002) == Operator(1002, "bob", frozenset({"bob", "bl931-ops"}))
    assert op(1003).groups == {"bl931-ops"}  # primary group only
    unknown = op(4242)
    assert (unknown.name, unknown.known, unknown.groups) == ("uid:4242", False, frozenset())


@pytest.mark.parametrize(
    ("uid", "allowed"),
    [
        (1001, True),  # named
        (1002, True),  # supplementary member of @bl931-ops
        (1003, True),  # primary group bl931-ops
        (990, False),  # the service user, not listed
        (4242, False),  # no passwd entry
    ],
)
def test_approvers_by_name_and_by_group(uid: int, allowed: bool) -> None:
    approvers = Approvers.parse(["alice", "@bl931-ops"])
    refusal = approvers.refusal(op(uid), service_uid=SERVICE, accounts=ACCOUNTS)
    assert (refusal is None) is allowed, refusal


def test_a_refusal_says_who_asked_and_who_may() -> None:
    approvers = Approvers.parse(["alice", "@bl931-ops"])
    refusal = approvers.refusal(op(990), service_uid=SERVICE, accounts=ACCOUNTS)
    assert (
        refusal == "bl931 (uid 990) is not an approver ([approval] approvers = alice, @bl931-ops)"
    )
    unknown = approvers.refusal(op(4242), service_uid=SERVICE, accounts=ACCOUNTS)
    assert unknown is not None and "uid 4242 has no entry in the passwd database" in unknown


def test_a_group_named_like_a_user_is_not_that_user() -> None:
    # "@alice" is alice's private group; "bl931-ops" without @ is a user nobody is.
    approvers = Approvers.parse(["bl931-ops"])
    assert approvers.refusal(op(1002), service_uid=SERVICE, accounts=ACCOUNTS) is not None
    assert (
        Approvers.parse(["@alice"]).refusal(op(1001), service_uid=SERVICE, accounts=ACCOUNTS)
        is None
    )


def test_without_approvers_only_the_service_user_decides() -> None:
    unset = Approvers.parse(None)
    assert unset.refusal(op(990), service_uid=SERVICE, accounts=ACCOUNTS) is None
    refusal = unset.refusal(op(1001), service_uid=SERVICE, accounts=ACCOUNTS)
    assert refusal is not None
    assert "approvers is not set, so only the service user bl931 (uid 990) may decide" in refusal


def test_an_empty_list_lets_nobody_decide() -> None:
    empty = Approvers.parse([])
    for uid in (990, 1001):
        refusal = empty.refusal(op(uid), service_uid=SERVICE, accounts=ACCOUNTS)
        assert refusal is not None and "approvers = nobody" in refusal


def test_the_environment_names_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    for variable in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "someone-else")
    assert current_operator().name == me
    assert current_operator().uid == os.geteuid()
    assert os_user() == me


def config_with(approval: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_config(
        {"endpoints": {"dtn": {"kind": "local", "path": "/x"}}, "approval": approval},
        source=Path("/etc/bl931/config.toml"),
    )


def test_config_accepts_users_groups_a_readers_group_and_a_size() -> None:
    approval = config_with(
        {
            "approvers": ["alice", "@bl931-ops", "svc.account", "machine$"],
            "readers_group": "bl931-ops",
            "second_approver_over_bytes": 10_000_000_000,
        }
    ).approval
    assert approval.approvers == ("alice", "@bl931-ops", "svc.account", "machine$")
    assert approval.readers_group == "bl931-ops"
    assert approval.second_approver_over_bytes == 10_000_000_000
    unset = config_with({}).approval
    assert (unset.approvers, unset.readers_group, unset.second_approver_over_bytes) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("approval", "words"),
    [
        ({"approvers": ["alice smith"]}, "'alice smith' is not a user name or @group name"),
        ({"approvers": ["@"]}, "'@' is not a user name or @group name"),
        ({"approvers": "alice"}, "approval.approvers"),
        ({"readers_group": "@ops"}, "'@ops' is not a group name"),
        ({"second_approver_over_bytes": -1}, "approval.second_approver_over_bytes"),
    ],
)
def test_config_rejects_what_names_nobody(approval: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(approval)
    assert words in str(caught.value) and "/etc/bl931/config.toml" in str(caught.value)
