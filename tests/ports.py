"""free_port(): the one helper every test module that starts a server uses.

A plain module (not conftest.py): test modules import it by name, and a name shared
by several conftest files would resolve to whichever was imported first.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
