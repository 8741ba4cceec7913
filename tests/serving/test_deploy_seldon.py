"""The deployment step's Kubernetes path: upload the bundle, apply the Seldon objects.

Object storage is an in-memory fsspec filesystem (the same `put` call s3fs serves on
EKS); the Kubernetes API is the real HTTP server of test_seldon's `kube` fixture.
"""

from __future__ import annotations

from pathlib import Path

import fsspec
from sklearn.pipeline import Pipeline
from test_seldon import NAMESPACE, V2_BASE, FakeKube, kube  # noqa: F401 (fixture)

from deployment.bundle import build_bundle_from_pipeline
from deployment.deploy import SeldonTarget, deploy_seldon

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn-mlops-mlserver:0.1.0"


def test_deploy_seldon_uploads_bundle_and_drift_model_then_applies_v2(
    kube: FakeKube,  # noqa: F811
    churn_model: Pipeline,
    drift_detector_dir: Path,
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    build_bundle_from_pipeline(
        bundle, churn_model, model_version="churn-classifier-v7", threshold=0.3,
        drift_dir=drift_detector_dir,
    )  # fmt: skip
    fs = fsspec.filesystem("memory")
    target = SeldonTarget(
        namespace=NAMESPACE, image=IMAGE, artifact_root="s3://churn-artifacts/serving"
    )
    results = deploy_seldon(
        bundle, target, api_client=kube.api_client, fs=fs, work_dir=tmp_path / "work"
    )

    base = "s3://churn-artifacts/serving/churn-classifier-v7"
    assert fs.exists(f"{base}/bundle/manifest.json")
    assert fs.exists(f"{base}/drift-model/model-settings.json")
    uploaded = {Path(p).name for p in fs.find(f"{base}/bundle")}
    local = {p.name for p in bundle.rglob("*") if p.is_file()}
    assert uploaded == local

    assert [(r.kind, r.name, r.action) for r in results] == [
        ("Server", "churn-mlserver", "created"),
        ("Model", "churn", "created"),
        ("Model", "churn-drift", "created"),
        ("Pipeline", "churn-pipeline", "created"),
    ]
    model = next(r.body for r in kube.state.received if r.path == f"{V2_BASE}/models")
    assert model is not None
    assert model["spec"]["storageUri"] == f"{base}/bundle"
    assert model["metadata"]["annotations"]["churn-mlops/model-version"] == "churn-classifier-v7"


def test_deploy_seldon_v1_applies_one_seldondeployment_without_a_drift_model(
    kube: FakeKube,  # noqa: F811
    churn_model: Pipeline,
    drift_detector_dir: Path,
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    build_bundle_from_pipeline(
        bundle, churn_model, model_version="churn-classifier-v8", threshold=0.3,
        drift_dir=drift_detector_dir,
    )  # fmt: skip
    fs = fsspec.filesystem("memory")
    target = SeldonTarget(
        namespace=NAMESPACE, image=IMAGE, artifact_root="s3://churn-v1/serving", protocol="v1"
    )
    results = deploy_seldon(bundle, target, api_client=kube.api_client, fs=fs)
    assert [(r.kind, r.action) for r in results] == [("SeldonDeployment", "created")]
    assert not fs.exists("s3://churn-v1/serving/churn-classifier-v8/drift-model")
    assert fs.exists("s3://churn-v1/serving/churn-classifier-v8/bundle/manifest.json")
