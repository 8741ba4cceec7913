"""`mlserver`, started with the churn front: MLServer's own CLI plus one ASGI layer.

Why a front: MLServer 1.7.1 answers POST /v2/models/<m>/infer_stream and
/generate_stream by starting a 200 StreamingResponse before it looks the model up
(mlserver/rest/endpoints.py, Endpoints.infer_stream); any failure afterwards (an
unknown model or version, a body the runtime refuses) reaches Starlette once the
response has started, and the client gets a text/plain 500. The churn model does not
stream, and nothing in a runtime runs before that response is built, so the front
answers both streaming routes itself, before MLServer: 400 with the V2 error body
`{"error": "[streaming_unsupported] ..."}` naming the endpoint to use. Every other
request passes through untouched.

The layer is added where MLServer builds its FastAPI app (mlserver.rest.server's
create_app), so everything else (settings, model repository, metrics, gRPC) is
MLServer's own. Usage is MLServer's: `python -m serving.server start <folder>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from churn.inference import ErrorCode, coded_message

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STREAMING_PATH: Final = re.compile(
    r"^/v2/models/(?P<model>[^/]+)(?:/versions/[^/]+)?/(?P<route>infer_stream|generate_stream)$"
)
STATUS: Final = 400


class RefuseStreaming:
    """ASGI middleware: POSTs to the streaming routes get a 400 JSON error at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a streaming request, or hand the request to MLServer."""
        match = STREAMING_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": refusal(match["model"], match["route"])}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": STATUS,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def refusal(model: str, route: str) -> str:
    """The error message of a streaming request: what to call instead."""
    shown = model if len(model) <= 64 and model.isprintable() else "<model>"
    return coded_message(
        ErrorCode.STREAMING_UNSUPPORTED,
        f"{route} is not offered: the churn models answer whole requests; "
        f"POST /v2/models/{shown}/infer instead",
    )


def with_front(create_app: Callable[..., Any]) -> Callable[..., Any]:
    """MLServer's create_app, returning its app with RefuseStreaming outermost."""

    def create(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        app.add_middleware(RefuseStreaming)
        return app

    return create


def main() -> None:
    """Run MLServer's CLI with the front installed (MLServer's arguments, unchanged)."""
    import mlserver.rest.server as rest_server
    from mlserver.cli.main import main as mlserver_main

    rest_server.create_app = with_front(rest_server.create_app)
    mlserver_main()


if __name__ == "__main__":
    main()
