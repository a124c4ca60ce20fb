# syntax=docker/dockerfile:1
# VeRA Registry API image (also runs `migrate`, `tenants` and the sweeper): no torch.
#
#   docker build -f deploy/api.Dockerfile -t vera-registry-api:0.1.0 .
#
# The project is installed as a regular package (`pip install /app`, not editable) in the
# build stage; the runtime stage gets only the venv, no source tree. The migrations ship
# inside the package (registry/migrations). Only the base dependencies are installed —
# never the `train` extra — so the image carries no torch/transformers.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY workers ./workers
RUN pip install /app

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VERA_HOME=/var/lib/vera \
    VERA_API_HOST=0.0.0.0 \
    VERA_API_PORT=8300
RUN groupadd --system --gid 10001 vera \
    && useradd --system --uid 10001 --gid vera --home-dir /var/lib/vera --shell /usr/sbin/nologin vera \
    && mkdir -p /var/lib/vera \
    && chown -R vera:vera /var/lib/vera
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/vera
USER 10001:10001
EXPOSE 8300
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8300/healthz', timeout=5)"]
CMD ["vera-registry", "serve", "--host", "0.0.0.0", "--port", "8300"]
