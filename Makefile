# enclave: `make demo` and `make test` set everything up from a fresh clone into .venv/.
# Installs are pinned (requirements/lock.txt) and idempotent: a second run reuses .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch first, CPU build: unpinned, pip would pull a multi-GB CUDA build. A local CPU wheel
# (pip's find-links) satisfies this pin; elsewhere point TORCH_SPEC at a CPU wheel.
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python builds from source (about 6 minutes on 2 cores): portable, CPU only.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
CHROMIUM ?= /usr/bin/chromium
# OCR (Tesseract) and legacy Office conversion (LibreOffice, headless): Debian's packages;
# Samba's smbd and Dovecot too, which the source tests start on loopback ports of their own.
TESSERACT ?= /usr/bin/tesseract
SOFFICE ?= /usr/bin/soffice
SMBD ?= /usr/sbin/smbd
DOVECOT ?= /usr/sbin/dovecot
SYSTEM_PACKAGES := strace samba dovecot-imapd tesseract-ocr tesseract-ocr-eng libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint lock clean docs

install: $(STAMP) $(TESSERACT) $(SOFFICE) $(SMBD) $(DOVECOT)

$(STAMP): pyproject.toml requirements/lock.txt requirements/nodeps.txt requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install pip==25.3 setuptools==84.2.1
	$(PIP) install -c requirements/constraints.txt "$(TORCH_SPEC)"
	$(PIP) install --no-deps -r requirements/lock.txt
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-deps -r requirements/nodeps.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import torch, sentence_transformers, qdrant_edge, unstructured, llama_cpp, openai; assert '+cpu' in torch.__version__ or not torch.cuda.is_available()"
	# The int8 embedding model (the default), exported once from the shipped weights.
	$(BIN)/python -m ingest.embed_onnx
	touch $(STAMP)

demo: install
	$(BIN)/enclave demo

test: install $(CHROMIUM)
	$(BIN)/python -m pytest

# The web pages' tests drive Debian's Chromium through Playwright (no browser download).
$(CHROMIUM):
	$(SUDO) apt-get install -y -q chromium || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# Local OCR and document conversion; nothing is downloaded at run time.
$(TESSERACT) $(SOFFICE) $(SMBD) $(DOVECOT):
	$(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES) || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES))

# The references under docs/reference/ (CLI, settings, HTTP API), written from the code;
# tests/serve/cli/docs fails when they are stale. Then what each Markdown file shows of the CLI and settings.
docs: install
	$(BIN)/python -m serve.cli.docs
	$(BIN)/python -m serve.cli.docs --stats

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy core ingest retrieval serve workers eval

# Re-pin after editing requirements/base.in (run inside an installed .venv).
lock: install
	$(PIP) install -c requirements/constraints.txt -r requirements/base.in pytest pytest-timeout hypothesis ruff mypy check-jsonschema dockerfile-parse playwright
	$(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|unstructured[-_]inference|llama[-_]cpp[-_]python|llm[-_]smollm2)( ?==| @)' > requirements/lock.txt

clean:
	rm -rf $(VENV) .enclave .pytest_cache .mypy_cache .ruff_cache
