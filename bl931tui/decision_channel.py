"""Where an operator's decision goes: to the running service, else (as the service user) into
the store directly, else nowhere — with the reason.

The CLI (`--approve`, `--approve-all`, `--acknowledge`) and the TUI both decide through
`decide()`. Whether this process may decide is the *service's* call when one runs (it checks the
kernel's name of the caller against its own config); this process's config is consulted only
when it writes the store itself, which only the store's owner can.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from engine.clock import SYSTEM_CLOCK
from engine.config import Config
from engine.decision_socket import NoService, ask, socket_path
from engine.errors import TransientError, UsageError
from engine.operator_decisions import (
    DecisionRequest,
    DecisionResult,
    NotPermitted,
    decide_directly,
    direct_refusal,
)
from engine.operators import Approvers, Operator, current_operator
from engine.state import StateStore


def decide(
    config: Config,
    request: DecisionRequest,
    *,
    operator: Operator | None = None,
    clock: Callable[[], datetime] = SYSTEM_CLOCK.now,
    before_direct: Callable[[StateStore], None] | None = None,
) -> DecisionResult:
    """Send a decision to the service, or record it directly as the service user.

    Args:
        config: this process's config (its state path; its approvers only for a direct write).
        request: the decision.
        operator: who decides when writing directly (default: this process's kernel identity;
            the service always names the caller itself).
        clock: the time of a direct write.
        before_direct: run on the store before a direct write (e.g. record an alert an audit
            just found, so that it can be acknowledged).

    Raises:
        NotPermitted: the service refused, or no service runs and this user may not write.
        UsageError: the service found the request wrong (an unknown action id …).
        TransientError: the service went away before answering.
    """
    path = socket_path(config.state.path)
    try:
        reply = ask(path, request.to_wire())
    except NoService:
        return decide_directly(
            config, request, operator or current_operator(), clock(), before=before_direct
        )
    except PermissionError as exc:
        group = config.approval.readers_group
        raise NotPermitted(
            f"cannot reach the bl931 service at {path} ({exc.strerror}): operators connect "
            + (
                f"as members of [approval] readers_group {group!r}"
                if group
                else "as members of the service's group"
            )
        ) from None
    except (OSError, ValueError) as exc:
        raise TransientError(
            f"the bl931 service did not answer on {path} ({exc}); the decision may or may not "
            "be recorded: check with --dry-run"
        ) from None
    if reply.get("ok"):
        return DecisionResult.from_wire(reply)
    message = str(reply.get("message") or "refused")
    if reply.get("error") == "bad_request":
        raise UsageError(message)
    raise NotPermitted(message)


def recorded_where(result: DecisionResult) -> str:
    """`recorded by the running service` / `written to the store (no service running)`."""
    if result.via == "service":
        return "recorded by the running service"
    return "written to the store directly (no service running)"


def advisory_refusal(config: Config, operator: Operator) -> str | None:
    """Why this operator could not decide right now, as far as this process can tell, or None.

    A front end shows it up front (the TUI opens read-only with it). The running service's
    answer is what counts: it checks its own config, which may differ from this one.
    """
    path = config.state.path
    if socket_path(path).exists():
        try:
            owner_uid = path.stat().st_uid
        except FileNotFoundError:
            return None
        return Approvers.parse(config.approval.approvers).refusal(operator, service_uid=owner_uid)
    return direct_refusal(config, operator)
