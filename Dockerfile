# The image the docker work pool runs flows in (deployments/docker.prefect.yaml builds and pushes it).
FROM python:3.11-slim

ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PYTHONUNBUFFERED=1 \
    PREFECT_RESULTS_PERSIST_BY_DEFAULT=true PREFECT_LOCAL_STORAGE_PATH=/data/.prefect-storage \
    PREFECT_LOGGING_EXTRA_LOGGERS=motioncoach
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv

WORKDIR /opt/motioncoach
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY motioncoach ./motioncoach
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
RUN uv sync --frozen --no-dev
ENV PATH="/opt/motioncoach/.venv/bin:$PATH"
