"""Drift report: windows, per-feature verdicts, distributions, HTML and JSON files.

A real detector (alibi-detect TabularDrift) is fitted on synthetic customers; the
"reference-like" population is another seed of the same generator, the "shifted" one
has mostly month-to-month contracts and monthly charges x 1.2.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data.contract import validate
from churn.data.synthetic import generate
from churn.drift import DriftDetector, fit_detector, load_detector
from churn.drift.encoding import FeatureSpec
from churn.features.derived import add_derived
from churn.monitoring.drift_report import (
    DriftReport,
    build_drift_report,
    distribution,
    draw_windows,
    numeric_edges,
    reference_frame,
    render_html,
    write_drift_report,
)
from churn.schema import Kind, model_input_names

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SOURCE = {"kind": "snapshot", "snapshot_time": "2025-02-01T00:00:00+00:00"}


def shift(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Mostly month-to-month contracts and monthly (and total) charges x 1.2."""
    out = frame.copy()
    moved = np.random.default_rng(seed).random(len(out)) < 0.85
    out.loc[moved, "contract"] = "Month-to-month"
    out["monthly_charges"] = (out["monthly_charges"] * 1.2).round(2)
    out["total_charges"] = (out["total_charges"] * 1.2).round(2)
    validate(out, require_timestamps=True)  # still a valid snapshot: the shift is real data
    return add_derived(out)


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("detector") / "detector"
    fit_detector(add_derived(generate(3000, seed=31)), seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def detector(detector_dir: Path) -> DriftDetector:
    return load_detector(detector_dir, features=model_input_names())


@pytest.fixture(scope="module")
def reports(detector: DriftDetector, detector_dir: Path) -> dict[str, DriftReport]:
    reference = reference_frame(detector_dir)
    current = {
        "like": add_derived(generate(3000, seed=32)),
        "shifted": shift(generate(3000, seed=33), seed=33),
    }
    return {
        name: build_drift_report(
            detector,
            reference,
            frame,
            model_version="churn-classifier-v2",
            source=SOURCE,
            window_size=500,
            max_windows=6,
            drift_share=0.5,
            now=NOW,
        )
        for name, frame in current.items()
    }


def test_a_shifted_snapshot_drifts_in_contract_and_monthly_charges(
    reports: dict[str, DriftReport],
) -> None:
    report = reports["shifted"]
    assert report.is_drift
    assert report.windows == report.windows_drifted == 6
    assert {"contract", "monthly_charges"} <= set(report.drifted_features)
    by_name = {f.name: f for f in report.features}
    assert by_name["contract"].test == "chi-squared"
    assert by_name["monthly_charges"].test == "kolmogorov-smirnov"
    assert by_name["contract"].p_value is not None and by_name["contract"].p_value < 1e-6
    assert not by_name["gender"].drifted  # untouched features stay quiet
    dist = by_name["contract"].distribution
    assert dist["categories"][0] == "Month-to-month"
    assert dist["current"][0] > 0.85 > dist["reference"][0]
    assert by_name["monthly_charges"].distribution["current_mean"] == pytest.approx(
        1.2 * by_name["monthly_charges"].distribution["reference_mean"], rel=0.05
    )


def test_a_reference_like_snapshot_does_not_drift(reports: dict[str, DriftReport]) -> None:
    report = reports["like"]
    assert not report.is_drift
    assert report.drifted_features == []
    assert report.windows_drifted <= 1
    assert not any(f.drifted for f in report.features)
    assert [f.name for f in report.features] == model_input_names()
    assert report.rows_tested == 3000 and report.current_rows == 3000
    assert report.reference_rows == 3000


def test_report_json_is_plain_json(reports: dict[str, DriftReport]) -> None:
    content = reports["shifted"].to_dict()
    again = json.loads(json.dumps(content, allow_nan=False))
    assert again == content
    assert again["source"] == SOURCE and again["created_at"] == NOW.isoformat()


def test_reference_frame_decodes_the_detectors_sample(detector_dir: Path) -> None:
    reference = reference_frame(detector_dir)
    training = add_derived(generate(3000, seed=31))
    assert list(reference.columns) == model_input_names()
    assert sorted(reference["contract"].unique()) == sorted(training["contract"].unique())
    # all 3000 rows are the reference (below the 5000-row cap), in the same order
    np.testing.assert_array_equal(reference["tenure"], training["tenure"].astype(float))
    assert (reference["internet_service"] == training["internet_service"]).all()


def test_reference_frame_without_a_sample_is_a_clear_error(
    detector_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "detector"
    copy.mkdir()
    (copy / "churn_drift.json").write_text((detector_dir / "churn_drift.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"x_ref\.npy"):
        reference_frame(copy)


def test_windows_are_seeded_random_and_capped() -> None:
    frame = pd.DataFrame({"i": np.arange(2600)})
    windows = draw_windows(frame, window_size=500, max_windows=3, seed=1)
    assert [len(w) for w in windows] == [500, 500, 500]
    drawn = np.concatenate([w["i"].to_numpy() for w in windows])
    assert len(set(drawn.tolist())) == 1500
    assert drawn[:10].tolist() != list(range(10))  # shuffled, not the stored order
    again = draw_windows(frame, window_size=500, max_windows=3, seed=1)
    assert np.array_equal(drawn, np.concatenate([w["i"].to_numpy() for w in again]))
    tail = draw_windows(frame.head(1200), window_size=500, max_windows=10, seed=1)
    assert [len(w) for w in tail] == [500, 700]  # a 200-row tail joins the last window
    with pytest.raises(ValueError, match="too few"):
        draw_windows(frame.head(100), window_size=500, max_windows=3, seed=1)


def test_numeric_distributions_share_edges_and_sum_to_one() -> None:
    spec = FeatureSpec("monthly_charges", Kind.FLOAT)
    ref = pd.Series(np.linspace(20.0, 100.0, 50))
    cur = pd.Series(np.linspace(30.0, 120.0, 70))
    dist = distribution(spec, ref, cur)
    assert len(dist["bin_edges"]) == 31
    assert dist["bin_edges"][0] == 20.0 and dist["bin_edges"][-1] == 120.0
    assert sum(dist["reference"]) == pytest.approx(1.0, abs=1e-4)  # proportions to 6 decimals
    assert sum(dist["current"]) == pytest.approx(1.0, abs=1e-4)
    assert dist["reference_mean"] == pytest.approx(60.0)


def test_small_integer_features_get_one_bin_per_value() -> None:
    edges = numeric_edges(np.array([0.0, 1.0, 1.0]), np.array([3.0]))
    assert edges == [-0.5, 0.5, 1.5, 2.5, 3.5]
    assert numeric_edges(np.array([5.0]), np.array([5.0])) == [4.5, 5.5]


def test_categorical_distribution_covers_every_schema_category() -> None:
    spec = FeatureSpec("contract", Kind.CATEGORY, ("Month-to-month", "One year", "Two year"))
    dist = distribution(spec, pd.Series(["One year", "Two year"]), pd.Series(["One year"] * 4))
    assert dist == {
        "categories": ["Month-to-month", "One year", "Two year"],
        "reference": [0.0, 0.5, 0.5],
        "current": [0.0, 1.0, 0.0],
    }


def test_html_names_the_verdict_and_embeds_a_plot_per_feature(
    reports: dict[str, DriftReport],
) -> None:
    page = render_html(reports["shifted"].to_dict())
    assert "Drift detected in 6 of 6 windows" in page
    assert page.count("data:image/png;base64,") == len(model_input_names())
    assert "<tr class='drifted'><td>contract</td>" in page
    first = page.split("data:image/png;base64,", 1)[1].split("'", 1)[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    calm = render_html(reports["like"].to_dict())
    assert "No drift" in calm and "class='drifted'" not in calm


def test_html_escapes_what_it_did_not_write(reports: dict[str, DriftReport]) -> None:
    content: dict[str, Any] = reports["like"].to_dict()
    content["source"] = {"kind": "file", "path": "<script>alert(1)</script>"}
    page = render_html(content)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_written_report_has_json_and_html_side_by_side(
    reports: dict[str, DriftReport], tmp_path: Path
) -> None:
    content = reports["shifted"].to_dict()
    out = write_drift_report(content, tmp_path)
    assert out == tmp_path / "20250301T080000Z"
    assert json.loads((out / "report.json").read_text()) == content
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    second = write_drift_report(content, tmp_path)
    assert second.name == "20250301T080000Z-2"  # never overwritten


def test_drift_share_out_of_range_is_refused(detector: DriftDetector, detector_dir: Path) -> None:
    with pytest.raises(ValueError, match="drift_share"):
        build_drift_report(
            detector,
            reference_frame(detector_dir),
            add_derived(generate(600, seed=3)),
            model_version="m",
            source=SOURCE,
            window_size=500,
            max_windows=20,
            drift_share=1.0,
        )
