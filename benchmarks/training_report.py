"""The README's model table from the newest training pipeline run of this ZenML store.

Run (after `make training-pipeline`, same environment):
    .venv/bin/python benchmarks/training_report.py

Prints, per family: mean ± sd over the repeated evaluation (ROC-AUC, PR-AUC,
precision at the recall target, F1, Brier, ECE), the single held-out split's ROC-AUC,
precision and recall at the threshold chosen on out-of-fold scores, the calibration
kept with its OOF Brier/ECE before and after, the search (trials, stopped by), the
challenger and the promotion decision, and the run's wall time.
"""

from __future__ import annotations

from typing import Any

from zenml.client import Client

METRICS = ("roc_auc", "pr_auc", "precision_at_recall", "f1", "brier", "ece")


def _cell(summary: dict[str, Any], metric: str) -> str:
    return f"{summary[metric]['mean']:.3f} ± {summary[metric]['sd']:.3f}"


def main() -> None:
    """Print the table of the newest run of the training pipeline."""
    run = Client().get_pipeline("training_pipeline").last_run
    steps = run.steps
    repeated = steps["evaluate_repeated"].outputs["repeated_evaluations"][0].load()
    evaluations = steps["evaluate_candidates"].outputs["evaluations"][0].load()
    challenger = steps["gate_model"].outputs["challenger"][0].load()
    promotion = steps["promote_model"].outputs["promotion"][0].load()
    started, ended = run.start_time, run.end_time
    print(f"run {run.name}: {(ended - started).total_seconds():.0f} s, status {run.status}")
    print(
        "| model | ROC-AUC | PR-AUC | precision at recall ≥ 0.80 | F1 | Brier | ECE | "
        "held-out ROC-AUC / precision / recall | calibration (OOF Brier, ECE before → after) "
        "| search |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, summary in sorted(repeated.items(), key=lambda kv: -kv[1]["roc_auc"]["mean"]):
        candidate = steps[f"train_{kind}"].outputs["candidate"][0].load()
        e = evaluations[kind]
        cal = candidate.calibration
        chosen = cal["chosen"]
        name = f"**{kind} (challenger)**" if kind == challenger.kind else kind
        print(
            f"| {name} | "
            + " | ".join(_cell(summary, m) for m in METRICS)
            + f" | {e.roc_auc:.3f} / {e.precision:.3f} / {e.recall:.3f} | {chosen} "
            f"({cal['brier']['none']:.4f}, {cal['ece']['none']:.4f} → "
            f"{cal['brier'][chosen]:.4f}, {cal['ece'][chosen]:.4f}) | "
            f"{candidate.search['trials']} trials, {candidate.search['stopped_by']}, "
            f"{candidate.search['seconds']:.0f} s |"
        )
    print(f"folds per family: {next(iter(repeated.values()))['folds']}")
    print(f"promotion: {promotion['reason']}")


if __name__ == "__main__":
    main()
