from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch):
    for key in ("ENCLAVE_QDRANT__URL", "ENCLAVE_QDRANT__MODE", "ENCLAVE_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    s = Settings(data_dir=Path("/tmp/x"))
    assert s.qdrant.mode == "edge"
    assert s.resolved_database_url == "sqlite:////tmp/x/enclave.db"


def test_nested_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENCLAVE_QDRANT__URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("ENCLAVE_CHUNKING__MAX_TOKENS", "128")
    monkeypatch.setenv("ENCLAVE_DATA_DIR", "/srv/enclave")
    s = Settings()
    assert s.qdrant.mode == "server"  # a URL alone means a server
    assert s.chunking.max_tokens == 128
    assert s.resolved_data_dir == Path("/srv/enclave")


def test_server_mode_needs_a_url(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ENCLAVE_QDRANT__URL", raising=False)
    monkeypatch.setenv("ENCLAVE_QDRANT__MODE", "server")
    with pytest.raises(ValidationError):
        Settings()


def test_serve_shares_the_embedded_store_unless_told_it_is_alone(monkeypatch: pytest.MonkeyPatch):
    from serve.cli_common import shared_settings

    monkeypatch.delenv("ENCLAVE_QDRANT__HOLD_OPEN", raising=False)
    assert shared_settings().qdrant.hold_open is False
    monkeypatch.setenv("ENCLAVE_QDRANT__HOLD_OPEN", "true")  # serve is the store's only user
    assert shared_settings().qdrant.hold_open is True
    monkeypatch.setenv("ENCLAVE_QDRANT__HOLD_OPEN", "false")
    assert shared_settings().qdrant.hold_open is False


def test_search_and_embedding_modes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENCLAVE_SEARCH__FUSION", "minmax")
    monkeypatch.setenv("ENCLAVE_SEARCH__DENSE_WEIGHT", "0.6")
    monkeypatch.setenv("ENCLAVE_EMBEDDING__MODE", "onnx-int8")
    s = Settings()
    assert (s.search.fusion, s.search.dense_weight, s.embedding.mode) == ("minmax", 0.6, "onnx-int8")
    monkeypatch.setenv("ENCLAVE_SEARCH__DENSE_WEIGHT", "1.5")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("ENCLAVE_SEARCH__FUSION")
    monkeypatch.delenv("ENCLAVE_SEARCH__DENSE_WEIGHT")
    assert Settings().search.fusion == "dbsf"  # the measured best (README)
