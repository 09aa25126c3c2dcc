"""The tests' real Dovecot: the code lives in :mod:`eval.servers.dovecot` (``enclave bench
sources`` starts it too); re-exported here for the tests that import it from this module."""

from eval.servers.dovecot import *  # noqa: F403
from eval.servers.dovecot import DOVECOT, PASSWORD, USER, Dovecot, free_port

__all__ = ["DOVECOT", "PASSWORD", "USER", "Dovecot", "free_port"]
