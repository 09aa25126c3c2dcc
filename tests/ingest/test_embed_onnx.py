"""The onnx-int8 embedder: exported here from the shipped weights, close to fp32 PyTorch.

Real model, real export and real ONNX Runtime; the texts are real SciFact abstracts of
every length (read in place), so length-sorted batching is exercised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ingest.embed_onnx as embed_onnx
from core.container import Container
from core.errors import ConfigError
from core.ports import Embedder
from core.settings import Settings
from ingest.embed import shipped_model_path
from ingest.embed_onnx import OnnxInt8Embedder
from tests.conftest import shared


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> OnnxInt8Embedder:
    embedder = OnnxInt8Embedder(tmp_path_factory.mktemp("models"))
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="module")
def abstracts() -> list[str]:
    with (shared("scifact") / "corpus.jsonl").open() as handle:
        docs = [json.loads(next(handle)) for _ in range(60)]
    texts = [f"{d['title']}\n\n{d['text']}" for d in docs]
    return [*texts, "a", "Short claim about vitamin D.", texts[0][:40]]


def test_vectors_match_fp32_pytorch(onnx_embedder: OnnxInt8Embedder, fp32_embedder: Embedder,
                                    abstracts: list[str]) -> None:
    got, want = onnx_embedder.embed(abstracts), fp32_embedder.embed(abstracts)
    assert got.shape == want.shape == (len(abstracts), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * want).sum(axis=1)
    # int8 weights move a vector by a rounding error, not to another meaning.
    assert cosines.min() > 0.97 and cosines.mean() > 0.99, cosines.min()
    # Each text's nearest fp32 neighbour among all of them is its own fp32 vector.
    assert ((got @ want.T).argmax(axis=1) == np.arange(len(abstracts))).all()


def test_batching_and_order_keep_each_vector_to_its_text(onnx_embedder: OnnxInt8Embedder,
                                                         abstracts: list[str]) -> None:
    together = onnx_embedder.embed(abstracts)
    alone = np.stack([onnx_embedder.embed([t])[0] for t in abstracts[:8]])
    shuffled = np.random.default_rng(3).permutation(len(abstracts))
    back = np.empty_like(together)
    back[shuffled] = onnx_embedder.embed([abstracts[i] for i in shuffled])
    # Dynamic quantization scales activations per batch, so a batch's other texts move a
    # vector by int8 rounding (unlike fp32); each vector must still be its own text's.
    for other in (alone, back[:8]):
        cosines = (together[:8] * other).sum(axis=1)
        assert cosines.min() > 0.98, cosines
    assert ((back @ together.T).argmax(axis=1) == np.arange(len(abstracts))).all()
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_the_model_prepared_at_install_is_used_and_never_exported_again(
        onnx_embedder: OnnxInt8Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make install` ran `python -m ingest.embed_onnx`: the model lies in the virtualenv.
    made = onnx_embedder.model_file
    assert made.parent == embed_onnx.prepared_dir() and made.stat().st_size > 1_000_000
    assert "(onnx-int8)" in onnx_embedder.name and onnx_embedder.max_tokens == 256
    assert onnx_embedder.fingerprint == "onnx-int8/all-MiniLM-L6-v2/int8-v1"

    def no_export(*_: object) -> None:
        raise AssertionError("exported again although a prepared model fits the weights")

    monkeypatch.setattr(embed_onnx, "_export_int8", no_export)
    again = OnnxInt8Embedder(tmp_path / "empty-cache")
    assert again.model_file == made and embed_onnx.prepare() == made
    assert np.allclose(again.embed(["vitamin D"]), onnx_embedder.embed(["vitamin D"]))


def test_changed_weights_get_a_model_of_their_own(onnx_embedder: OnnxInt8Embedder,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "model"
    shutil.copytree(shipped_model_path(), copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "note": "changed"}))
    other = OnnxInt8Embedder(onnx_embedder.cache_dir, copy)
    # Exported anew for these weights, into the cache dir (none was prepared for them) ...
    assert other.model_file != onnx_embedder.model_file
    assert other.model_file.parent == onnx_embedder.cache_dir
    assert np.allclose(other.embed(["aspirin"]), onnx_embedder.embed(["aspirin"]), atol=2e-3)

    # ... and reused from there by the next process.
    def no_export(*_: object) -> None:
        raise AssertionError("exported again although the cached model fits the weights")

    monkeypatch.setattr(embed_onnx, "_export_int8", no_export)
    assert OnnxInt8Embedder(onnx_embedder.cache_dir, copy).model_file == other.model_file


def test_a_model_pooled_otherwise_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(shipped_model_path(), copy)
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False,
                                   "pooling_mode_max_tokens": True}))
    with pytest.raises(ConfigError, match="mean or CLS Pooling"):
        OnnxInt8Embedder(tmp_path / "cache", copy)


def test_the_container_builds_it_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    container = Container(settings)
    try:
        assert isinstance(container.embedder, OnnxInt8Embedder)
        assert container.embedder.cache_dir == tmp_path / "models"
    finally:
        container.close()
