"""Retention policy → desired placement per scan. Pure: values in, values out.

The `Policy` is the part of the configuration the planner needs, flattened into plain values so
the planner never touches pydantic models or the filesystem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from engine.config import Config
from engine.model import ActionKind, Level, Scan


@dataclass(frozen=True, slots=True)
class RetentionRule:
    keep_days: float
    delete_requires: tuple[str, ...]
    verify: Level = Level.CHECKSUM


@dataclass(frozen=True)
class Policy:
    inventory_endpoint: str
    endpoints: tuple[str, ...]  # make-before-break order: inventory first, then copy targets
    copies: tuple[tuple[str, str], ...]  # (from, to) in configured order
    retention: Mapping[str, RetentionRule] = field(default_factory=dict)
    tape: frozenset[str] = frozenset()
    approval_for: frozenset[ActionKind] = frozenset({ActionKind.DELETE})
    max_missing_fraction: float = 0.1
    max_deletes_per_pass: int = 1000
    max_observation_age_seconds: float = 3600.0
    catalog_enabled: bool = True
    catalog_required_for_delete: bool = True

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        return cls(
            inventory_endpoint=config.inventory.endpoint,
            endpoints=tuple(config.endpoint_order()),
            copies=tuple((c.from_, c.to) for c in config.copies),
            retention={
                name: RetentionRule(r.keep_days, tuple(r.delete_requires), r.verify_level)
                for name, r in config.retention.items()
            },
            tape=frozenset(n for n, e in config.endpoints.items() if e.tape or e.kind == "tape"),
            approval_for=frozenset(config.approval.required_for),
            max_missing_fraction=config.safety.max_missing_fraction,
            max_deletes_per_pass=config.safety.max_deletes_per_pass,
            max_observation_age_seconds=config.safety.max_observation_age,
            catalog_enabled=config.catalog.kind != "none",
            catalog_required_for_delete=config.catalog.required_for_delete,
        )

    @property
    def registration_endpoint(self) -> str | None:
        """The first copy target after the inventory endpoint: registering waits for it."""
        for source, target in self.copies:
            if source == self.inventory_endpoint:
                return target
        return None

    @cached_property
    def children_of(self) -> dict[str, tuple[str, ...]]:
        return {
            name: tuple(target for source, target in self.copies if source == name)
            for name in self.endpoints
        }

    def children(self, endpoint: str) -> tuple[str, ...]:
        return self.children_of.get(endpoint, ())

    @cached_property
    def targets_bottom_up(self) -> tuple[str, ...]:
        """Copy targets, every one after all the targets downstream of it."""
        order: list[str] = []

        def visit(name: str, path: frozenset[str]) -> None:
            for child in self.children(name):
                if child not in order and child not in path:
                    visit(child, path | {child})
            if name not in order:
                order.append(name)

        for _, target in self.copies:
            visit(target, frozenset({target}))
        return tuple(order)

    @cached_property
    def keep(self) -> dict[str, timedelta]:
        return {name: timedelta(days=rule.keep_days) for name, rule in self.retention.items()}

    def delete_due_at(self, scan: Scan, endpoint: str) -> datetime | None:
        """When retention lets the copy at `endpoint` go (None: kept forever)."""
        keep = self.keep.get(endpoint)
        return None if keep is None else scan.acquired_at + keep
