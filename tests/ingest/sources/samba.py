"""The tests' real smbd: the code lives in :mod:`eval.servers.samba` (``enclave bench
sources`` starts it too); re-exported here for the tests that import it from this module."""

from eval.servers.samba import *  # noqa: F403
from eval.servers.samba import (
    ENGINEERING,
    FINANCE,
    PASSWORD,
    SHARE,
    USER,
    Samba,
    ensure_accounts,
    free_port,
    missing,
    running_smbd,
)

__all__ = ["ENGINEERING", "FINANCE", "PASSWORD", "SHARE", "USER", "Samba", "ensure_accounts",
           "free_port", "missing", "running_smbd"]
