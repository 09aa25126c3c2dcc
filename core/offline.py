"""Keep every library offline and quiet before any of them is imported.

enclave must never reach the internet at run time. Several libraries phone home
or download on first use unless told otherwise; the variables below tell them.
``setdefault`` lets an operator override a cache location, never the opt-outs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Opt-outs are forced: an operator's environment must not re-enable them.
_FORCED = {
    "DO_NOT_TRACK": "1",  # unstructured (scarf ping on every partition), many others
    "SCARF_NO_ANALYTICS": "true",
    "HF_HUB_OFFLINE": "1",  # sentence-transformers / transformers: never query the hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "UNSTRUCTURED_DISABLE_ANALYTICS": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "LLAMA_INDEX_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def cache_root() -> Path:
    """Where third-party caches go: inside the data directory, never the home folder."""
    data_dir = os.environ.get("ENCLAVE_DATA_DIR") or ".enclave"
    return Path(data_dir).expanduser().resolve() / "cache"


def apply() -> None:
    for key, value in _FORCED.items():
        os.environ[key] = value
    root = cache_root()
    for key, sub in (
        ("HF_HOME", "huggingface"),
        ("MPLCONFIGDIR", "matplotlib"),
        ("XDG_CACHE_HOME", "xdg"),
    ):
        os.environ.setdefault(key, str(root / sub))
    # unstructured and onnxruntime write temporary files; keep them with our data.
    tmp = root / "tmp"
    os.environ.setdefault("TMPDIR", str(tmp))
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = None  # re-read TMPDIR on next use
    except OSError:
        # A read-only data dir must not stop a search; the system temp dir still works.
        pass
