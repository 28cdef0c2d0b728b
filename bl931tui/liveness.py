"""Whether the process that wrote the heartbeat still runs, when this host can tell.

The service and the TUI usually share the flow VM: the heartbeat names the service's pid and
host, so a service that died (killed, crashed) is seen at once instead of after its heartbeat
grows old. On another host, or without a pid, nothing can be told (None).
"""

from __future__ import annotations

import os
import socket

from bl931tui.readmodel import Heartbeat


def owner_alive(beat: Heartbeat | None) -> bool | None:
    """True/False for a heartbeat written on this host; None when this cannot be told."""
    if beat is None or beat.pid is None or beat.host != socket.gethostname():
        return None
    try:
        os.kill(beat.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except OSError:
        return None
    return True
