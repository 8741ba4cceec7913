"""`churn` command line: the project's own Redis, the feature pipeline, lookups.

The Makefile and the README call these; each subcommand is a thin shell over
functions in the churn package, so the same work is reachable from ZenML steps and
tests without a subprocess.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from churn import console, redis_local
from churn.settings import get_settings


def _redis(args: argparse.Namespace) -> int:
    cfg = redis_local.config_from_settings(get_settings())
    if args.action == "start":
        redis_local.start(cfg)
        print(f"redis: running on {cfg.host}:{cfg.port} (data in {cfg.data_dir})")
    elif args.action == "stop":
        redis_local.stop(cfg)
        print(f"redis: stopped ({cfg.host}:{cfg.port})")
    else:
        up = redis_local.is_running(cfg)
        print(f"redis: {'up' if up else 'down'} on {cfg.host}:{cfg.port}")
        return 0 if up else 1
    return 0


def _env(args: argparse.Namespace) -> int:
    from churn.features.env import feast_env, render_exports

    sys.stdout.write(render_exports(feast_env(get_settings())))
    return 0


def _stack(args: argparse.Namespace) -> int:
    from churn.stacks import activate_stack, register_stack, run_config

    if args.action == "run-config":
        import yaml

        overrides = dict(item.split("=", 1) for item in args.set)
        content = run_config(Path(args.name), step_image=args.step_image, overrides=overrides)
        if args.schedule is not None:
            from churn.schedule import merge_schedule

            content = merge_schedule(content, args.schedule)
        args.output.write_text(yaml.safe_dump(content, sort_keys=False))
        print(f"wrote {args.output}")
        return 0

    created = register_stack(args.name, get_settings())
    state = "registered" if created else "already registered"
    if args.activate:
        activate_stack(args.name)
        print(f"stack {args.name!r} {state} and active: zenml pipeline run uses it")
    else:
        print(f"stack {args.name!r} {state}; activate it with: zenml stack set {args.name}")
    return 0


def _features_run(args: argparse.Namespace) -> int:
    from churn.features.pipeline import DataSource, run_feature_pipeline

    source = DataSource(
        kind=args.source, csv_path=args.csv, n_customers=args.customers, seed=args.seed
    )
    result = run_feature_pipeline(source)
    print(
        f"features: {result.rows} rows ({result.customers} customers) validated and written "
        f"to {get_settings().offline_dir}; applied {len(result.applied.applied)} Feast objects; "
        f"materialized {len(result.materialized.views)} views in "
        f"{result.materialized.seconds:.1f}s"
    )
    return 0


def _ids_or_sample(args: argparse.Namespace) -> list[str]:
    """The ids given on the command line, else a seeded sample of known customers."""
    if args.ids:
        return [str(c) for c in args.ids]
    import numpy as np

    from churn.data.offline import read_offline_table

    known = read_offline_table("labels")["customer_id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(args.seed)
    return [str(c) for c in rng.choice(known, size=min(args.sample, len(known)), replace=False)]


def _features_lookup(args: argparse.Namespace) -> int:
    from churn.features.store import get_store, online_features

    ids = _ids_or_sample(args)
    frame = online_features(get_store(), ids).to_frame()
    print(frame.set_index("customer_id").T.to_string())
    return 0


HEADLINE_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "f1", "brier", "threshold")


def _model(args: argparse.Namespace) -> int:
    from churn.models.registry import NoChampionError, champion_ref, rollback, use_tracking

    if args.action == "rollback":
        restored = rollback(args.name)
        print(f"{args.name}: champion rolled back to version {restored}")
        return 0
    try:
        ref = champion_ref(args.name)
    except NoChampionError as e:
        print(f"churn: {e}", file=sys.stderr)
        return 1
    run = use_tracking().get_run(ref.run_id)
    metrics = run.data.metrics
    shown = ", ".join(f"{m}={metrics[f'test_{m}']:.4f}" for m in HEADLINE_METRICS)
    print(
        f"{args.name} champion: version {ref.version} "
        f"({run.data.tags.get('model_kind')}), held-out {shown}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Ask the inference endpoint, as a client application would (HTTP, V2)."""
    import requests

    from churn.inference import (
        EndpointSettings,
        ResponseFormatError,
        infer_path,
        parse_error,
        parse_response,
        request_body,
    )

    endpoint = EndpointSettings()
    base = (args.url or endpoint.base_url()).rstrip("/")
    ids = _ids_or_sample(args)
    try:
        response = requests.post(
            base + infer_path(endpoint.model_name), json=request_body(ids), timeout=10
        )
    except requests.ConnectionError:
        print(f"churn: no inference server at {base} (start it: make deployment-pipeline)",
              file=sys.stderr)  # fmt: skip
        return 1
    if response.status_code != 200:
        error = parse_error(response.status_code, response.text)
        code = f" {error.code.value}" if error.code else ""
        print(f"churn: HTTP {error.status}{code}: {error.message}", file=sys.stderr)
        return 1
    try:
        predictions = parse_response(ids, response.json())
    except (ValueError, ResponseFormatError) as e:
        print(f"churn: {base} answered 200 but not as the churn model: {e}", file=sys.stderr)
        return 1
    for p in predictions:
        top = ", ".join(r.describe() for r in p.reasons)
        print(
            f"{p.customer_id}: P(churn)={p.probability:.4f} churn={p.label} "
            f"model={p.model_version} | {top}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; separate from main() so tests can inspect it."""
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_redis = sub.add_parser("redis", help="the project's own local Redis")
    p_redis.add_argument("action", choices=["start", "stop", "status"])
    p_redis.set_defaults(func=_redis)

    p_env = sub.add_parser("env", help="print `export` lines for the plain feast CLI")
    p_env.set_defaults(func=_env)

    p_stack = sub.add_parser("stack", help="register a ZenML stack from stacks/<name>.yaml")
    p_stack.add_argument("action", choices=["register", "run-config"])
    p_stack.add_argument("name", help="register: local or eks; run-config: a configs/*.yaml")
    p_stack.add_argument("--step-image", default=None, help="run-config: prebuilt steps image")
    p_stack.add_argument(
        "--set", action="append", default=[], help="run-config: parameter override key=value"
    )
    p_stack.add_argument(
        "--schedule", type=Path, default=None, help="run-config: a schedule file to merge in"
    )
    p_stack.add_argument(
        "--activate", action="store_true", help="register: also make it the active stack"
    )
    p_stack.add_argument("-o", "--output", type=Path, default=Path("run-config.yaml"))
    p_stack.set_defaults(func=_stack)

    p_model = sub.add_parser("model", help="the champion in the MLflow registry")
    p_model.add_argument("action", choices=["champion", "rollback"])
    p_model.add_argument("--name", default="churn-classifier", help="registered model name")
    p_model.set_defaults(func=_model)

    p_pred = sub.add_parser("predict", help="score customers through the local endpoint")
    p_pred.add_argument("ids", nargs="*", help="customer ids (default: a random sample)")
    p_pred.add_argument("--sample", type=int, default=3)
    p_pred.add_argument("--seed", type=int, default=0)
    p_pred.add_argument(
        "--url",
        default=None,
        help="server base URL (default: the local MLServer of CHURN_SERVING_HOST/_HTTP_PORT)",
    )
    p_pred.set_defaults(func=_predict)

    p_feat = sub.add_parser("features", help="feature pipeline and online lookups")
    feat = p_feat.add_subparsers(dest="action", required=True)
    p_run = feat.add_parser("run", help="load -> validate -> offline store -> apply -> materialize")
    p_run.add_argument("--source", choices=["telco", "synthetic"], default=None)
    p_run.add_argument("--csv", type=Path, default=None, help="Telco CSV (else CHURN_TELCO_CSV)")
    p_run.add_argument("--customers", type=int, default=10_000, help="synthetic customers")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.set_defaults(func=_features_run)
    p_look = feat.add_parser("lookup", help="print online features of customers")
    p_look.add_argument("ids", nargs="*", help="customer ids (default: a random sample)")
    p_look.add_argument("--sample", type=int, default=3)
    p_look.add_argument("--seed", type=int, default=0)
    p_look.set_defaults(func=_features_lookup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `churn` console script."""
    args = build_parser().parse_args(argv)
    console.install()
    if getattr(args, "source", "unset") is None:
        # Real data when the user has pointed us at it, else synthetic customers.
        settings = get_settings()
        args.source = (
            "telco" if (args.csv or settings.telco_csv or settings.telco_url) else "synthetic"
        )
    try:
        return int(args.func(args))
    except Exception as e:
        # The project's own errors carry a message meant for the user; print it
        # without a traceback. Anything else is a bug: let it raise.
        if not type(e).__module__.startswith("churn."):
            raise
        print(f"churn: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
