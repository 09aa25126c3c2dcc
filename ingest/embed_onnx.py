"""The same sentence-transformers model run by ONNX Runtime with int8 weights.

Ingestion on a CPU is bounded by embedding. The int8 model is made here, on this machine,
from the very weights the PyTorch embedder loads: exported with torch's ONNX exporter,
its attention and layer norms fused by ONNX Runtime's transformer optimizer, then its
weights quantized to int8 (dynamic quantization: activations are quantized at run time,
so no calibration data is needed). The result is cached, keyed by a hash of the weights
and the recipe, and made again when either changes. Nothing is downloaded.

``make install`` (and the image build) prepares the model once, into the installation
(:func:`prepared_dir`, ``python -m ingest.embed_onnx``), so that no process exports at
run time and none imports PyTorch to embed; a model found neither there nor in the cache
dir (``<data dir>/models``) is exported into the cache dir on first use.

sentence-transformers' own ONNX backend needs optimum-onnx, which pins transformers
below 4.58 (we run 5.x), so the export is ours; the pooling and normalisation follow the
model's own sentence-transformers configuration.

Texts are embedded shortest first in batches padded only to their longest member, then
put back in order: padding costs as much compute as text.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError
from ingest.embed import SentenceTransformerEmbedder

# Bumped when the export recipe changes, so cached models made by an older one are remade.
_RECIPE = "int8-v1"


class OnnxInt8Embedder:
    def __init__(
        self,
        cache_dir: Path,
        model_path: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        # The PyTorch embedder names, locates and tokenizes; its model is loaded only to export.
        self._source = SentenceTransformerEmbedder(model_path, batch_size, threads)
        self.model_path = self._source.model_path
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.threads = threads
        self.name = f"{self._source.name} (onnx-int8)"
        self.fingerprint = f"onnx-int8/{self._source.name}/{_RECIPE}"
        self._pooling = _pooling_of(self.model_path)

    @property
    def dim(self) -> int:
        return self._source.dim

    @cached_property
    def max_tokens(self) -> int:
        config = self.model_path / "sentence_bert_config.json"
        try:
            return int(json.loads(config.read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError):
            return 512

    def tokenize(self, text: str) -> list[int]:
        return self._source.tokenize(text)

    @cached_property
    def model_file(self) -> Path:
        """The int8 model for these weights, exported and quantized on first use."""
        name = model_file_name(self.model_path)
        target = self.cache_dir / name
        for found in (target, prepared_dir() / name):
            if found.is_file():
                return found
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Several workers may start at once: one exports, the others wait and reuse it.
        with _exclusive(target.with_suffix(".lock")):
            if not target.is_file():
                _export_int8(self.model_path, target)
        return target

    @cached_property
    def _session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(
            str(self.model_file), options, providers=["CPUExecutionProvider"]
        )

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        return tokenizer

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        wanted = {i.name for i in self._session.get_inputs()}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask,
                     "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
            out[batch] = self._pool(hidden, mask)
        return out

    def _pool(self, hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]
              ) -> npt.NDArray[np.float32]:
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def prepared_dir() -> Path:
    """Where the installation keeps the models it prepared (inside the virtualenv)."""
    return Path(sys.prefix) / "share" / "enclave" / "models"


def model_file_name(model_path: Path) -> str:
    return f"{model_path.name}-{_weights_digest(model_path)[:16]}-{_RECIPE}.onnx"


def prepare(model_path: Path | None = None) -> Path:
    """Export the int8 model of these weights into :func:`prepared_dir` (idempotent)."""
    return OnnxInt8Embedder(prepared_dir(), model_path).model_file


def _pooling_of(model_path: Path) -> str:
    """mean or cls, as the model's sentence-transformers Pooling module says; a model
    pooled any other way, or not normalised, is refused rather than embedded differently."""
    try:
        modules = json.loads((model_path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        config = json.loads((model_path / pooling_dir / "config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise ConfigError(f"{model_path}: no sentence-transformers pooling config ({exc})") from exc
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    if kinds != ["Transformer", "Pooling", "Normalize"] or modes not in (
        ["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]
    ):
        raise ConfigError(
            f"{model_path}: the onnx-int8 embedder runs Transformer, mean or CLS Pooling, "
            f"Normalize models; this one is {kinds} with {modes}: use sentence-transformers"
        )
    return "cls" if modes == ["pooling_mode_cls_token"] else "mean"


def _weights_digest(model_path: Path) -> str:
    sha = hashlib.sha256()
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        path = model_path / name
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(block)
    return sha.hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export_int8(model_path: Path, target: Path) -> None:
    # The exporter's tracer warnings and the quantizer's advice are for model authors;
    # an operator's first ingest should not print them.
    root = logging.getLogger()
    was = root.disabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.disabled = True
        try:
            _export(model_path, target)
        finally:
            root.disabled = was


def _export(model_path: Path, target: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(str(model_path), local_files_only=True)
    encoder = AutoModel.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager"
    ).eval()

    class Encoder(torch.nn.Module):
        # Names the three inputs: the model's forward takes many more, positions vary by version.
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval().requires_grad_(False)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32, fused, int8 = (Path(tmp) / n for n in ("fp32.onnx", "fused.onnx", "int8.onnx"))
        sample = torch.ones((2, 8), dtype=torch.int64)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "tokens"}
        with torch.no_grad():
            torch.onnx.export(
                model, (sample, sample, torch.zeros_like(sample)), str(fp32),
                input_names=names, output_names=["last_hidden_state"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        optimized = optimize_model(
            str(fp32), model_type="bert", num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size, opt_level=1, use_gpu=False,
        )
        optimized.save_model_to_file(str(fused))
        # The fused operators are outside ONNX's shape inference; their outputs are float.
        quantize_dynamic(fused, int8, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(int8, target)


if __name__ == "__main__":
    print(prepare())
