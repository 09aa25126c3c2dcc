"""A container that syncs sources inline (no broker), on SQLite and the real embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.container import Container
from core.ports import Embedder
from core.settings import Settings


@pytest.fixture
def c(tmp_path: Path, real_embedder: Embedder) -> Iterator[Container]:
    container = Container(Settings(data_dir=tmp_path / "data", jobs={"mode": "inline"}),
                          embedder=real_embedder)
    yield container
    container.close()
