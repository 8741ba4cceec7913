"""The deployment target follows the active stack unless the config names one."""

from __future__ import annotations

import pytest

from steps.deployment.deploy_bundle import resolve_target


@pytest.mark.parametrize(
    ("target", "flavor", "expected"),
    [
        ("auto", "local", "local"),
        ("auto", "kubernetes", "seldon"),
        ("local", "kubernetes", "local"),
        ("seldon", "local", "seldon"),
    ],
)
def test_resolve_target(target: str, flavor: str, expected: str) -> None:
    assert resolve_target(target, flavor) == expected  # type: ignore[arg-type]
