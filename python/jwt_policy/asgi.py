"""ASGI middleware: lets a request reach the application only when the policy allows its bearer
token, and serves the RFC 9728 protected-resource metadata.

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from jwt_policy.asgi import PolicyMiddleware

    app = Starlette(routes=..., middleware=[Middleware(PolicyMiddleware, engine=engine)])

Refusals are the engine's own HTTP answers (`PolicyEngine.authorize`): 401 with
`WWW-Authenticate: Bearer resource_metadata="…"` without a token, 401 `invalid_token` for a token
not valid here, 403 `insufficient_scope` for a missing scope or permission, 400 for a malformed
request, 503 with `Retry-After` when keys are unavailable. An allowed request goes on with the
`Decision` in `scope["jwt_policy"]` (Starlette: `request.state.jwt_policy`).

No framework is needed: this is plain ASGI 3.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._jwt_policy import HttpResponse, PolicyEngine

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The key of the decision in the ASGI scope and in Starlette's `request.state`.
STATE_KEY = "jwt_policy"


class PolicyMiddleware:
    """Guards every HTTP and WebSocket request of `app` with `engine`.

    `routes` (default on) applies the policy's `[[routes]]` to the request's method and path;
    `serve_metadata` (default on) answers `GET engine.metadata_path` with the metadata document
    itself, without a token. `exempt` paths (exact matches, e.g. a health check) pass without a
    token.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: PolicyEngine,
        *,
        routes: bool = True,
        serve_metadata: bool = True,
        exempt: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.app = app
        self.engine = engine
        self.routes = routes
        self.metadata_path = engine.metadata_path if serve_metadata else None
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET") if kind == "http" else "GET"
        if kind == "http" and path == self.metadata_path and method in ("GET", "HEAD"):
            await _send(send, self.engine.metadata_response(), head=method == "HEAD")
            return
        if path in self.exempt:
            await self.app(scope, receive, send)
            return
        authorization = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name.lower() == b"authorization"
        ]
        # The path as the client sent it (still percent-encoded, with its query): an encoded `/`
        # or a dot segment is refused, not normalised into another route.
        raw = scope.get("raw_path")
        target = raw.decode("latin-1") if raw else path
        query = scope.get("query_string", b"")
        if query:
            target = f"{target}?{query.decode('latin-1')}"
        outcome = await self.engine.authorize_async(
            authorization, method, target if self.routes else None
        )
        if not outcome.allowed:
            if kind == "websocket":
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008})
                return
            assert outcome.response is not None
            await _send(send, outcome.response, head=method == "HEAD")
            return
        scope[STATE_KEY] = outcome.decision
        scope.setdefault("state", {})[STATE_KEY] = outcome.decision
        await self.app(scope, receive, send)


async def _send(send: Send, response: HttpResponse, *, head: bool = False) -> None:
    """Sends one of the engine's answers."""
    body = response.body.encode()
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
