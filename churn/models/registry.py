"""MLflow tracking and registry helpers: log candidates, register, gated promotion, rollback.

Conventions:

- Tracking URI: churn.settings (SQLite by default). With a SQLite backend the
  artifacts go next to the database (`<db dir>/artifacts/<experiment>`), never to a
  `./mlruns` relative to the working directory; with a tracking server the server
  decides the artifact location.
- One run per candidate. Held-out metrics are logged as `test_<metric>`, training CV
  as `cv_roc_auc`. Tags: `feast_feature_service`, `data_fingerprint` (training data),
  `heldout_fingerprint` (evaluation set, see churn.models.fingerprint), `model_kind`.
- Artifacts: `model` (mlflow.sklearn flavour, skops format, signature + input
  example), `serving_model/` (churn.models.serialize: no pickle), `plots/`.
- Registry aliases, not stages: "champion" is what serving loads; "previous-champion"
  is what rollback() restores. Each promoted version carries the tag
  `previous_champion_version`, so rollback can walk back more than one step.

Promotion compares like with like: the challenger's held-out score against the
champion's score on the SAME held-out set. When the champion's run was evaluated on
data with another fingerprint, the champion is re-scored on the challenger's held-out
set, which the caller must pass in (`evaluation_data`). With a `NoiseRule` the
champion is always re-scored on those customers and the challenger must beat it by
more than the noise: the lower end of a paired bootstrap interval of the difference
(churn.models.promotion) must exceed `min_improvement`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from churn.features.derived import add_derived
from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import Evaluation, churn_scores
from churn.models.fingerprint import evaluation_fingerprint
from churn.models.promotion import NoiseRule, PairedDifference, paired_bootstrap
from churn.models.serialize import SKOPS_TRUSTED_TYPES, ServingModel, load_model, model_kind
from churn.schema import model_input_names
from churn.settings import get_settings

CHAMPION: Final = "champion"
PREVIOUS_CHAMPION: Final = "previous-champion"
MODEL_ARTIFACT: Final = "model"
SERVING_ARTIFACT: Final = "serving_model"
# The champion's drift detector (alibi-detect directory), logged on its run.
DRIFT_ARTIFACT: Final = "drift_detector"
PLOTS_ARTIFACT: Final = "plots"
TEST_PREFIX: Final = "test_"
TAG_FEATURE_SERVICE: Final = "feast_feature_service"
TAG_DATA_FINGERPRINT: Final = "data_fingerprint"
TAG_HELDOUT_FINGERPRINT: Final = "heldout_fingerprint"
TAG_MODEL_KIND: Final = "model_kind"
TAG_PREVIOUS_CHAMPION: Final = "previous_champion_version"
TAG_LOGGED_MODEL: Final = "logged_model_id"

# Metrics the registry can recompute from scores: name -> (scorer, higher is better).
SCORERS: Final[dict[str, tuple[Callable[[Any, Any], float], bool]]] = {
    "roc_auc": (lambda y, s: float(roc_auc_score(y, s)), True),
    "pr_auc": (lambda y, s: float(average_precision_score(y, s)), True),
    "brier": (lambda y, s: float(brier_score_loss(y, s)), False),
    "log_loss": (lambda y, s: float(log_loss(y, s, labels=[0, 1])), False),
}


def _mlflow() -> Any:
    """Import MLflow lazily: it is heavy, and serving imports churn.models without it."""
    import mlflow

    return mlflow


def use_tracking(tracking_uri: str | None = None) -> Any:
    """Point MLflow (tracking and registry) at `tracking_uri` or the settings' URI.

    Creates the SQLite database's directory (SQLite does not); returns an MlflowClient.
    """
    mlflow = _mlflow()
    uri = resolve_tracking_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """`tracking_uri`, or churn.settings' (SQLite under the project's home by default)."""
    return tracking_uri or get_settings().tracking_uri


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLAlchemy SQLite URI (sqlite:////abs/path or sqlite:///rel)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(unquote(uri[len(prefix) :].split("?", 1)[0])).resolve()


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """The id of experiment `name`, created with an absolute artifact location if new."""
    client = use_tracking(tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    db = _sqlite_path(resolve_tracking_uri(tracking_uri))
    location = (db.parent / "artifacts" / name).as_uri() if db is not None else None
    return str(client.create_experiment(name, artifact_location=location))


def _pip_requirements(kind: str) -> list[str]:
    """Exact pins of what loading the logged sklearn model imports (no slow inference)."""
    packages = ["scikit-learn", "numpy", "pandas", "scipy", "skops"]
    if kind in ("xgboost", "lightgbm"):
        packages.append(_distribution_of(kind))
    return [f"{p}=={package_version(p)}" for p in packages]


def _distribution_of(module: str) -> str:
    """The installed distribution that provides `module`.

    Why: one import name ships under several distributions (xgboost and xgboost-cpu,
    the CPU-only build this project pins), and the logged requirement must name the
    one that is installed, or MLflow's environment would pull the other.
    """
    names = packages_distributions().get(module)
    if not names:
        raise RuntimeError(f"no installed distribution provides the module {module!r}")
    return names[0]


def log_candidate(
    *,
    experiment: str,
    candidate: TrainedCandidate,
    evaluation: Evaluation,
    X_example: pd.DataFrame,  # noqa: N803
    serving_dir: Path,
    plots: Mapping[str, Path],
    feast_feature_service: str,
    data_fingerprint: str,
    heldout_fingerprint: str,
    extra_params: Mapping[str, Any] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    nested: bool = False,
    repeated: Mapping[str, Any] | None = None,
) -> str:
    """Log one trained candidate as one MLflow run; returns the run id.

    Besides the held-out figures: the search (every trial as `search/trials.json`,
    its history plot, the best trial), the calibration's OOF Brier and ECE before
    and after, and `repeated` (churn.models.repeated) as `repeated_<metric>_mean/_sd`.

    `nested=True` makes the run a child of an already active run (e.g. the one ZenML's
    MLflow experiment tracker opens for a step) instead of failing on it.
    """
    mlflow = _mlflow()
    from mlflow.models import infer_signature

    experiment_id = ensure_experiment(experiment, tracking_uri)
    pipeline = candidate.pipeline
    kind = model_kind(pipeline)
    inputs = model_input_names(int(pipeline.steps[0][1].feature_version))
    example = X_example[inputs].head(5).reset_index(drop=True)
    # Integers declared as doubles: MLflow's schema enforcement upcasts int inputs, and an
    # integer schema would reject a batch where a value is missing (NaN is a float).
    ints = example.select_dtypes("integer").columns
    example[ints] = example[ints].astype("float64")
    signature = infer_signature(example, churn_scores(pipeline, example))
    params: dict[str, Any] = {
        "model_kind": kind,
        "seed": candidate.seed,
        "cv_folds": candidate.cv_folds,
        "calibration": candidate.calibrator.method,
        "tune_rows": candidate.tune_rows,
        "fit_rows": candidate.fit_rows,
        "search_trials": candidate.search.get("trials", len(candidate.cv_results)),
        "search_stopped_by": candidate.search.get("stopped_by", "grid"),
        **{f"model.{k}": v for k, v in candidate.params.items()},
        **dict(extra_params or {}),
    }
    tags = {
        TAG_MODEL_KIND: kind,
        TAG_FEATURE_SERVICE: feast_feature_service,
        TAG_DATA_FINGERPRINT: data_fingerprint,
        TAG_HELDOUT_FINGERPRINT: heldout_fingerprint,
        **dict(extra_tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=kind, nested=nested) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        metrics = {
            "cv_roc_auc": candidate.cv_auc,
            "cv_roc_auc_std": candidate.cv_auc_std,
            "fit_seconds": candidate.fit_seconds,
            **evaluation.to_flat_metrics(prefix=TEST_PREFIX),
            **_calibration_metrics(candidate.calibration),
            **_repeated_metrics(repeated),
        }
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        for path in plots.values():
            mlflow.log_artifact(str(path), artifact_path=PLOTS_ARTIFACT)
        mlflow.log_dict(evaluation.summary(), "evaluation.json")
        _log_search(mlflow, candidate)
        if repeated is not None:
            mlflow.log_dict(dict(repeated), "repeated_evaluation.json")
        mlflow.log_artifacts(str(serving_dir), artifact_path=SERVING_ARTIFACT)
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES[kind],
            pyfunc_predict_fn="predict_proba",
            pip_requirements=_pip_requirements(kind),
        )
        # MLflow 3 stores models as LoggedModels outside the run's artifacts: keep the
        # link so register() names the model directly instead of resolving runs:/.
        mlflow.set_tag(TAG_LOGGED_MODEL, info.model_id)
        return str(run.info.run_id)


def _calibration_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """OOF Brier and ECE of the raw scores and of the kept calibration."""
    if not report:
        return {}
    chosen = report["chosen"]
    return {
        "oof_brier_raw": float(report["brier"]["none"]),
        "oof_ece_raw": float(report["ece"]["none"]),
        "oof_brier_calibrated": float(report["brier"][chosen]),
        "oof_ece_calibrated": float(report["ece"][chosen]),
    }


def _repeated_metrics(repeated: Mapping[str, Any] | None) -> dict[str, float]:
    """repeated_<metric>_mean / _sd for every metric of a repeated evaluation."""
    out: dict[str, float] = {}
    for metric, value in (repeated or {}).items():
        if isinstance(value, Mapping):
            out[f"repeated_{metric}_mean"] = float(value["mean"])
            out[f"repeated_{metric}_sd"] = float(value["sd"])
    return out


def _log_search(mlflow: Any, candidate: TrainedCandidate) -> None:
    """The study: every trial's parameters and CV AUC, and the history plot."""
    from churn.models.search import Trial, history_plot

    trials = [
        Trial(i, r.params, r.mean_auc, r.std_auc, r.fold_aucs, 0.0)
        for i, r in enumerate(candidate.cv_results)
    ]
    rows = [
        {"number": t.number, "params": t.params, "mean_auc": t.mean_auc, "fold_aucs": t.fold_aucs}
        for t in trials
    ]
    mlflow.log_dict({**candidate.search, "trials": rows}, "search/trials.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search_history.png"
        history_plot(candidate.kind, trials, path)
        mlflow.log_artifact(str(path), artifact_path="search")


def register(run_id: str, name: str, tracking_uri: str | None = None) -> str:
    """Register the run's `model` artifact as a new version of `name`; returns the version."""
    client = use_tracking(tracking_uri)
    model_id = client.get_run(run_id).data.tags.get(TAG_LOGGED_MODEL)
    uri = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{MODEL_ARTIFACT}"
    version = _mlflow().register_model(uri, name)
    return str(version.version)


@dataclass(frozen=True)
class PromotionDecision:
    """What promote_if_better decided and why (logged by the pipeline step)."""

    promoted: bool
    name: str
    challenger_version: str
    champion_version: str | None
    metric: str
    challenger_score: float
    champion_score: float | None
    champion_rescored: bool
    reason: str
    # The paired bootstrap interval of challenger - champion, when a NoiseRule decided.
    difference_low: float | None = None
    difference_high: float | None = None


def _alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The model version behind `alias`, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and (
            "alias" in str(e).lower()
        ):
            return None
        raise


def load_serving_model(
    name: str, version: str, tracking_uri: str | None = None, dst: Path | None = None
) -> ServingModel:
    """Download a version's `serving_model/` artifacts and load them (no pickle)."""
    client = use_tracking(tracking_uri)
    run_id = client.get_model_version(name, version).run_id
    target = dst if dst is not None else Path(tempfile.mkdtemp(prefix=f"{name}-v{version}-"))
    local = client.download_artifacts(run_id, SERVING_ARTIFACT, str(target))
    return load_model(Path(local))


def _champion_score(
    client: Any,
    name: str,
    champion: Any,
    metric: str,
    fingerprint: str,
    evaluation_data: tuple[pd.DataFrame, Any] | None,
    tracking_uri: str | None,
) -> tuple[float, bool]:
    """The champion's `metric` on the challenger's held-out set; (score, was re-scored)."""
    run = client.get_run(champion.run_id)
    logged = run.data.metrics.get(f"{TEST_PREFIX}{metric}")
    if run.data.tags.get(TAG_HELDOUT_FINGERPRINT) == fingerprint and logged is not None:
        return float(logged), False
    if evaluation_data is None:
        raise ValueError(
            f"champion v{champion.version} of {name!r} was evaluated on other data "
            f"(heldout_fingerprint {run.data.tags.get(TAG_HELDOUT_FINGERPRINT)!r} != "
            f"{fingerprint!r}); pass evaluation_data=(X, y) to re-score it"
        )
    X, y = evaluation_data  # noqa: N806
    model = load_serving_model(name, str(champion.version), tracking_uri)
    scorer, _ = SCORERS[metric]
    return scorer(np.asarray(y).astype(np.int64), model.predict_proba(_inputs_of(model, X))), True


def _inputs_of(model: ServingModel, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """`X` with the derived features of `model`'s feature set that it lacks.

    Why: a champion of another feature set is re-scored on the challenger's held-out
    customers: a v1 challenger's frame lacks a v2 champion's features. Every
    set holds every raw feature, and derived features are a function of those, computed
    by the same derive() the Feast views and serving use.
    """
    missing = [name for name in model.input_names if name not in X.columns]
    if not missing:
        return X
    return add_derived(X, missing)


def promote_if_better(
    name: str,
    version: str,
    metric: str,
    held_out_score: float,
    gates_passed: bool,
    *,
    evaluation_data: tuple[pd.DataFrame, Any] | None = None,
    min_improvement: float = 0.0,
    tracking_uri: str | None = None,
    noise: NoiseRule | None = None,
    challenger_scores: Any = None,
) -> PromotionDecision:
    """Move alias "champion" to `version` iff gates passed and it beats the champion.

    `metric` is a key of SCORERS ("roc_auc", "pr_auc", "brier", "log_loss"); the
    challenger must beat the champion by more than `min_improvement` in the metric's
    direction, on the same held-out set (see the module docstring). When
    `evaluation_data` is given, it must be the challenger's held-out set (its
    fingerprint is checked against the challenger run's tag). The replaced champion
    gets alias "previous-champion", so rollback() can restore it.

    `noise` (with `evaluation_data` and the challenger's `challenger_scores` on it):
    the champion is re-scored on the same customers and the challenger wins only if
    the paired bootstrap interval's lower end exceeds `min_improvement`.
    """
    if metric not in SCORERS:
        raise ValueError(f"unknown promotion metric {metric!r}; expected one of {sorted(SCORERS)}")
    client = use_tracking(tracking_uri)
    challenger = client.get_model_version(name, version)
    fingerprint = client.get_run(challenger.run_id).data.tags.get(TAG_HELDOUT_FINGERPRINT)
    if not fingerprint:
        raise ValueError(f"run {challenger.run_id} has no {TAG_HELDOUT_FINGERPRINT} tag")
    if evaluation_data is not None and evaluation_fingerprint(*evaluation_data) != fingerprint:
        raise ValueError(
            "evaluation_data is not the challenger's held-out set: its fingerprint differs "
            f"from the run's {TAG_HELDOUT_FINGERPRINT} {fingerprint!r}"
        )
    champion = _alias_version(client, name, CHAMPION)

    def decision(
        promoted: bool, champion_score: float | None, rescored: bool, reason: str
    ) -> PromotionDecision:
        return PromotionDecision(
            promoted=promoted,
            name=name,
            challenger_version=str(version),
            champion_version=None if champion is None else str(champion.version),
            metric=metric,
            challenger_score=float(held_out_score),
            champion_score=champion_score,
            champion_rescored=rescored,
            reason=reason,
        )

    if not gates_passed:
        return decision(False, None, False, "model gates failed: the champion is unchanged")
    if champion is not None and str(champion.version) == str(version):
        return decision(False, float(held_out_score), False, f"v{version} is already the champion")
    if champion is None:
        _set_champion(client, name, str(version), previous=None)
        return decision(True, None, False, "no champion yet: the challenger becomes champion")
    if noise is not None:
        return _noise_aware(
            client,
            decision,
            name=name,
            version=str(version),
            champion=champion,
            metric=metric,
            evaluation_data=evaluation_data,
            challenger_scores=challenger_scores,
            min_improvement=min_improvement,
            noise=noise,
            tracking_uri=tracking_uri,
        )
    champion_score, rescored = _champion_score(
        client, name, champion, metric, fingerprint, evaluation_data, tracking_uri
    )
    higher_is_better = SCORERS[metric][1]
    gain = held_out_score - champion_score if higher_is_better else champion_score - held_out_score
    where = "re-scored on the challenger's held-out set" if rescored else "same held-out set"
    if gain > min_improvement:
        _set_champion(client, name, str(version), previous=str(champion.version))
        return decision(
            True,
            champion_score,
            rescored,
            f"{metric} {held_out_score:.5f} beats champion v{champion.version}'s "
            f"{champion_score:.5f} by {gain:.5f} ({where})",
        )
    return decision(
        False,
        champion_score,
        rescored,
        f"{metric} {held_out_score:.5f} does not beat champion v{champion.version}'s "
        f"{champion_score:.5f} by more than {min_improvement} ({where})",
    )


def _noise_aware(
    client: Any,
    decision: Callable[..., PromotionDecision],
    *,
    name: str,
    version: str,
    champion: Any,
    metric: str,
    evaluation_data: tuple[pd.DataFrame, Any] | None,
    challenger_scores: Any,
    min_improvement: float,
    noise: NoiseRule,
    tracking_uri: str | None,
) -> PromotionDecision:
    """promote_if_better's paired-bootstrap branch (see churn.models.promotion)."""
    if evaluation_data is None or challenger_scores is None:
        raise ValueError("noise-aware promotion needs evaluation_data and challenger_scores")
    X, y = evaluation_data  # noqa: N806
    labels = np.asarray(y).astype(np.int64)
    champion_model = load_serving_model(name, str(champion.version), tracking_uri)
    champion_scores = champion_model.predict_proba(_inputs_of(champion_model, X))
    scorer, higher_is_better = SCORERS[metric]
    diff = paired_bootstrap(
        labels, challenger_scores, champion_scores, scorer, higher_is_better, noise
    )
    challenger_value = scorer(labels, challenger_scores)
    champion_value = scorer(labels, champion_scores)
    promoted = diff.low > min_improvement
    text = _noise_reason(metric, challenger_value, champion_value, str(champion.version), diff)
    if promoted:
        _set_champion(client, name, version, previous=str(champion.version))
        reason = f"{text}: above {min_improvement}, the challenger is promoted"
    elif diff.high < 0.0:
        reason = f"{text}: not above {min_improvement}, the challenger is worse: the champion stays"
    else:
        reason = f"{text}: not above {min_improvement}, within the noise: the champion stays"
    out: PromotionDecision = decision(promoted, champion_value, True, reason)
    return PromotionDecision(
        **{
            **out.__dict__,
            "challenger_score": float(challenger_value),
            "difference_low": diff.low,
            "difference_high": diff.high,
        }
    )


def _noise_reason(
    metric: str, challenger: float, champion: float, champion_version: str, d: PairedDifference
) -> str:
    return (
        f"{metric} {challenger:.5f} vs champion v{champion_version}'s {champion:.5f} on the "
        f"same {d.n} held-out customers: gain {d.difference:+.5f}, "
        f"{d.confidence:.0%} paired bootstrap interval [{d.low:+.5f}, {d.high:+.5f}] "
        f"({d.n_bootstrap} resamples); its lower end is"
    )


TAG_PROMOTION: Final = "promotion_reason"


def record_promotion(decision: PromotionDecision, tracking_uri: str | None = None) -> None:
    """Tag the challenger version with the decision's reason (and whether it won).

    Why: the registry then says, next to each version, why it is or is not the
    champion (the metric, both scores, on which held-out set), for the MLflow UI and
    for readers without the training run's ZenML outputs (the loop demo).
    """
    client = use_tracking(tracking_uri)
    name, version = decision.name, decision.challenger_version
    client.set_model_version_tag(name, version, TAG_PROMOTION, decision.reason)
    client.set_model_version_tag(name, version, "promoted", str(decision.promoted).lower())


def _set_champion(client: Any, name: str, version: str, previous: str | None) -> None:
    """Point "champion" at `version`; "previous-champion" at the version it replaces."""
    client.set_model_version_tag(name, version, TAG_PREVIOUS_CHAMPION, previous or "")
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(name, CHAMPION, version)


def rollback(name: str, tracking_uri: str | None = None) -> str:
    """Restore the previous champion; returns the version that is champion again.

    The demoted version is tagged `rolled_back=true`. "previous-champion" then moves one
    step further back (the restored version's own predecessor), or is removed.
    """
    client = use_tracking(tracking_uri)
    current = _alias_version(client, name, CHAMPION)
    previous = _alias_version(client, name, PREVIOUS_CHAMPION)
    if current is None or previous is None:
        raise ValueError(
            f"{name!r} has no {CHAMPION!r} and {PREVIOUS_CHAMPION!r} to roll back between"
        )
    restored = str(previous.version)
    client.set_registered_model_alias(name, CHAMPION, restored)
    client.set_model_version_tag(name, str(current.version), "rolled_back", "true")
    before = client.get_model_version(name, restored).tags.get(TAG_PREVIOUS_CHAMPION, "")
    if before:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before)
    else:
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    return restored


class NoChampionError(LookupError):
    """There is no champion to use: no MLflow database yet, no such model, or no alias."""


class ChampionError(RuntimeError):
    """The champion exists but its files are incomplete (e.g. serving metadata missing)."""


@dataclass(frozen=True)
class ChampionRef:
    """Which registry version is the champion, and the run that logged it."""

    name: str
    version: str
    run_id: str


def champion_ref(name: str, tracking_uri: str | None = None) -> ChampionRef:
    """The version behind alias "champion": the one champion lookup of the project.

    NoChampionError (saying to train first) when there is none; a SQLite store that
    does not exist yet is reported without opening it (that would create an empty one).
    """
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    hint = "run the training pipeline first (`make training-pipeline`)"
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        raise NoChampionError(f"no MLflow database at {db} yet, so no champion of {name!r}: {hint}")
    client = use_tracking(uri)
    try:
        version = _alias_version(client, name, CHAMPION)
    except MlflowException as e:  # no such registered model
        raise NoChampionError(
            f"MLflow at {uri} has no {CHAMPION!r} of {name!r} (no such model): {hint}"
        ) from e
    if version is None:
        raise NoChampionError(f"MLflow at {uri} has no {CHAMPION!r} of {name!r} yet: {hint}")
    return ChampionRef(name=name, version=str(version.version), run_id=str(version.run_id))


def champion_version(name: str, tracking_uri: str | None = None) -> str | None:
    """The version number behind "champion", or None."""
    try:
        return champion_ref(name, tracking_uri).version
    except NoChampionError:
        return None


@dataclass(frozen=True)
class ChampionArtifacts:
    """The champion's files, downloaded from MLflow, and what a bundle needs to know."""

    model_name: str
    version: str
    model_dir: Path
    drift_dir: Path | None
    threshold: float
    feature_service: str


def fetch_champion(
    model_name: str, dst: Path | None = None, tracking_uri: str | None = None
) -> ChampionArtifacts:
    """Download the champion's serving model and drift detector (when it has one).

    The threshold and FeatureService come from the serving model's manifest metadata,
    written by the training pipeline's register step, so they cannot drift apart from
    the model they belong to.
    """
    ref = champion_ref(model_name, tracking_uri)
    client = use_tracking(tracking_uri)
    target = dst or Path(tempfile.mkdtemp(prefix=f"{model_name}-v{ref.version}-"))
    model_dir = Path(client.download_artifacts(ref.run_id, SERVING_ARTIFACT, str(target)))
    artifacts = {a.path for a in client.list_artifacts(ref.run_id)}
    drift_dir = (
        Path(client.download_artifacts(ref.run_id, DRIFT_ARTIFACT, str(target)))
        if DRIFT_ARTIFACT in artifacts
        else None
    )
    metadata = json.loads((model_dir / "manifest.json").read_text()).get("metadata", {})
    missing = [k for k in ("threshold", "feature_service") if k not in metadata]
    if missing:
        raise ChampionError(f"{model_name} v{ref.version}: serving model metadata lacks {missing}")
    return ChampionArtifacts(
        model_name=model_name,
        version=ref.version,
        model_dir=model_dir,
        drift_dir=drift_dir,
        threshold=float(metadata["threshold"]),
        feature_service=str(metadata["feature_service"]),
    )


def load_champion(name: str, tracking_uri: str | None = None) -> Pipeline:
    """The champion as the logged sklearn Pipeline (skops; needs churn importable)."""
    use_tracking(tracking_uri)
    model: Pipeline = _mlflow().sklearn.load_model(f"models:/{name}@{CHAMPION}")
    return model


def load_champion_serving(
    name: str, tracking_uri: str | None = None, dst: Path | None = None
) -> ServingModel:
    """The champion's safe serving model (what the inference runtime loads)."""
    ref = champion_ref(name, tracking_uri)
    return load_serving_model(name, ref.version, tracking_uri, dst)


def heldout_metrics(
    name: str, version: str, metrics: tuple[str, ...], tracking_uri: str | None = None
) -> dict[str, float]:
    """A registered version's offline held-out figures (its run's `test_<metric>`s).

    Why: realized performance in production is judged beside what the model
    promised on held-out data when it was trained. Metrics the run lacks are left out.
    """
    client = use_tracking(tracking_uri)
    run = client.get_run(client.get_model_version(name, version).run_id)
    logged = run.data.metrics
    return {m: float(logged[f"{TEST_PREFIX}{m}"]) for m in metrics if f"{TEST_PREFIX}{m}" in logged}
