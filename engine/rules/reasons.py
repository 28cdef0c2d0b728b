"""`ReasonCode`: why something the policy wants is not planned now (the plan's `blocked`).

The values are a public contract: they appear in the audit JSON (`blocked[].reason_code`), in
the state store's findings, in the TUI and in docs/audit.md's table of reason codes, which a test
holds equal to this enum. Add a code here and to that table together; never rename a value.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Every `reason_code` the planner gives a blocked entry."""

    # an intended state: settled
    RETENTION_NOT_REACHED = "retention_not_reached"
    ON_HOLD = "on_hold"
    REJECTED = "rejected"
    EXPORT_CONTROLLED = "export_controlled"
    # comes by itself: work pending
    WAITING_FOR_SOURCE = "waiting_for_source"
    COPY_UNVERIFIED = "copy_unverified"
    NOT_CATALOGUED = "not_catalogued"
    STILL_NEEDED = "still_needed"
    REQUIRED_BY_OTHER_DELETE = "required_by_other_delete"
    REQUIRED_COPY_BEING_DELETED = "required_copy_being_deleted"
    SOURCE_IN_USE = "source_in_use"
    DELETE_CAP_REACHED = "delete_cap_reached"
    BACKING_OFF = "backing_off"
    CHANGED_SINCE_INVENTORY = "changed_since_inventory"
    LAST_COPY = "last_copy"
    EXPORT_CONTROL_UNKNOWN = "export_control_unknown"
    WAITING_FOR_BUNDLE = "waiting_for_bundle"
    # needs a person
    ENDPOINT_UNKNOWN = "endpoint_unknown"
    CATALOG_UNAVAILABLE = "catalog_unavailable"
    OBSERVATION_STALE = "observation_stale"
    MISSING_FRACTION_EXCEEDED = "missing_fraction_exceeded"
    NEEDS_ATTENTION = "needs_attention"
    FAILED = "failed"
    SOURCE_MISSING = "source_missing"
    VERSION_CONFLICT = "version_conflict"
