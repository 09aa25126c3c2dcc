"""What every other package needs: settings, domain types, errors, and the container.

Importing this package first switches every library's telemetry off and keeps
their caches out of the home folder (see :mod:`core.offline`).
"""

from core import offline as _offline

_offline.apply()
