# syntax=docker/dockerfile:1.7
# The image every Kubeflow task (and the PyTorchJob) runs: two flavours of the same code.
#   cpu : ghcr.io/lesionops/lesionops:<version>        CPU torch wheels (download.pytorch.org/whl/cpu)
#   cuda: ghcr.io/lesionops/lesionops:<version>-cuda   PyPI's CUDA torch wheels (CUDA 13, libraries as wheels)
# <version> is components.__version__; the build refuses a VERSION that differs from it.
#   VERSION=$(python -c 'import components; print(components.__version__)')
#   docker buildx build --target cpu  --build-arg VERSION=$VERSION -t ghcr.io/lesionops/lesionops:$VERSION .
#   docker buildx build --target cuda --build-arg VERSION=$VERSION -t ghcr.io/lesionops/lesionops:$VERSION-cuda .
# Exact versions of every package come from constraints.txt (the same file `make venv` installs from).

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.8
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- builder: a relocatable CPython (uv-managed) + a venv at /opt/venv + the source at /app ------
FROM ${DEBIAN_IMAGE} AS builder
ARG PYTHON_VERSION
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv
RUN uv python install "${PYTHON_VERSION}" && uv venv --python "${PYTHON_VERSION}" /opt/venv
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./

FROM builder AS build-cpu
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --torch-backend cpu -c constraints.txt -r pyproject.toml
COPY components ./components
COPY pipelines ./pipelines
COPY lesionops ./lesionops
COPY tasks ./tasks
COPY params.yaml ./
RUN uv pip install --no-deps -e .

FROM builder AS build-cuda
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install -c constraints.txt -r pyproject.toml
COPY components ./components
COPY pipelines ./pipelines
COPY lesionops ./lesionops
COPY tasks ./tasks
COPY params.yaml ./
RUN uv pip install --no-deps -e .

# --- runtime: only the interpreter, the venv and the source; a non-root user ----------------------
FROM ${DEBIAN_IMAGE} AS cpu
ARG VERSION
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="lesionops" \
      org.opencontainers.image.description="LesionOps pipeline stages (CPU torch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.source="https://github.com/lesionops/lesionops" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build-cpu /opt/python /opt/python
COPY --from=build-cpu /opt/venv /opt/venv
COPY --from=build-cpu /app /app
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/lesionops
WORKDIR /app
# CA certificates for TLS to S3, MLflow and PostgreSQL; uid 10001, group 0 (OpenShift-style
# arbitrary uids still write): /app is the working directory (relative caches and logs), /gcs
# /minio /s3 are where the KFP launcher stages artifacts.
# hadolint ignore=DL3008
RUN if [ -z "${VERSION}" ]; then echo "--build-arg VERSION=<components.__version__> is required" >&2; exit 1; fi \
    && apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && python -c "import components, sys; v = components.__version__; sys.exit(0 if v == '${VERSION}' else f'VERSION ${VERSION} is not the package version {v}')" \
    && useradd --uid 10001 --gid 0 --create-home --home-dir /home/lesionops --shell /usr/sbin/nologin lesionops \
    && install -d -o 10001 -g 0 -m 2775 /app /gcs /minio /s3
USER 10001
ENTRYPOINT ["lesionops"]
CMD ["--help"]

# The CUDA "base" flavour: driver forward-compat and the NVIDIA container settings only; the CUDA
# libraries come with torch as wheels (nvidia-* in constraints.txt), so "runtime" would ship them twice.
FROM ${CUDA_IMAGE} AS cuda
ARG VERSION
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="lesionops" \
      org.opencontainers.image.description="LesionOps pipeline stages (CUDA torch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.source="https://github.com/lesionops/lesionops" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build-cuda /opt/python /opt/python
COPY --from=build-cuda /opt/venv /opt/venv
COPY --from=build-cuda /app /app
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/lesionops \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
# CA certificates for TLS to S3, MLflow and PostgreSQL; uid 10001, group 0 (OpenShift-style
# arbitrary uids still write): /app is the working directory (relative caches and logs), /gcs
# /minio /s3 are where the KFP launcher stages artifacts.
# hadolint ignore=DL3008
RUN if [ -z "${VERSION}" ]; then echo "--build-arg VERSION=<components.__version__> is required" >&2; exit 1; fi \
    && apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && python -c "import components, sys; v = components.__version__; sys.exit(0 if v == '${VERSION}' else f'VERSION ${VERSION} is not the package version {v}')" \
    && useradd --uid 10001 --gid 0 --create-home --home-dir /home/lesionops --shell /usr/sbin/nologin lesionops \
    && install -d -o 10001 -g 0 -m 2775 /app /gcs /minio /s3
USER 10001
ENTRYPOINT ["lesionops"]
CMD ["--help"]
