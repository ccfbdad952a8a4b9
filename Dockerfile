# The image the docker work pool runs flows in (deployments/docker.prefect.yaml builds and pushes it).
FROM python:3.11-slim

ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PYTHONUNBUFFERED=1 \
    PREFECT_RESULTS_PERSIST_BY_DEFAULT=true PREFECT_LOCAL_STORAGE_PATH=/data/.prefect-storage \
    PREFECT_LOGGING_EXTRA_LOGGERS=motioncoach,remote
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv

WORKDIR /opt/motioncoach
COPY pyproject.toml uv.lock README.md ./
# CPU-only torch: this image runs the local profile (the tiny model on CPU, YOLO on CPU). The locked
# CUDA wheels and their nvidia-* and triton dependencies would add gigabytes for nothing, so they are
# left out and the same torch and torchvision versions come from PyTorch's CPU index.
RUN grep -oE '^name = "(nvidia-[^"]+|triton|torch|torchvision)"' uv.lock | cut -d'"' -f2 \
        | sed 's/^/--no-install-package /' > .gpu-only \
    && uv sync --frozen --no-dev --no-install-project $(cat .gpu-only) \
    && uv pip install --python .venv/bin/python --no-deps --index-url https://download.pytorch.org/whl/cpu \
        "torch==$(awk '/^name = "torch"$/{getline; print $3}' uv.lock | tr -d '"')" \
        "torchvision==$(awk '/^name = "torchvision"$/{getline; print $3}' uv.lock | tr -d '"')"
COPY motioncoach ./motioncoach
COPY tasks ./tasks
COPY flows ./flows
COPY remote ./remote
COPY deployments ./deployments
COPY cli ./cli
RUN uv sync --frozen --no-dev --inexact $(cat .gpu-only)
ENV PATH="/opt/motioncoach/.venv/bin:$PATH"
