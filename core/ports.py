"""The seams other packages talk through, and deterministic fakes beside them.

Implementations live in ``ingest`` (embedder) and ``retrieval`` (sparse encoder, vector
stores); :mod:`core.container` builds them from settings. Code that needs one of them
asks for the Protocol, so ``retrieval`` never imports ``ingest`` and vice versa.
"""

from __future__ import annotations

import collections.abc
import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.types import Chunk, Document, Hit, SparseVector


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str:
        """Which vector space these are: model, mode and recipe (``onnx-int8/<model>/int8-v1``).

        The registry records it with every version written, so that a change of embedder
        re-embeds rather than mixing two spaces in one collection."""
        ...

    @property
    def dim(self) -> int:
        """Length of the vectors :meth:`embed` returns."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length vectors, one row per text."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """The model's own tokens, so chunks can be sized to what it reads."""
        ...


class SparseEncoder(Protocol):
    def encode_document(self, text: str) -> SparseVector: ...

    def encode_query(self, text: str) -> SparseVector: ...


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk with everything the store keeps beside it."""

    chunk: Chunk
    document: Document
    title: str
    dense: Sequence[float]
    sparse: SparseVector
    ingested_at: datetime


class VectorStore(Protocol):
    """One Qdrant collection with a named dense and a named sparse vector."""

    def ensure_collection(self, dim: int) -> None: ...

    def upsert(self, points: Sequence[StoredChunk]) -> None: ...

    def hybrid_search(
        self,
        dense: Sequence[float],
        sparse: SparseVector,
        groups: Sequence[str],
        limit: int,
        prefetch: int,
        fusion: str,
    ) -> list[Hit]:
        """Dense and sparse retrieval fused in one query, the access filter inside it."""
        ...

    def nearest(
        self, vector: Sequence[float] | SparseVector, groups: Sequence[str], limit: int
    ) -> list[Hit]:
        """One kind of retrieval alone (dense or sparse), the access filter inside it."""
        ...

    def retrieve(self, chunk_ids: Sequence[str]) -> list[Chunk]: ...

    def count(self, doc_id: str | None = None, version: str | None = None) -> int: ...

    def doc_counts(self) -> dict[str, int]:
        """Points per doc_id, over the whole collection (for repair)."""
        ...

    def versions_of(self, doc_id: str) -> set[str]: ...

    def delete(self, doc_id: str, version: str | None = None) -> None:
        """Delete a document's points: one version, or all of them."""
        ...

    def set_access(self, doc_id: str, groups: Sequence[str]) -> None: ...

    def optimize(self) -> bool:
        """Build indexes and merge segments now, where the engine leaves that to its caller;
        True when there was something to do."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """Group operations: the embedded store opens once for the block (a server: no-op)."""
        ...

    def close(self) -> None: ...


class JobQueue(Protocol):
    """Where job work goes: Celery's broker (workers/queue.py) or this process (inline)."""

    def send_plan(self, job_id: str) -> None:
        """Walk a job's folders into items."""
        ...

    def send_item(self, item_id: int) -> None:
        """Ingest one item of a job."""
        ...


# One chat message: {"role": "system" | "user" | "assistant", "content": "..."}.
Message = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one generation took, as the model itself counted them."""

    prompt_tokens: int
    completion_tokens: int


class Generation(Iterator[str]):
    """One generation: the model's reply as it streams, then what it took.

    Wraps a generator of the reply's pieces whose return value is the :class:`Usage` the
    model reported (None when it reported none): ``usage`` is set once the pieces have run
    out, so it costs the caller nothing to ask and nothing is counted twice. One object per
    generation, so concurrent answers never read each other's counts.
    """

    def __init__(self, pieces: collections.abc.Generator[str, None, Usage | None]) -> None:
        self._pieces = pieces
        self.usage: Usage | None = None

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as end:
            self.usage = end.value
            raise

    def close(self) -> None:
        """Stop the generation now: a llama.cpp stream holds the model's lock until closed."""
        self._pieces.close()


class Generator(Protocol):
    """A chat model: llama.cpp in process, or an OpenAI-compatible server (vLLM)."""

    @property
    def name(self) -> str: ...

    @property
    def context_tokens(self) -> int:
        """The model's context window; prompt plus answer must fit in it."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (an upper estimate where the tokenizer is remote)."""
        ...

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Generation:
        """The reply, piece by piece, as the model writes it; once it has ended, its
        ``usage`` is the model's own count of the tokens, or None where it gave none.

        Raises :class:`core.errors.ModelError` when the model cannot be reached, fails, or
        does not finish within the configured deadline: a reply is complete only when the
        iterator ends without an error.
        """
        ...


class FakeGenerator:
    """Scripted replies for unit tests: a fixed text, or a function of the messages.

    Reports usage as a server does (its tokenizer over the messages, one token a piece),
    unless ``reports_usage`` is False: a server that sends no counts.
    """

    def __init__(
        self, reply: str | Callable[[Sequence[Message]], str] = "", *, context_tokens: int = 2048,
        reports_usage: bool = True,
    ) -> None:
        self._reply = reply
        self.name = "fake-scripted"
        self.context_tokens = context_tokens
        self.reports_usage = reports_usage
        self.calls: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Generation:
        return Generation(self._pieces(messages))

    def _pieces(self, messages: Sequence[Message]) -> collections.abc.Generator[str, None, Usage | None]:
        self.calls.append([dict(m) for m in messages])
        text = self._reply if isinstance(self._reply, str) else self._reply(messages)
        pieces = re.findall(r"\S+\s*|\s+", text)
        yield from pieces
        if not self.reports_usage:
            return None
        return Usage(sum(self.count_tokens(m["content"]) for m in messages), len(pieces))


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder for unit tests of surrounding logic."""

    name = "fake-hashing"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.fingerprint = f"fake-hashing/{dim}"

    def tokenize(self, text: str) -> list[int]:
        return [_stable_hash(w) % 30000 for w in re.findall(r"\w+|[^\w\s]", text.lower())]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, _stable_hash(word) % self.dim] += 1.0
            norm = math.sqrt(float(np.dot(out[row], out[row])))
            if norm:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


def _stable_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
