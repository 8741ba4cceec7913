"""`make twin-demo`: the EKS configuration run end to end on the production twin.

Why: schema checks of the EKS configuration passed while blockers would have stopped
the first deploy. This runs what EKS runs, with the same configuration files (stacks/
twin.yaml's S3 artifact store and MLflow tracker, feature_repo/feature_store.eks.yaml,
configs/*.yaml), against the twin's real services (churn.twin), and compares the
answer with the laptop path's:

1. the twin's services up (reused when they answer);
2. the laptop path as the reference: a fresh CHURN_HOME under the demo folder, its
   own Redis and MLServer ports, its own ZenML store with the `local` stack; the
   feature, training and deployment pipelines (`zenml pipeline run`, as `make demo`);
3. the same three pipelines on the twin: ZenML store with the `twin` stack, CHURN_HOME
   on the twin's state folder (the churn-state volume's stand-in: the offline store),
   CHURN_FEATURE_STORE_YAML=feature_store.eks.yaml (TLS Redis, Feast registry on S3).
   The deployment runs with target `seldon`: it uploads the bundle and the drift
   model to S3 and, with no API server to apply to, writes the Seldon objects to a
   folder (SeldonTarget.manifest_dir);
4. Seldon's agent, replayed (deployment.twin_agent): the Models' storage Secret
   rendered from the same function as the cluster's (model_rclone_secret), rclone
   downloads each Model's storageUri through it, the folder is placed and its
   model-settings.json rewritten as the agent does, MLServer is started with the
   rendered Server's environment and loads each Model through its repository API;
5. one V2 request for the same customers to both servers: the probabilities must agree
   within 1e-6;
6. the MLflow server restarted: every run and the champion alias must still be there.

Only endpoints, credentials, the orchestrator (local, not Kubernetes) and the
deployment's apply (a folder, not the API server) differ from EKS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import requests
import yaml

from churn import redis_local, twin
from churn.data.offline import LABELS_TABLE, read_offline_table
from churn.inference import DEFAULT_MODEL_NAME, infer_path, parse_response, request_body
from churn.models.registry import CHAMPION
from churn.ports import free_port
from churn.schema import ENTITY_KEY
from churn.settings import PROJECT_ROOT, Settings
from churn.stacks import run_config
from deployment import local_server, twin_agent, twin_images
from deployment.containers import ContainerError
from deployment.deploy import read_manifests
from deployment.seldon.render import model_rclone_secret, rclone_remote
from serving.settings import ServingSettings

CONFIGS: Final = PROJECT_ROOT / "configs"
EKS_FEATURE_STORE: Final = "feature_store.eks.yaml"
PIPELINES: Final = {
    "feature": "pipelines.feature_pipeline.feature_pipeline",
    "training": "pipelines.training_pipeline.training_pipeline",
    "deployment": "pipelines.deployment_pipeline.deployment_pipeline",
}
TOLERANCE: Final = 1e-6
SELDON_MODEL_VERSION: Final = 1  # the first generation of each Model the agent loads
# Variables of the caller that must not leak into either stack's processes.
_FOREIGN_PREFIXES: Final = ("CHURN_", "MLFLOW_", "AWS_", "ZENML_", "RCLONE_")
_KEPT: Final = frozenset({"CHURN_TELCO_CSV", "CHURN_TELCO_URL"})
_LOG_TAIL: Final = 4000


class DemoError(RuntimeError):
    """A step of the twin demo failed; names the step and quotes its log."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs: the configs/ files and parameter overrides shared by both
    stacks (dotted keys, YAML values, as churn.stacks.run_config takes them)."""

    feature_config: Path = CONFIGS / "feature_pipeline.yaml"
    training_config: Path = CONFIGS / "training_pipeline.yaml"
    deployment_config: Path = CONFIGS / "deployment_pipeline.yaml"
    feature_overrides: Mapping[str, str] = field(default_factory=dict)
    training_overrides: Mapping[str, str] = field(default_factory=dict)
    customers: int = 5  # customers in the V2 request compared between the two paths


@dataclass
class DemoReport:
    """What the demo measured and found (the tests check it against the services)."""

    seconds: dict[str, float] = field(default_factory=dict)
    pipeline_logs: dict[str, Path] = field(default_factory=dict)
    model_name: str = ""
    manifests: Path | None = None
    storage_uris: dict[str, str] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    twin_probabilities: list[float] = field(default_factory=list)
    laptop_probabilities: list[float] = field(default_factory=list)
    twin_model_version: str = ""
    laptop_model_version: str = ""
    runs_before_restart: set[str] = field(default_factory=set)
    runs_after_restart: set[str] = field(default_factory=set)
    champion_before_restart: str = ""
    champion_after_restart: str = ""

    @property
    def max_delta(self) -> float:
        """Largest |twin - laptop| probability over the compared customers."""
        pairs = zip(self.twin_probabilities, self.laptop_probabilities, strict=True)
        return max(abs(a - b) for a, b in pairs)


def _say(line: str) -> None:
    """One progress line of make twin-demo, flushed so it shows while pipelines run."""
    sys.stdout.write(f"twin-demo: {line}\n")
    sys.stdout.flush()


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without its CHURN_/MLFLOW_/AWS_/ZENML_/RCLONE_ settings
    (a developer's or a test session's must not reach either stack) and its trust store."""
    return {
        k: v
        for k, v in environ.items()
        if k in _KEPT or (not k.startswith(_FOREIGN_PREFIXES) and k != "SSL_CERT_FILE")
    }


def zenml_env(store: Path) -> dict[str, str]:
    """A ZenML client of its own store, quiet and offline."""
    return {
        "ZENML_CONFIG_PATH": str(store),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
    }


class TwinDemo:
    """One demo run: start what it needs, run it, stop what it started (close())."""

    def __init__(
        self,
        cfg: twin.TwinConfig,
        work: Path,
        options: DemoOptions,
        images: twin_images.TwinImages | None = None,
    ) -> None:
        """`images`: the agent's MLServer runs in churn-mlserver (cfg says where MLflow runs)."""
        self.cfg = cfg
        self.work = work
        self.options = options
        self.images = images
        self.report = DemoReport()
        self._laptop_redis: redis_local.RedisServerConfig | None = None
        self._laptop_serving: ServingSettings | None = None
        self._agent: twin_agent.AgentServer | None = None

    @property
    def agent(self) -> twin_agent.AgentServer | None:
        """The twin Server's MLServer while it runs (after serve_like_seldon)."""
        return self._agent

    @property
    def laptop_serving(self) -> ServingSettings | None:
        """Settings of the laptop stack's MLServer (started by its deployment pipeline)."""
        return self._laptop_serving

    # ---------------------------------------------------------------- environments

    def laptop_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The laptop stack's environment: fresh home, own Redis and MLServer ports."""
        if self._laptop_redis is None or self._laptop_serving is None:
            raise DemoError("the laptop stack is not set up")
        home = self.work / "laptop"
        return {
            **base,
            **zenml_env(home / "zenml"),
            "CHURN_HOME": str(home / "home"),
            "CHURN_REDIS_HOST": self._laptop_redis.host,
            "CHURN_REDIS_PORT": str(self._laptop_redis.port),
            "CHURN_REDIS_PASSWORD": self._laptop_redis.password,
            "CHURN_REDIS_DB": "0",
            "CHURN_SERVING_HOME": str(self._laptop_serving.serving_home),
            "CHURN_SERVING_HTTP_PORT": str(self._laptop_serving.http_port),
            "CHURN_SERVING_GRPC_PORT": str(self._laptop_serving.grpc_port),
            "CHURN_SERVING_METRICS_PORT": str(self._laptop_serving.metrics_port),
        }

    def twin_env(self, base: Mapping[str, str], creds: twin.Credentials) -> dict[str, str]:
        """The EKS configuration's environment on the twin (churn.twin.client_env), the
        offline store on the twin's state folder and the EKS feature store yaml."""
        return {
            **base,
            **twin.client_env(self.cfg, creds),
            **zenml_env(self.cfg.home / "zenml"),
            "CHURN_HOME": str(self.cfg.home / "state"),
            "CHURN_FEATURE_STORE_YAML": EKS_FEATURE_STORE,
        }

    # ---------------------------------------------------------------- steps

    def _timed_run(self, key: str, args: list[str], env: Mapping[str, str]) -> None:
        """Run a command from the project root, output to a log; DemoError with its tail."""
        log = self.work / "logs" / f"{key.replace(' ', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with log.open("w") as out:
            result = subprocess.run(
                args, cwd=PROJECT_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )
        self.report.seconds[key] = time.monotonic() - started
        self.report.pipeline_logs[key] = log
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-_LOG_TAIL:]
            raise DemoError(f"{key} failed ({result.returncode}); {log}:\n{tail}")
        _say(f"{key}: {self.report.seconds[key]:.1f} s")

    def _config(self, stack: str, source: Path, overrides: Mapping[str, str]) -> Path:
        """configs/<pipeline>.yaml with the overrides, written under the demo folder."""
        path = self.work / "configs" / f"{stack}-{source.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(run_config(source, overrides=overrides), sort_keys=False))
        return path

    def run_pipelines(self, stack: str, env: Mapping[str, str], deploy: Mapping[str, str]) -> None:
        """Register and activate `stack` in the environment's ZenML store, then run the
        feature, training and deployment pipelines with the shared configs."""
        churn_cli = str(Path(sys.executable).with_name("churn"))
        self._timed_run(
            f"{stack} stack", [churn_cli, "stack", "register", stack, "--activate"], env
        )
        o = self.options
        configs = {
            "feature": self._config(stack, o.feature_config, o.feature_overrides),
            "training": self._config(stack, o.training_config, o.training_overrides),
            "deployment": self._config(stack, o.deployment_config, deploy),
        }
        zenml = str(Path(sys.executable).with_name("zenml"))
        for name, config in configs.items():
            args = [zenml, "pipeline", "run", PIPELINES[name], "-c", str(config)]
            self._timed_run(f"{stack} {name} pipeline", args, env)
        self.report.model_name = str(
            yaml.safe_load(configs["training"].read_text())["parameters"]["model_name"]
        )

    def start_laptop_stack(self) -> None:
        """A fresh laptop stack: empty home, its own Redis on a free port."""
        root = self.work / "laptop"
        shutil.rmtree(root, ignore_errors=True)
        settings = Settings(
            home=root / "home",
            redis_port=free_port(),
            redis_password=secrets.token_hex(12),
        )
        self._laptop_redis = redis_local.config_from_settings(settings)
        redis_local.start(self._laptop_redis)
        self._laptop_serving = ServingSettings(
            home=root / "home" / "serving",
            http_port=free_port(),
            grpc_port=free_port(),
            metrics_port=free_port(),
        )

    def serve_like_seldon(self, creds: twin.Credentials) -> None:
        """The agent's path for every Model the deployment wrote: Secret, rclone, model
        repository, MLServer started from the Server's environment, repository load."""
        manifests = self.work / "manifests"
        models = read_manifests(manifests, "Model")
        servers = read_manifests(manifests, "Server")
        if not models or len(servers) != 1:
            raise DemoError(f"{manifests} holds {len(models)} Models and {len(servers)} Servers")
        remote = rclone_remote(
            endpoint=self.cfg.s3_endpoint,
            access_key_id=creds.s3_access_key,
            secret_access_key=creds.s3_secret_key,
            region=twin.REGION,
        )
        root = self.work / "agent"
        shutil.rmtree(root, ignore_errors=True)
        config_map = {**twin.client_env(self.cfg, creds), "CHURN_HOME": str(root / "home")}
        env = twin_agent.server_env(
            servers[0], config_map, {"CHURN_REDIS_PASSWORD": creds.redis_password}
        )
        container = None
        if self.images is None:
            # the container's metrics folder is an emptyDir at an image path; here, a folder
            env["MLSERVER_METRICS_DIR"] = str(root / "metrics")
            (root / "metrics").mkdir(parents=True)
        else:
            container = twin_images.ServerContainer(
                self.images,
                f"churn-twin-agent-{self.cfg.mlflow_port}",
                root / "models",
                self.cfg.ca_file,
            )
        started = time.monotonic()
        self._agent = twin_agent.start_server(
            root, env, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
            container=container,
        )  # fmt: skip
        for model in models:
            self.report.storage_uris[model["metadata"]["name"]] = model["spec"]["storageUri"]
            secret = model_rclone_secret(model, remote)
            name = twin_agent.install_model(
                model, secret, self._agent.models_dir, SELDON_MODEL_VERSION
            )
            twin_agent.load_model(self._agent, name)
            self.report.loaded.append(name)
        self.report.seconds["twin agent pull + load"] = time.monotonic() - started
        where = "process" if self.images is None else self.images.ref(twin_images.MLSERVER_IMAGE)
        _say(f"agent: loaded {self.report.loaded} through the repository API ({where})")

    def compare_predictions(self) -> None:
        """The same V2 request to the twin's Server and the laptop's MLServer."""
        if self._agent is None or self._laptop_serving is None:
            raise DemoError("both servers must run before predictions are compared")
        offline = self.cfg.home / "state" / "offline"
        labels = read_offline_table(LABELS_TABLE, offline)
        ids = [str(c) for c in labels[ENTITY_KEY].drop_duplicates().head(self.options.customers)]
        body = request_body(ids, reasons=False)
        churn = twin_agent.versioned_name(DEFAULT_MODEL_NAME, SELDON_MODEL_VERSION)
        twin_answer = _infer(f"{self._agent.base_url}{infer_path(churn)}", body, ids)
        laptop_url = local_server.base_url(self._laptop_serving)
        laptop_answer = _infer(f"{laptop_url}{infer_path(DEFAULT_MODEL_NAME)}", body, ids)
        self.report.customer_ids = ids
        self.report.twin_probabilities = [p.probability for p in twin_answer]
        self.report.laptop_probabilities = [p.probability for p in laptop_answer]
        self.report.twin_model_version = twin_answer[0].model_version
        self.report.laptop_model_version = laptop_answer[0].model_version
        _say(
            f"{len(ids)} customers: twin {self.report.twin_model_version} vs laptop "
            f"{self.report.laptop_model_version}, max |delta p| = {self.report.max_delta:.2e}"
        )
        if self.report.max_delta >= TOLERANCE:
            raise DemoError(
                f"the twin answers {self.report.twin_probabilities}, the laptop "
                f"{self.report.laptop_probabilities} (tolerance {TOLERANCE}). The twin keeps "
                "its champion until a challenger beats it: after changing the data or the "
                "configs, start from an empty twin (`.venv/bin/python -m churn.twin reset`)"
            )

    def restart_mlflow(self, creds: twin.Credentials) -> None:
        """Stop and start the MLflow server; every run and the champion must remain."""
        before = mlflow_state(self.cfg, self.report.model_name)
        started = time.monotonic()
        twin.stop_mlflow(self.cfg)
        twin.start_mlflow(self.cfg, creds)
        self.report.seconds["twin mlflow restart"] = time.monotonic() - started
        after = mlflow_state(self.cfg, self.report.model_name)
        self.report.runs_before_restart, self.report.champion_before_restart = before
        self.report.runs_after_restart, self.report.champion_after_restart = after
        _say(f"MLflow restarted: {len(after[0])} of {len(before[0])} runs, champion v{after[1]}")
        if after != before:
            raise DemoError(f"the MLflow restart lost state: before {before}, after {after}")

    def run(self) -> DemoReport:
        """Every step, in order; DemoError names the first that fails."""
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        creds = twin.up(self.cfg)
        self.report.seconds["twin up"] = time.monotonic() - started
        mlflow_in = "churn-steps image" if twin.mlflow_in_container(self.cfg) else "process"
        _say(f"twin up: {self.report.seconds['twin up']:.1f} s (MLflow server: {mlflow_in})")
        base = clean_environ(os.environ)
        self.start_laptop_stack()
        self.run_pipelines("local", self.laptop_env(base), {})
        manifests = self.work / "manifests"
        shutil.rmtree(manifests, ignore_errors=True)
        self.report.manifests = manifests
        deploy = {
            "target": "seldon",
            "seldon.artifact_root": f"s3://{twin.BUCKET}/serving",
            "seldon.manifest_dir": str(manifests),
        }
        self.run_pipelines("twin", self.twin_env(base, creds), deploy)
        self.serve_like_seldon(creds)
        self.compare_predictions()
        self.restart_mlflow(creds)
        return self.report

    def close(self) -> None:
        """Stop the servers this demo started (the twin's services stay up)."""
        if self._agent is not None:
            twin_agent.stop_server(self._agent)
            self._agent = None
        if self._laptop_serving is not None:
            local_server.stop(self._laptop_serving)
        if self._laptop_redis is not None:
            redis_local.stop(self._laptop_redis)
            self._laptop_redis = None


def _infer(url: str, body: Mapping[str, Any], ids: list[str]) -> list[Any]:
    """POST one V2 request; the parsed predictions, DemoError on any other answer."""
    response = requests.post(url, json=body, timeout=30)
    if response.status_code != 200:
        raise DemoError(f"{url} answered {response.status_code}: {response.text[:500]}")
    return parse_response(ids, response.json())


def mlflow_state(cfg: twin.TwinConfig, model_name: str) -> tuple[set[str], str]:
    """Every run id on the twin's MLflow server and the champion's version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.mlflow_uri, registry_uri=cfg.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = {r.info.run_id for r in client.search_runs(experiments, max_results=10_000)}
    champion = client.get_model_version_by_alias(model_name, CHAMPION).version
    return runs, str(champion)


def main() -> int:
    """`python -m deployment.twin_demo` (make twin-demo): run, print, stop what it started."""
    try:
        images = twin_images.images_from_env()
    except ContainerError as e:
        _say(f"FAILED: {e}")
        return 1
    cfg = twin_images.with_images(twin.config_from_env(), images)
    options = DemoOptions()
    if os.environ.get("CHURN_TELCO_CSV") or os.environ.get("CHURN_TELCO_URL"):
        options = DemoOptions(feature_config=CONFIGS / "feature_pipeline_telco.yaml")
    demo = TwinDemo(cfg, cfg.home / "demo", options, images)
    try:
        report = demo.run()
    except (DemoError, twin.TwinError, twin_agent.AgentPullError, twin_agent.AgentLoadError) as e:
        _say(f"FAILED: {e}")
        return 1
    finally:
        demo.close()
    for key, seconds in report.seconds.items():
        _say(f"{key:32s} {seconds:6.1f} s")
    _say("passed: same probability on the twin as on the laptop; MLflow kept every run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
