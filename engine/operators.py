"""Who is asking, and may they decide? Operator identity and `[approval] approvers`.

An operator is the *kernel's* user of a process: the effective uid of this process
(`os.geteuid()`), or of the peer of the service's decision socket (`SO_PEERCRED`), named by
the passwd and group databases. Never by the environment: `$USER`, `$LOGNAME` and friends are
set by whoever starts the process, so a name taken from them proves nothing.

`[approval] approvers` lists who may decide (approve, reject, hold, release, retry,
acknowledge): `"alice"` is a user, `"@bl931-ops"` every member of a group (its primary members
from passwd and the members the group database lists, as `initgroups` sees them). Without the
key, only the service user — the owner of the state store — decides.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

APPROVER_ENTRY = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?")
"""One `approvers` entry: a user name, or `@` and a group name (POSIX portable names)."""


@dataclass(frozen=True, slots=True)
class Operator:
    """A person (or the service user) as the kernel and the account databases know them.

    Attributes:
        uid: the effective uid the kernel reports.
        name: the passwd name of `uid`, or `uid:N` when the uid has no entry.
        groups: names of every group the user belongs to (primary and supplementary).
        known: whether `uid` has a passwd entry (an unknown uid matches no approver).
    """

    uid: int
    name: str
    groups: frozenset[str] = frozenset()
    known: bool = True

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid})"


class Accounts(Protocol):
    """The account databases, injectable so tests can name users the machine does not have."""

    def user(self, uid: int) -> tuple[str, int] | None:
        """(name, primary gid) of a uid, or None."""
        ...

    def group_ids(self, name: str, primary_gid: int) -> Iterable[int]:
        """Every gid the user is a member of, the primary one included."""
        ...

    def group_name(self, gid: int) -> str | None: ...


class SystemAccounts:
    """passwd and group through NSS (files, LDAP, sssd: whatever the host is set up with)."""

    def user(self, uid: int) -> tuple[str, int] | None:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return None
        return entry.pw_name, entry.pw_gid

    def group_ids(self, name: str, primary_gid: int) -> Iterable[int]:
        # `getgrouplist` asks NSS the way login does (initgroups), so LDAP groups are found
        # even where enumerating every group is switched off.
        try:
            return os.getgrouplist(name, primary_gid)
        except OSError:
            return [primary_gid]

    def group_name(self, gid: int) -> str | None:
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return None


SYSTEM_ACCOUNTS = SystemAccounts()


def resolve(uid: int, accounts: Accounts = SYSTEM_ACCOUNTS) -> Operator:
    """The operator the kernel says `uid` is, named by the account databases."""
    entry = accounts.user(uid)
    if entry is None:
        return Operator(uid=uid, name=f"uid:{uid}", known=False)
    name, primary = entry
    names = {accounts.group_name(gid) for gid in {primary, *accounts.group_ids(name, primary)}}
    return Operator(uid=uid, name=name, groups=frozenset(n for n in names if n))


def current_operator(accounts: Accounts = SYSTEM_ACCOUNTS) -> Operator:
    """The operator running this process: its effective uid, never `$USER`."""
    return resolve(os.geteuid(), accounts)


def operator_name() -> str:
    """This process's operator name, for records (`initialised_by`, a TUI's title)."""
    return current_operator().name


@dataclass(frozen=True, slots=True)
class Approvers:
    """`[approval] approvers`, parsed: users and groups, or None (the service user alone)."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    configured: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str] | None) -> Approvers:
        if entries is None:
            return cls()
        users = {e for e in entries if not e.startswith("@")}
        groups = {e[1:] for e in entries if e.startswith("@")}
        return cls(frozenset(users), frozenset(groups), configured=True)

    def words(self) -> str:
        """The configured list as the operator wrote it, for messages."""
        listed = sorted(self.users) + [f"@{g}" for g in sorted(self.groups)]
        return ", ".join(listed) if listed else "nobody"

    def refusal(
        self, operator: Operator, *, service_uid: int, accounts: Accounts = SYSTEM_ACCOUNTS
    ) -> str | None:
        """None if `operator` may decide; otherwise why not, in words an operator can act on.

        Args:
            operator: who asks (kernel identity).
            service_uid: the uid of the service user (the owner of the state store), who alone
                decides while `approvers` is not configured.
            accounts: the account databases (to name the service user in the message).
        """
        if not self.configured:
            if operator.uid == service_uid:
                return None
            owner = accounts.user(service_uid)
            owner_name = owner[0] if owner else f"uid:{service_uid}"
            return (
                f"{operator.describe()} is not an approver: [approval] approvers is not set, "
                f"so only the service user {owner_name} (uid {service_uid}) may decide"
            )
        if operator.known and (operator.name in self.users or operator.groups & self.groups):
            return None
        if not operator.known:
            return (
                f"uid {operator.uid} has no entry in the passwd database, so it matches no "
                f"approver ([approval] approvers = {self.words()})"
            )
        return f"{operator.describe()} is not an approver ([approval] approvers = {self.words()})"
