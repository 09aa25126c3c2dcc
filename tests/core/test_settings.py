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
    from serve.cli.common import shared_settings

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


_REAL = {
    "ENCLAVE_ENV": "production",
    "ENCLAVE_DATABASE_URL": "postgresql+psycopg://enclave:Zq8vR2mT5xLw@postgres:5432/enclave",
    "ENCLAVE_QDRANT__URL": "http://qdrant:6333",
    "ENCLAVE_QDRANT__API_KEY": "k7PZ3n9QeV4sY1tB",
    "ENCLAVE_JOBS__BROKER_URL": "redis://:W3fH8kL2pN6r@redis:6379/0",
    "ENCLAVE_LLM__BASE_URL": "http://vllm:8000/v1",
    "ENCLAVE_LLM__API_KEY": "vJ4mC9xR2bT7",
    "ENCLAVE_SERVE__METRICS_TOKEN": "mT6yU1iO8pA3",
    "ENCLAVE_AUDIT__SEAL_KEY_FILE": "/run/secrets/audit_seal_key",
}


def _production(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("ENCLAVE_")]:
        monkeypatch.delenv(key)
    for key, value in {**_REAL, **changes}.items():
        if value is not None:
            monkeypatch.setenv(key, value)


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch):
    _production(monkeypatch)
    s = Settings()
    assert s.env == "production" and s.qdrant.mode == "server"


@pytest.mark.parametrize(("key", "value", "named"), [
    ("ENCLAVE_DATABASE_URL", "postgresql+psycopg://enclave:change-me-db@postgres/enclave",
     "ENCLAVE_DATABASE_URL (password)"),
    ("ENCLAVE_QDRANT__API_KEY", "change-me-qdrant", "ENCLAVE_QDRANT__API_KEY"),
    ("ENCLAVE_QDRANT__API_KEY", None, "ENCLAVE_QDRANT__API_KEY"),  # a server needs one
    ("ENCLAVE_JOBS__BROKER_URL", "redis://:CHANGEME@redis:6379/0",
     "ENCLAVE_JOBS__BROKER_URL (password)"),
    ("ENCLAVE_JOBS__BROKER_URL", "amqp://guest:guest@rabbit:5672//",
     "ENCLAVE_JOBS__BROKER_URL (password)"),
    ("ENCLAVE_LLM__API_KEY", "", "ENCLAVE_LLM__API_KEY"),
    ("ENCLAVE_SERVE__METRICS_TOKEN", "  ", "ENCLAVE_SERVE__METRICS_TOKEN"),
    # A key made on first use would sit in the data directory, beside what it seals.
    ("ENCLAVE_AUDIT__SEAL_KEY_FILE", None, "ENCLAVE_AUDIT__SEAL_KEY_FILE"),
])
def test_production_refuses_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str | None, named: str
):
    _production(monkeypatch, **{key: value})
    with pytest.raises(ValidationError) as caught:
        Settings()
    # What the CLI prints (serve.cli.main): the messages, not pydantic's echo of the input.
    message = "; ".join(e["msg"] for e in caught.value.errors())
    assert named in message
    assert value is None or not value.strip() or value not in message  # names, never values


def test_development_allows_placeholders(monkeypatch: pytest.MonkeyPatch):
    _production(monkeypatch, ENCLAVE_ENV="development", ENCLAVE_QDRANT__API_KEY="change-me")
    assert Settings().qdrant.api_key == "change-me"


def test_deployment_settings(monkeypatch: pytest.MonkeyPatch):
    _production(monkeypatch, ENCLAVE_QDRANT__SHARDS="6", ENCLAVE_QDRANT__REPLICATION_FACTOR="2",
                ENCLAVE_DATABASE_MIGRATE="verify", ENCLAVE_LOG__FORMAT="json",
                ENCLAVE_JOBS__METRICS_PORT="9101")
    s = Settings()
    assert (s.qdrant.shards, s.qdrant.replication_factor, s.qdrant.write_consistency) == (6, 2, 1)
    assert s.database_migrate == "verify" and s.log.format == "json" and not s.log.content
    assert s.jobs.metrics_port == 9101
    _production(monkeypatch, ENCLAVE_QDRANT__SHARDS="0")
    with pytest.raises(ValidationError):
        Settings()
