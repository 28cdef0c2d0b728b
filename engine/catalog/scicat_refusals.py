"""What each SciCat refusal means, naming the backend or bl931 setting to change.

The backend's permission model (`src/casl/casl-ability.factory.ts`) and create checks
(`src/datasets/datasets.controller.ts`) are set by environment variables of the backend; an operator
reading one of these messages can hand it to the SciCat admin as is. Each is needs-human: retrying
cannot help until someone changes a setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.catalog.scicat_http import AuthRejected
from engine.errors import NeedsHumanError


def another_group(pid: str, who: str, rejected: AuthRejected) -> NeedsHumanError:
    """A 403 on GET of a pid bl931 should own, with a valid session."""
    return NeedsHumanError(
        f"SciCat dataset {pid} exists but belongs to another group or account ({rejected}): "
        f"{who} can neither read nor update it. Either the account is not in the dataset's "
        "ownerGroup ([catalog] owner_group must be one of the account's groups), or another "
        "deployment registered this pid ([catalog] pid_prefix / [beamline] name collide)"
    )


def cannot_create(pid: str, who: str, owner_group: str, rejected: AuthRejected) -> NeedsHumanError:
    return NeedsHumanError(
        f"SciCat refused to create {pid} for {who} ({rejected}). bl931 creates datasets with "
        "their own pid, so on the backend the account must be in CREATE_DATASET_WITH_PID_GROUPS "
        f"and in the dataset's ownerGroup {owner_group!r} ([catalog] owner_group), or in "
        "CREATE_DATASET_PRIVILEGED_GROUPS"
    )


def pid_not_accepted(pid: str, prefix: str, detail: str) -> NeedsHumanError:
    return NeedsHumanError(
        f"SciCat rejected the pid {pid} ({detail.strip()}): the backend validates new pids "
        "(DATASET_CREATION_VALIDATION_ENABLED with DATASET_CREATION_VALIDATION_REGEX). Set "
        f"[catalog] pid_prefix (now {prefix!r}) to the site's PID_PREFIX so that "
        "'<pid_prefix>/<uuid>' matches the pattern, or ask the SciCat admin to allow it"
    )


def not_in_owner_group(
    owner_group: str, who: str, groups: Sequence[str] | None, rejected: AuthRejected | None
) -> NeedsHumanError:
    have = f" (its groups: {', '.join(groups) or 'none'})" if groups is not None else ""
    answer = f" ({rejected})" if rejected else ""
    return NeedsHumanError(
        f"{who} is not in the ownerGroup {owner_group!r} it writes{have}{answer}: SciCat would let "
        "it create datasets it can then neither read nor update. Set [catalog] owner_group to one "
        "of the account's groups, or have the SciCat admin add the account to the group "
        "(its accessGroups in the user identity, or a role)"
    )


def cannot_update(pid: str, owner_group: str, who: str, rejected: AuthRejected) -> NeedsHumanError:
    return NeedsHumanError(
        f"SciCat refused to update {pid} for {who} ({rejected}): the account must be in the "
        f"dataset's ownerGroup {owner_group!r} ([catalog] owner_group); for the lifecycle alone, "
        "UPDATE_DATASET_LIFECYCLE_GROUPS on the backend also allows it"
    )
