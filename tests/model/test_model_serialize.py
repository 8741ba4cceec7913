"""Safe serialization of real Telco models: the loaded model IS the trained pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from model_support import Split
from scipy.special import logit

from churn.models.candidates import TrainedCandidate
from churn.models.serialize import MODEL_FILES, load_model, save_model


@pytest.mark.parametrize("kind", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_loaded_model_equals_pipeline(
    kind: str, candidates: dict[str, TrainedCandidate], split: Split, tmp_path: Path
) -> None:
    pipeline = candidates[kind].pipeline
    save_model(pipeline, tmp_path / kind, metadata={"threshold": 0.3, "kind": kind})
    files = sorted(p.name for p in (tmp_path / kind).iterdir())
    assert files == sorted(["manifest.json", MODEL_FILES[kind]])
    assert not any(name.endswith((".pkl", ".joblib", ".pickle")) for name in files)
    loaded = load_model(tmp_path / kind)
    assert loaded.metadata == {"threshold": 0.3, "kind": kind}

    # The serving path: a dict of numpy arrays, no DataFrame.
    columns = {name: split.X_test[name].to_numpy() for name in split.X_test.columns}
    expected = pipeline.predict_proba(split.X_test)[:, 1]
    np.testing.assert_allclose(loaded.predict_proba(columns), expected, rtol=0, atol=1e-6)
    # Lists (what Feast's online read returns) and single rows give the same answers.
    one = {name: values[:1].tolist() for name, values in columns.items()}
    np.testing.assert_allclose(loaded.predict_proba(one), expected[:1], rtol=0, atol=1e-6)

    values, names = loaded.contributions({k: v[:40] for k, v in columns.items()})
    assert values.shape == (40, len(names)) and names[-1] == "bias"
    assert "contract=Month-to-month" in names
    target = expected[:40] if loaded.contribution_units == "probability" else logit(expected[:40])
    np.testing.assert_allclose(values.sum(axis=1), target, rtol=0, atol=1e-4)


def test_tampered_model_file_is_rejected(
    candidates: dict[str, TrainedCandidate], tmp_path: Path
) -> None:
    save_model(candidates["logreg"].pipeline, tmp_path)
    payload = json.loads((tmp_path / "logreg.json").read_text())
    payload["intercept"] += 1.0
    (tmp_path / "logreg.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path)
