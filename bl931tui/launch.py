"""Start the Textual TUI (imported only in TUI mode, so headless modes never load Textual)."""

from __future__ import annotations

import argparse
import sys

from engine.config import Config
from engine.service import ServiceLoop


def run_tui(config: Config, args: argparse.Namespace) -> int:
    try:
        from bl931tui.app import run_app
    except ImportError as exc:  # the TUI package is optional at this stage of development
        print(
            f"bl931tui: the TUI is not available ({exc}); use --dry-run or --reconcile",
            file=sys.stderr,
        )
        return 1
    return run_app(config, args)


def run_tui_with_engine(config: Config, args: argparse.Namespace, loop: ServiceLoop) -> int | None:
    """The TUI with the engine loop in a background worker (the demo); None if no TUI."""
    try:
        from bl931tui.app import run_app
    except ImportError:
        return None
    return run_app(config, args, engine_loop=loop)
