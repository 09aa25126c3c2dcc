"""A worker's liveness, as a file its main process touches on every recovery pass.

A container health check runs in a process of its own, so it cannot ask the worker's
threads; Celery's remote ``ping`` needs a broker round trip and the worker's node name.
The file lives in the data dir, named by host, so scaled workers sharing a volume do not
vouch for each other.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from core.settings import Settings


def heartbeat_path(settings: Settings) -> Path:
    return settings.resolved_data_dir / "run" / f"worker-{socket.gethostname()}.alive"


def beat(settings: Settings) -> None:
    path = heartbeat_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def age_s(settings: Settings) -> float | None:
    """Seconds since the last beat; None when this host's worker never beat."""
    try:
        return time.time() - heartbeat_path(settings).stat().st_mtime
    except FileNotFoundError:
        return None


def max_age_s(settings: Settings) -> float:
    # Beats come every recovery interval (workers/tasks.py); a few missed ones mean stuck.
    return max(60.0, 4 * recovery_interval_s(settings))


def recovery_interval_s(settings: Settings) -> float:
    return max(1.0, settings.jobs.stale_after_s / 2)
