"""A pipeline config with a schedule: configs/<pipeline>.yaml merged with a schedule file.

Why a separate file: configs/<pipeline>.yaml stays stack-neutral (the local stack
runs it as is, by hand or from cron), while the EKS schedule (cron expression, the
CronJob's policies, where the database URL comes from) belongs to that deployment.
`merge_schedule` lays the schedule file over the config, mappings key by key, so
each value keeps one home.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overlay` laid over it: nested mappings merged, other values replaced."""
    out = dict(base)
    for key, value in overlay.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def merge_schedule(content: Mapping[str, Any], schedule: Path) -> dict[str, Any]:
    """A run config with the schedule file's `schedule`, `settings` and `parameters`;
    ValueError when the file has no cron schedule (the Kubernetes orchestrator
    schedules only by cron)."""
    overlay = yaml.safe_load(schedule.read_text()) or {}
    if not (overlay.get("schedule") or {}).get("cron_expression"):
        raise ValueError(f"{schedule} has no schedule.cron_expression")
    return deep_merge(content, overlay)
