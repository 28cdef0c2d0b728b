"""Observation: what a pass sees before it plans.

- `assess`: one listed replica + its stored evidence → its verification level (`assess`,
  `Assessed`); this package re-exports those names, and imports nothing else, so the executor,
  the rehasher and the tape versions can use them without loading the observer;
- `observation`: `Observation`, everything one pass saw;
- `observer`: `Observer`, which reads the inventory, every endpoint and the catalog;
- `inventory`: the inventory walk (and the listing it lends the inventory endpoint);
- `assessments`: last pass's verdicts, reused while their inputs are the very same;
- `identities`: which local endpoints are provably their storage this pass;
- `record`: what a pass writes of what it saw (new scans, replica rows, endpoint health).
"""

from __future__ import annotations

from engine.observe.assess import Assessed, assess, inventory_signature, size_level

__all__ = ["Assessed", "assess", "inventory_signature", "size_level"]
