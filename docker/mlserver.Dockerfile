# syntax=docker/dockerfile:1
# Inference image: MLServer 1.7 with the churn runtime (serving.runtime.ChurnRuntime),
# the drift runtime (serving.drift_runtime.DriftRuntime) and their dependencies
# (Feast's Redis reader, xgboost, alibi-detect). Runs unchanged as
#   - the "mlserver" container of a Seldon Core v2 Server (k8s/base/seldon/server.yaml
#     sets the command `mlserver start $(MLSERVER_MODELS_DIR)`),
#   - the container of a Seldon Core v1 SeldonDeployment (protocol v2), and
#   - a plain container (docker-compose): MLServer configured from MLSERVER_MODEL_*
#     below, serving the bundle mounted at /mnt/models.
#
#   make images   (or: docker build -t churn-python-base -f docker/base.Dockerfile docker &&
#    docker build --build-arg PYTHON_IMAGE=churn-python-base -f docker/mlserver.Dockerfile -t churn-mlserver:0.1.0 .)
#
# Installs docker/requirements.serving.txt: what the serving runtimes import, at the
# versions of requirements.lock (the steps image carries the whole runtime set).

ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ---------------------------------------------------------------- deps
# Locked wheels only, from the host's wheelhouse (build/wheelhouse, filled and
# sha256-checked by `make wheelhouse`), bind-mounted for this step alone: no index,
# no network (`make images` builds with --network none), nothing of the host's pip
# configuration in any layer, and the wheels themselves never reach an image.
FROM ${PYTHON_IMAGE} AS deps
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
COPY docker/requirements.build.txt docker/requirements.serving.txt /tmp/
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --no-deps --require-hashes \
        -r /tmp/requirements.build.txt \
    && uv venv --python /usr/local/bin/python3.11 /opt/venv \
    && uv pip install --python /opt/venv/bin/python --no-index --find-links /wheels \
        --require-hashes --no-deps --no-build --compile-bytecode -r /tmp/requirements.serving.txt

# ---------------------------------------------------------------- app
# The code, byte-compiled, in a stage of its own: a code-only change rebuilds from
# here and the final image recopies /app (a few MB), never the venv.
FROM deps AS app
WORKDIR /app
COPY churn/ churn/
COPY serving/ serving/
COPY feature_repo/ feature_repo/
RUN /opt/venv/bin/python -m compileall -q /app

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="churn-mlserver" \
      org.opencontainers.image.description="MLServer with the churn-mlops runtimes" \
      org.opencontainers.image.licenses="Apache-2.0"
# LightGBM links libgomp.so.1 from the base: fail here, not at the first import.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ldconfig -p | grep -q "libgomp.so.1 " \
    || { echo "PYTHON_IMAGE lacks libgomp1: build it from docker/base.Dockerfile first" >&2; exit 1; }
# uid 1000 and fsGroup 2000 are what Seldon's mlserver ServerConfig and deployment.seldon use.
RUN groupadd --gid 1000 churn \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin churn \
    && install -d -o 1000 -g 1000 /srv/mlserver /var/lib/churn /mnt/models
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    HOME=/home/churn \
    CHURN_HOME=/var/lib/churn \
    CHURN_SERVING_HOST=0.0.0.0 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    MLSERVER_HOST=0.0.0.0 \
    MLSERVER_HTTP_PORT=8080 \
    MLSERVER_GRPC_PORT=8081 \
    MLSERVER_METRICS_PORT=8082 \
    MLSERVER_METRICS_DIR=/srv/mlserver/.metrics \
    MLSERVER_PARALLEL_WORKERS=0 \
    MLSERVER_LOAD_MODELS_AT_STARTUP=true \
    MLSERVER_MODEL_NAME=churn \
    MLSERVER_MODEL_IMPLEMENTATION=serving.runtime.ChurnRuntime \
    MLSERVER_MODEL_URI=/mnt/models
WORKDIR /srv/mlserver
USER 1000:1000
EXPOSE 8080 8081 8082
# Ready only when every loaded model is ready: a missing or corrupt bundle never
# turns healthy (MLServer's /v2/health/ready; no curl in the image, so Python).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('MLSERVER_HTTP_PORT', '8080'), timeout=2)"]
# /srv/mlserver holds no settings.json: MLServer takes server and model settings
# from the MLSERVER_* environment and serves the bundle at MLSERVER_MODEL_URI.
CMD ["python", "-m", "serving.server", "start", "/srv/mlserver"]
