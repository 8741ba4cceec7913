"""`churn` command line: the project's own Redis, the feature pipeline, lookups.

The Makefile and the README call these; each subcommand is a thin shell over
functions in the churn package, so the same work is reachable from ZenML steps and
tests without a subprocess.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from churn import redis_local
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; separate from main() so tests can inspect it."""
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_redis = sub.add_parser("redis", help="the project's own local Redis")
    p_redis.add_argument("action", choices=["start", "stop", "status"])
    p_redis.set_defaults(func=_redis)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `churn` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except redis_local.RedisServerError as e:
        print(f"churn: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
