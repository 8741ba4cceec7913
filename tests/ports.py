"""free_port(): the one helper every test module that starts a server uses.

A plain module (not conftest.py): test modules import it by name, and a name shared
by several conftest files would resolve to whichever was imported first. The
function itself lives in churn.ports (the twin demo picks its ports with it too).
"""

from __future__ import annotations

from churn.ports import free_port

__all__ = ["free_port"]
