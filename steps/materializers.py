"""ZenML materializers for the training stage's own types (no pickle fallback).

Why: without them ZenML pickles TrainedCandidate and Evaluation whole, warns on every
step that the artifact "cannot be loaded with a different Python version", and a
version mismatch would surface as an obscure unpickling error or, worse, a model that
loads and scores differently. Here:

- Evaluation is plain JSON (its arrays as lists): readable in the artifact store and
  loadable by any version;
- TrainedCandidate keeps its metadata (calibration map included) and out-of-fold
  scores and labels in JSON and .npy, and its fitted sklearn Pipeline in a joblib file
  beside the versions of Python, scikit-learn, XGBoost and LightGBM that wrote it;
  loading under other versions fails naming both.

ZenML registers a materializer for its ASSOCIATED_TYPES when the class is defined,
which is how a dict[str, Evaluation] output finds it for each value: the step modules
that produce or consume these types import this module.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, fields
from importlib.metadata import version as package_version
from typing import Any, ClassVar

import joblib
import numpy as np
import sklearn
import xgboost
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer

from churn.models.calibration import Calibrator
from churn.models.candidates import CvResult, TrainedCandidate
from churn.models.evaluate import CalibrationBin, Evaluation, SliceMetrics

_EVALUATION_FILE = "evaluation.json"
_CANDIDATE_FILE = "candidate.json"
_OOF_FILE = "oof_scores.npy"
_OOF_LABELS_FILE = "oof_labels.npy"
_PIPELINE_FILE = "pipeline.joblib"


def _in(uri: str, name: str) -> str:
    """A file inside an artifact's URI (a local path or s3://...: not a pathlib Path)."""
    return f"{uri.rstrip('/')}/{name}"


class ArtifactVersionError(RuntimeError):
    """A stored model was written by other library versions than the running ones."""


def library_versions() -> dict[str, str]:
    """The versions a pickled sklearn/XGBoost model is only guaranteed to load under."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        # The distribution's version, not an import: importing lightgbm needs libgomp.
        "lightgbm": package_version("lightgbm"),
    }


def evaluation_to_json(evaluation: Evaluation) -> dict[str, Any]:
    """Evaluation as JSON-ready data (numpy arrays as lists, nested dataclasses as dicts)."""
    data = asdict(evaluation)
    data["y_true"] = evaluation.y_true.tolist()
    data["scores"] = evaluation.scores.tolist()
    return data


def evaluation_from_json(data: dict[str, Any]) -> Evaluation:
    """Inverse of evaluation_to_json (exact: JSON keeps every float's repr)."""
    values = dict(data)
    values["calibration"] = [CalibrationBin(**b) for b in data["calibration"]]
    values["slices"] = [SliceMetrics(**s) for s in data["slices"]]
    values["y_true"] = np.asarray(data["y_true"], dtype=np.int64)
    values["scores"] = np.asarray(data["scores"], dtype=np.float64)
    return Evaluation(**values)


def candidate_metadata(candidate: TrainedCandidate) -> dict[str, Any]:
    """Every TrainedCandidate field except the fitted pipeline and the score array."""
    skip = {"pipeline", "oof_scores", "oof_labels"}
    data = {f.name: getattr(candidate, f.name) for f in fields(candidate) if f.name not in skip}
    data["cv_results"] = [asdict(r) for r in candidate.cv_results]
    data["calibrator"] = candidate.calibrator.to_json()
    return data


def check_versions(stored: dict[str, str], what: str) -> None:
    """Raise ArtifactVersionError naming each library whose version differs."""
    running = library_versions()
    changed = {k: (v, running.get(k)) for k, v in stored.items() if running.get(k) != v}
    if changed:
        detail = ", ".join(f"{k} {old} (running {new})" for k, (old, new) in changed.items())
        raise ArtifactVersionError(
            f"{what} was written under {detail}: retrain it with the installed versions "
            "or install the ones it was written with"
        )


class EvaluationMaterializer(BaseMaterializer):
    """Evaluation <-> one JSON file."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Evaluation,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: Evaluation) -> None:
        """Write the evaluation as JSON."""
        with self.artifact_store.open(_in(self.uri, _EVALUATION_FILE), "w") as f:
            json.dump(evaluation_to_json(data), f)

    def load(self, data_type: type[Any]) -> Evaluation:
        """Read the evaluation back."""
        with self.artifact_store.open(_in(self.uri, _EVALUATION_FILE), "r") as f:
            return evaluation_from_json(json.load(f))


class TrainedCandidateMaterializer(BaseMaterializer):
    """TrainedCandidate <-> JSON metadata, .npy scores, joblib pipeline (version-checked)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (TrainedCandidate,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: TrainedCandidate) -> None:
        """Write the three files; the versions go into the metadata file."""
        meta = {"candidate": candidate_metadata(data), "versions": library_versions()}
        with self.artifact_store.open(_in(self.uri, _CANDIDATE_FILE), "w") as f:
            json.dump(meta, f)
        with self.artifact_store.open(_in(self.uri, _OOF_FILE), "wb") as f:
            np.save(f, data.oof_scores, allow_pickle=False)
        with self.artifact_store.open(_in(self.uri, _OOF_LABELS_FILE), "wb") as f:
            np.save(f, data.oof_labels, allow_pickle=False)
        with self.artifact_store.open(_in(self.uri, _PIPELINE_FILE), "wb") as f:
            joblib.dump(data.pipeline, f)

    def load(self, data_type: type[Any]) -> TrainedCandidate:
        """Read it back; ArtifactVersionError before unpickling under other versions."""
        with self.artifact_store.open(_in(self.uri, _CANDIDATE_FILE), "r") as f:
            meta = json.load(f)
        check_versions(meta["versions"], f"candidate artifact {self.uri}")
        with self.artifact_store.open(_in(self.uri, _OOF_FILE), "rb") as f:
            oof = np.load(f, allow_pickle=False)
        with self.artifact_store.open(_in(self.uri, _OOF_LABELS_FILE), "rb") as f:
            oof_labels = np.load(f, allow_pickle=False)
        with self.artifact_store.open(_in(self.uri, _PIPELINE_FILE), "rb") as f:
            pipeline = joblib.load(f)
        values = dict(meta["candidate"])
        values["cv_results"] = [
            CvResult(**{**r, "fold_aucs": tuple(r["fold_aucs"])}) for r in values["cv_results"]
        ]
        values["calibrator"] = Calibrator.from_json(values["calibrator"])
        return TrainedCandidate(**values, pipeline=pipeline, oof_scores=oof, oof_labels=oof_labels)
