"""FastMCP integration: the policy as a FastMCP token verifier and auth provider.

Importable only when FastMCP is installed (`pip install 'jwt-policy[fastmcp]'`, FastMCP 4.2 or a
later 4.x).

    from fastmcp import FastMCP
    from jwt_policy.fastmcp import PolicyAuthProvider

    mcp = FastMCP("name", auth=PolicyAuthProvider.from_file(
        "policy.toml", base_url="https://mcp.example.com", context={"credential.key_id": KEY_ID}
    ))

or, with an engine built beforehand, `PolicyAuthProvider(engine, base_url=...)`.

`PolicyAuthProvider` verifies every token with the engine and serves the RFC 9728 metadata the
policy describes; `PolicyTokenVerifier` verifies only (FastMCP then advertises no metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

try:
    from fastmcp.server.auth import (
        AccessToken,
        RemoteAuthProvider,
        TokenVerificationError,
        TokenVerifier,
    )
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.routes import cors_middleware
    from pydantic import AnyHttpUrl
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        AuthenticationError,
    )
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jwt_policy.fastmcp needs FastMCP: pip install 'jwt-policy[fastmcp]'"
    ) from error

from ._jwt_policy import Decision, HttpResponse, Policy, PolicyEngine

__all__ = ["KeysUnavailable", "PolicyAuthProvider", "PolicyTokenVerifier"]

# Reasons that are not the token's fault: the request cannot be decided now.
_NOT_THE_TOKENS_FAULT = frozenset({"keys_unavailable", "internal"})


class KeysUnavailable(TokenVerificationError):
    """The token could not be verified: its issuer's keys are unavailable (or the engine failed).

    FastMCP's own middleware would answer 500; the middleware of `PolicyTokenVerifier` and
    `PolicyAuthProvider` answers with the engine's response instead: 503 with `Retry-After`.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"{decision.reason}: {decision.reason_text}")
        self.decision = decision


def _access_token(token: str, decision: Decision) -> AccessToken | None:
    """FastMCP's view of a decision (see `PolicyTokenVerifier.verify_token`)."""
    if decision.reason in _NOT_THE_TOKENS_FAULT:
        raise KeysUnavailable(decision)
    if not decision.allowed and any(r != "insufficient_scope" for r in decision.reasons):
        return None
    claims: dict[str, Any] = decision.claims or {}
    return AccessToken(
        token=token,
        client_id=decision.client_id or "",
        scopes=decision.scopes,
        expires_at=decision.expires_at,
        resource=decision.resource,
        subject=decision.subject,
        claims=claims,
    )


class _Unavailable(AuthenticationError):
    """Carries the engine's answer for a request that cannot be decided now."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.body)
        self.response = response


class _PolicyBackend(AuthenticationBackend):
    """FastMCP's bearer backend, with two differences: the engine alone judges expiry (with the
    policy's leeway, at the engine's clock), and a token that cannot be verified now becomes the
    engine's 503 answer instead of an exception (a 500)."""

    def __init__(self, verifier: PolicyTokenVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        values = conn.headers.getlist("authorization")
        # Several `Authorization` headers are ambiguous: no credentials, refused with a 401.
        if len(values) != 1 or values[0][:7].lower() != "bearer ":
            return None
        try:
            info = await self.verifier.verify_token(values[0][7:])
        except KeysUnavailable as unavailable:
            raise _Unavailable(self.verifier.engine.response(unavailable.decision)) from unavailable
        if info is None:
            return None
        return AuthCredentials(info.scopes), AuthenticatedUser(info)


def _on_error(conn: HTTPConnection, error: AuthenticationError) -> Response:
    if isinstance(error, _Unavailable):
        answer = error.response
        return Response(
            answer.body,
            status_code=answer.status,
            headers=dict(answer.headers),
        )
    return Response(str(error), status_code=400)


def _middleware(verifier: PolicyTokenVerifier) -> list[Middleware]:
    return [
        Middleware(
            AuthenticationMiddleware,  # type: ignore[arg-type]
            backend=_PolicyBackend(verifier),
            on_error=_on_error,
        ),
        Middleware(AuthContextMiddleware),  # type: ignore[arg-type]
    ]


class PolicyTokenVerifier(TokenVerifier):
    """A FastMCP `TokenVerifier` that decides with a `PolicyEngine`.

    `required_scopes` are the policy's `[scopes] required`, so FastMCP itself answers 403 when
    one is missing.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        base_url: AnyHttpUrl | str | None = None,
        resource_base_url: AnyHttpUrl | str | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            resource_base_url=resource_base_url,
            required_scopes=engine.required_scopes,
        )
        self.engine = engine

    async def verify_token(self, token: str) -> AccessToken | None:
        """FastMCP's `AccessToken` (the calling client's id, the granted scopes, `exp`, the
        verified claims) for a token the policy allows. `None` for a token the policy refuses
        for any validity reason or a failed permission rule. The access token when the only
        failure is a missing required scope, so that FastMCP answers 403 from
        `required_scopes`. Raises `KeysUnavailable` (a FastMCP `TokenVerificationError`) when
        the issuer's keys are unavailable: not the token's fault."""
        decision = await self.engine.evaluate_async(token)
        return _access_token(token, decision)

    def get_middleware(self) -> list[Any]:
        """FastMCP's authentication middleware, answering 503 + `Retry-After` when keys are
        unavailable."""
        return _middleware(self)


class PolicyAuthProvider(RemoteAuthProvider):
    """A FastMCP `RemoteAuthProvider` built from the policy: tokens verified by the engine, and the
    RFC 9728 metadata document served as the policy describes it (authorization servers = the
    issuers, `scopes_supported`, `resource_name`, `resource_documentation`).

    `base_url` plus `mcp_path` must be the policy's `[resource] url`, exactly: otherwise clients
    would be sent to metadata for another resource, and every token issued for this server would
    be refused. The provider raises `ValueError` when they differ, here and when FastMCP mounts it
    at another path.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        base_url: AnyHttpUrl | str,
        *,
        mcp_path: str = "/mcp",
    ) -> None:
        policy = engine.policy
        verifier = PolicyTokenVerifier(engine, base_url=base_url)
        super().__init__(
            token_verifier=verifier,
            authorization_servers=[AnyHttpUrl(iss) for iss in policy.issuers],
            base_url=base_url,
            scopes_supported=policy.scopes_supported,
            resource_name=policy.resource_name,
            resource_documentation=(
                AnyHttpUrl(policy.resource_documentation)
                if policy.resource_documentation
                else None
            ),
            required_scopes=engine.required_scopes,
        )
        self.engine = engine
        self._check_resource(mcp_path)

    @classmethod
    def from_file(
        cls,
        path: str | PathLike[str],
        base_url: AnyHttpUrl | str,
        *,
        context: Mapping[str, str] | None = None,
        mcp_path: str = "/mcp",
    ) -> PolicyAuthProvider:
        """The provider of the policy at `path`, compiled with `context` (e.g.
        `{"credential.key_id": KEY_ID}`, this server's own client id). Raises `PolicyError` for
        an invalid policy, `EngineError` when the engine cannot be built, `ValueError` when
        `base_url` plus `mcp_path` is not the policy's resource URL."""
        engine = PolicyEngine(Policy.from_file(path), context=context)
        return cls(engine, base_url, mcp_path=mcp_path)

    def _check_resource(self, mcp_path: str | None) -> None:
        served = self._get_resource_url(mcp_path)
        expected = self.engine.policy.resource_url
        if str(served) != expected:
            raise ValueError(
                f"base url `{self.base_url}` with mcp path `{mcp_path}` serves `{served}`, "
                f"not the policy's resource url `{expected}`\n"
                "  help: pass the public base url of the server, so that it plus the mcp path "
                "is the policy's `[resource] url`"
            )

    def get_routes(self, mcp_path: str | None = None) -> list[Route]:
        """The metadata route, at the path the policy's resource URL gives (RFC 9728 §3.1)."""
        self._check_resource(mcp_path)
        self.set_mcp_path(mcp_path)
        path = self.engine.metadata_path
        if path is None:
            return []
        engine = self.engine

        async def metadata(request: Request) -> Response:
            answer = engine.metadata_response()
            return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

        return [
            Route(
                path,
                endpoint=cors_middleware(metadata, ["GET", "OPTIONS"]),
                methods=["GET", "OPTIONS"],
            )
        ]

    def get_middleware(self) -> list[Any]:
        """FastMCP's authentication middleware, answering 503 + `Retry-After` when keys are
        unavailable."""
        return _middleware(self.token_verifier)  # type: ignore[arg-type]
