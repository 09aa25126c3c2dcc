"""The collection enclave creates on a Qdrant server carries the cluster layout settings."""

from __future__ import annotations

from typing import Any

from qdrant_client import QdrantClient

from core.container import Container
from core.settings import Settings
from retrieval.client_store import ClientStore, Layout


class _Recording(QdrantClient):
    """qdrant-client's own local mode, remembering how collections were created."""

    created: dict[str, Any]

    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created = kwargs
        return super().create_collection(collection_name, **kwargs)


def test_layout_reaches_create_collection_and_the_collection_works() -> None:
    client = _Recording(location=":memory:")
    store = ClientStore(client, "laid-out", Layout(shards=6, replication_factor=2, write_consistency=2))
    store.ensure_collection(8)
    assert (client.created["shard_number"], client.created["replication_factor"],
            client.created["write_consistency_factor"]) == (6, 2, 2)
    assert store.count() == 0  # the collection exists and answers


def test_the_container_passes_the_settings_on() -> None:
    settings = Settings(qdrant={"url": "http://127.0.0.1:9", "shards": 3, "replication_factor": 2})
    store = Container(settings).store
    assert isinstance(store, ClientStore)
    assert store.layout == Layout(shards=3, replication_factor=2, write_consistency=1)
    store.close()
