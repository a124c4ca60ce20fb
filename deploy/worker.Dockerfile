# syntax=docker/dockerfile:1
# VeRA Registry training worker image: CUDA torch + the `train` extra.
#
#   docker build -f deploy/worker.Dockerfile -t vera-registry-worker:0.1.0 .
#
# torch comes from the CUDA wheel index (the wheels bundle the CUDA runtime, cuDNN and
# NCCL as pip packages), so a slim Python base is enough; the host needs only the NVIDIA
# driver and the NVIDIA container toolkit. Without a visible GPU, torch falls back to CPU
# (the `worker-cpu` compose profile).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# CUDA 12.4 wheels of torch within pyproject's range (>=2.4,<3).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
ARG TORCH_SPEC="torch>=2.4,<3"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY workers ./workers
# torch is already satisfied from the CUDA index; this adds transformers, safetensors, numpy.
RUN pip install "/app[train]"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VERA_HOME=/var/lib/vera \
    HF_HOME=/var/lib/vera/hf \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN groupadd --system --gid 10001 vera \
    && useradd --system --uid 10001 --gid vera --home-dir /var/lib/vera --shell /usr/sbin/nologin vera \
    && mkdir -p /var/lib/vera/models \
    && chown -R vera:vera /var/lib/vera
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/vera
USER 10001:10001
# Base models from s3:// sources are downloaded under $VERA_HOME/models (/var/lib/vera/models):
# mount a volume there to keep them across restarts.
CMD ["vera-registry", "worker", "--queues", "train", "--concurrency", "1"]
