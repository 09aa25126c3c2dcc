"""Which secrets of a production configuration are still placeholders.

``.env.example`` ships every secret as ``change-me-...`` so that a copy that was never
edited cannot start: in production (``ENCLAVE_ENV=production``) the settings refuse one
that is empty, still says change-me, or is a well-known default password.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from core.settings import Settings

_PLACEHOLDER = re.compile(r"change[-_ ]?me", re.IGNORECASE)
_WELL_KNOWN = {"password", "secret", "guest", "postgres", "admin", "root", "enclave", "qdrant"}


def is_placeholder(value: str | None) -> bool:
    if value is None:
        return True
    value = value.strip()
    return not value or bool(_PLACEHOLDER.search(value)) or value.lower() in _WELL_KNOWN


def placeholders(settings: Settings) -> list[str]:
    """The variables whose secret is missing or a placeholder (names only, never values)."""
    found = []
    if settings.database_url and _url_password_is_placeholder(settings.database_url):
        found.append("ENCLAVE_DATABASE_URL (password)")
    if settings.qdrant.mode == "server" and is_placeholder(settings.qdrant.api_key):
        found.append("ENCLAVE_QDRANT__API_KEY")
    if settings.llm.api_key is not None and is_placeholder(settings.llm.api_key):
        found.append("ENCLAVE_LLM__API_KEY")
    if settings.jobs.mode == "celery" and _url_password_is_placeholder(settings.jobs.broker_url):
        found.append("ENCLAVE_JOBS__BROKER_URL (password)")
    if settings.serve.metrics_token is not None and is_placeholder(settings.serve.metrics_token):
        found.append("ENCLAVE_SERVE__METRICS_TOKEN")
    if settings.audit.seal_key_file is None:
        # Made on first use in development; in production, a key in the data directory
        # would sit beside what it guards (see docs/deploy.md).
        found.append("ENCLAVE_AUDIT__SEAL_KEY_FILE")
    return found


def _url_password_is_placeholder(url: str) -> bool:
    # A URL without a password is a deliberate choice (peer or socket authentication);
    # one with a password must have a real one.
    try:
        password = make_url(url).password
    except ArgumentError:
        return False
    return password is not None and is_placeholder(str(password))
