"""Fixtures chain settings -> container -> services, with real components throughout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import core  # noqa: F401  - telemetry off before any library loads
from core.container import Container
from core.ports import Embedder
from core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ENCLAVE = Path(sys.executable).parent / "enclave"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail if ``proc`` exits or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc is None or proc.poll() is None, f"the server exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout_s:g} s"
        time.sleep(0.2)


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (../shared exists only on our machines)")
    return path


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (the server running on this machine), dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"enclave_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def real_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The default embedder (all-MiniLM-L6-v2 from its package, int8 in ONNX Runtime, as
    `make install` prepared it), loaded once for the whole session."""
    from ingest.embed_onnx import OnnxInt8Embedder

    embedder = OnnxInt8Embedder(tmp_path_factory.mktemp("models"))
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def fp32_embedder() -> Embedder:
    """The same model in fp32 PyTorch (ENCLAVE_EMBEDDING__MODE=sentence-transformers)."""
    from ingest.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def container(settings: Settings, real_embedder: Embedder) -> Iterator[Container]:
    c = Container(settings, embedder=real_embedder)
    yield c
    c.close()


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from serve.cli.demo import write_samples

    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env["ENCLAVE_DATA_DIR"] = str(tmp_path / "cli-data")
    return env
