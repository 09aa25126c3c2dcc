"""The container as the CLI uses it: the parsers are quieted only where something parses."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from core.container import Container

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor


class CliContainer(Container):
    @cached_property
    def ingestor(self) -> Ingestor:
        # Every command that parses does it through the ingestor (ingest, demo, inline jobs,
        # syncs). Quieting the parsers here, not when any command starts, spares search,
        # status, users, jobs and audit importing every parser just to set its log level.
        from ingest.parse import quiet_parsers

        quiet_parsers()
        return super().ingestor
