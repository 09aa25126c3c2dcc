"""Closed sets of names that the CLI's help text shows: the roles a user may hold and the
kinds a source may be. They live apart from the tables that store them (core/users.py,
core/sources.py) so that `enclave --help` can name them without loading SQLAlchemy."""

from __future__ import annotations

from typing import Literal

ROLES = ("employee", "auditor", "admin")

Kind = Literal["folder", "smb", "imap", "web"]
KINDS: tuple[Kind, ...] = ("folder", "smb", "imap", "web")
