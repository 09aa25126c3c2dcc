"""Property: no route ever shows a user a document they may not read.

Random users (random group sets) ask random questions and open every document and chunk
id there is; no response may contain the text, title, source, id or chunk id of a
document outside their groups, in any route's output. Real store, embedder and server;
extractive answers (the property does not depend on the model).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from core.types import Principal
from tests.serve.conftest import Api

POOL = ("legal", "hr", "finance")
WORDS = ("budget", "travel", "contract", "salary", "office", "robot", "audit", "policy")


@dataclass(frozen=True)
class Doc:
    doc_id: str
    groups: tuple[str, ...]
    secrets: tuple[str, ...]  # strings only its readers may ever see
    chunk_ids: tuple[str, ...]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory,
           real_embedder: Embedder) -> Iterator[tuple[Api, list[Doc]]]:
    root = tmp_path_factory.mktemp("access")
    container = Container(Settings(data_dir=root / "data", answer={"mode": "extractive"},
                                   serve={"rate_per_minute": 100_000}), embedder=real_embedder)
    rng = random.Random(7)
    docs = []
    for n in range(8):
        groups = tuple(sorted(rng.sample(POOL, rng.randint(0, 2))))
        token = f"secret{n:02d}qz"
        folder = root / f"doc{n}"
        folder.mkdir()
        path = folder / f"file-{token}.md"
        words = " ".join(rng.sample(WORDS, 4))
        path.write_text(f"# Title {token}\n\nThe {words} note {token} says the {words} rules "
                        f"apply from day {n}. Another {words} line about {token}.\n")
        result = container.ingestor.ingest([path], groups).files[0]
        assert result.status == "ingested", result
        chunks = container.searcher.search(token, Principal("root", POOL), k=20)
        chunk_ids = tuple(h.chunk.chunk_id for h in chunks if h.chunk.doc_id == result.doc_id)
        assert chunk_ids
        docs.append(Doc(result.doc_id or "", groups, (token, str(path)), chunk_ids))
    api = Api(container)
    yield api, docs
    api.stop()
    container.close()


_users = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.sets(st.sampled_from(POOL)),
       question=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join))
def test_no_route_reveals_an_unreadable_document(corpus: tuple[Api, list[Doc]],
                                                 groups: set[str], question: str) -> None:
    api, docs = corpus
    principal = Principal(f"user{next(_users)}", tuple(sorted(groups)))
    key = api.container.users.add(principal.user_id, principal.groups, ("employee",))
    seen: list[str] = []
    with httpx.Client(base_url=api.base, timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        def get(method: str, path: str, **kw: object) -> httpx.Response:
            response = http.request(method, path, **kw)  # type: ignore[arg-type]
            assert response.status_code < 500, response.text
            seen.append(response.text)
            return response

        get("POST", "/v1/chat", json={"question": question})
        get("POST", "/v1/chat", json={"question": question, "stream": True})
        get("POST", "/v1/chat/completions",
            json={"model": "enclave", "messages": [{"role": "user", "content": question}]})
        get("GET", "/v1/conversations")
        for doc in docs:
            readable = principal.may_read(doc.groups)
            assert (get("GET", f"/v1/documents/{doc.doc_id}").status_code == 200) == readable
            for chunk_id in doc.chunk_ids:
                assert (get("GET", f"/v1/chunks/{chunk_id}").status_code == 200) == readable
    # Not even an error about an id the user asked for may repeat it.
    everything = "\n".join(seen)
    for doc in docs:
        if not principal.may_read(doc.groups):
            for secret in (doc.doc_id, *doc.secrets, *doc.chunk_ids):
                assert secret not in everything, (secret, doc.groups, groups)
