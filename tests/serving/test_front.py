"""serving.server's front in isolation (an ASGI app, no server): what it answers itself
and what it hands to MLServer. The real server's behaviour is test_fuzz.py's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from churn.inference import ErrorCode, parse_error
from serving.server import RefuseStreaming, with_front


class Inner:
    """Stands in for MLServer's app: records the scopes it was handed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.seen.append(scope["path"])


def call(app: Any, method: str, path: str, kind: str = "http") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": kind, "method": method, "path": path}, receive, send))
    return sent


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/churn/infer_stream",
        "/v2/models/churn/generate_stream",
        "/v2/models/churn/versions/3/infer_stream",
        "/v2/models/\x07evil/generate_stream",
    ],
)
def test_streaming_posts_are_answered_400_json(path: str) -> None:
    inner = Inner()
    start, body = call(RefuseStreaming(inner), "POST", path)
    assert inner.seen == []
    assert start["status"] == 400
    assert (b"content-type", b"application/json") in start["headers"]
    error = parse_error(400, body["body"].decode())
    assert error.code is ErrorCode.STREAMING_UNSUPPORTED
    assert "\x07" not in error.message  # a client's control characters are not echoed


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/v2/models/churn/infer", "http"),
        ("GET", "/v2/models/churn/infer_stream", "http"),
        ("POST", "/v2/models/churn/infer_stream/extra", "http"),
        ("GET", "/v2/health/ready", "http"),
        ("GET", "/", "lifespan"),
    ],
)
def test_everything_else_reaches_mlserver(method: str, path: str, kind: str) -> None:
    inner = Inner()
    assert call(RefuseStreaming(inner), method, path, kind) == []
    assert inner.seen == [path]


def test_with_front_wraps_the_app_mlserver_builds() -> None:
    added: list[Any] = []

    class App:
        def add_middleware(self, cls: Any) -> None:
            added.append(cls)

    app = with_front(lambda *a, **k: App())("settings", data_plane=None)
    assert isinstance(app, App) and added == [RefuseStreaming]
