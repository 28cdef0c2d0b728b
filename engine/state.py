"""The state store's historical import path: `from engine.state import StateStore, ...`.

The store itself is the package `engine.store` (one module per aggregate; its docstring lists
them). This module only re-exports it — every name in `engine.store.__all__`, the one list of
what the store offers — so every caller keeps importing from here.
"""

from __future__ import annotations

from engine.store import *  # noqa: F403 - the re-export is the point of this module
from engine.store import __all__ as __all__
