# syntax=docker/dockerfile:1
# Pipeline-steps image: what the ZenML Kubernetes orchestrator runs (orchestrator and
# step pods), the feast CronJob (k8s/base/feast/) and the MLflow server and dashboard
# of docker/docker-compose.yml. The project lives at /app, where ZenML's entrypoint
# changes directory and looks for the pipeline sources (DockerSettings skip_build).
#
#   make images   (or: docker build -t churn-python-base -f docker/base.Dockerfile docker &&
#    docker build --build-arg PYTHON_IMAGE=churn-python-base -f docker/steps.Dockerfile -t churn-steps:0.1.0 .)
#
# Dependencies come only from docker/requirements.runtime.txt: the runtime subset of
# requirements.lock, same versions (compiled with -c requirements.lock by `make lock`;
# tests/infra checks it is the closure of pyproject's dependencies and agrees with the
# lock). --no-deps --no-build: exactly the locked wheels, nothing resolved or compiled
# at build time. Base image pinned by exact tag; builds are for linux/amd64.

ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ---------------------------------------------------------------- deps
# pip stays in the venv (ZenML shells out to it); uv does not. Locked wheels only, from the host's wheelhouse (build/wheelhouse, filled and
# sha256-checked by `make wheelhouse`), bind-mounted for this step alone: no index,
# no network (`make images` builds with --network none), nothing of the host's pip
# configuration in any layer, and the wheels themselves never reach an image.
FROM ${PYTHON_IMAGE} AS deps
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
COPY docker/requirements.build.txt docker/requirements.runtime.txt /tmp/
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --no-deps --require-hashes \
        -r /tmp/requirements.build.txt \
    && uv venv --python /usr/local/bin/python3.11 /opt/venv \
    && uv pip install --python /opt/venv/bin/python --no-index --find-links /wheels \
        --require-hashes --no-deps --no-build --compile-bytecode -r /tmp/requirements.runtime.txt \
    && uv pip install --python /opt/venv/bin/python --no-index --find-links /wheels \
        --require-hashes --no-deps -r /tmp/requirements.build.txt \
    && uv pip uninstall --python /opt/venv/bin/python uv

# ---------------------------------------------------------------- app
FROM deps AS app
WORKDIR /app
COPY churn/ churn/
COPY serving/ serving/
COPY deployment/ deployment/
COPY steps/ steps/
COPY pipelines/ pipelines/
COPY feature_repo/ feature_repo/
COPY configs/ configs/
COPY dashboard/ dashboard/
# Feast's k8s materialization Job runs `python main.py` here (feature_store.eks.yaml).
COPY docker/feast_k8s_worker.py main.py
RUN /opt/venv/bin/python -m compileall -q /app

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="churn-steps" \
      org.opencontainers.image.description="churn-mlops pipeline steps, feast CLI, MLflow server" \
      org.opencontainers.image.licenses="Apache-2.0"
# LightGBM links libgomp.so.1 from the base: fail here, not at the first import.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ldconfig -p | grep -q "libgomp.so.1 " \
    || { echo "PYTHON_IMAGE lacks libgomp1: build it from docker/base.Dockerfile first" >&2; exit 1; }
# uid/gid 1000: deployment.seldon and the k8s manifests set runAsUser 1000.
RUN groupadd --gid 1000 churn \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin churn \
    && install -d -o 1000 -g 1000 /var/lib/churn /var/lib/mlflow
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    HOME=/home/churn \
    CHURN_HOME=/var/lib/churn \
    ZENML_CONFIG_PATH=/home/churn/.config/zenml \
    ZENML_ENABLE_REPO_INIT_WARNINGS=false \
    ZENML_ANALYTICS_OPT_IN=false \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba
WORKDIR /app
USER 1000:1000
# A batch image: ZenML step pods and the feast job run to completion; the MLflow
# and dashboard services of docker-compose define their own health checks.
HEALTHCHECK NONE
CMD ["python", "-c", "import churn, serving, deployment, pipelines, steps; print('churn-steps image: pass a command (zenml, feast, mlflow, streamlit)')"]
