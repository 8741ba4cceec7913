"""free_port(): a TCP port for a server the project starts beside others (tests, demos).

Why: the test suite and the production twin's demo start several servers next to a
developer's own (Redis 6390, MLServer 8480-8482, the twin's defaults); letting the OS
pick an unused port keeps them from ever meeting.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
