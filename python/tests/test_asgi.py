"""The ASGI middleware under Starlette's test client."""

from __future__ import annotations

import json

import pytest

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import DEMO_NOW, KEY_ID, METADATA_URL, POLICIES, demo_token, keycard_text
from jwt_policy import Policy, PolicyEngine
from jwt_policy.asgi import PolicyMiddleware


async def whoami(request: Request) -> JSONResponse:
    decision = request.state.jwt_policy
    assert request.scope["jwt_policy"] is decision
    return JSONResponse({"client_id": decision.client_id, "scopes": decision.scopes})


def client_for(engine: PolicyEngine, **options) -> TestClient:
    app = Starlette(
        routes=[
            Route("/mcp", whoami, methods=["GET", "POST"]),
            Route("/admin", whoami),
            Route("/healthz", lambda r: JSONResponse({"ok": True})),
        ],
        middleware=[Middleware(PolicyMiddleware, engine=engine, **options)],
    )
    return TestClient(app)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_token(name)}"}


def test_an_allowed_request_reaches_the_app_with_its_decision(engine):
    r = client_for(engine).post("/mcp", headers=bearer("zone-audience"))
    assert r.status_code == 200
    assert r.json() == {"client_id": "mcp-inspector", "scopes": ["mcp:tools", "mcp:resources"]}


def test_no_token_is_a_401_naming_the_metadata(engine):
    r = client_for(engine).get("/mcp")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}"'
    assert r.json()["verdict"] == "deny"


def test_a_token_for_another_resource_is_a_401_invalid_token(engine):
    r = client_for(engine).get("/mcp", headers=bearer("other-resource"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="resource_mismatch: the token is not '
        f'for this resource", resource_metadata="{METADATA_URL}"'
    )
    assert r.json()["reason"] == "resource_mismatch"
    assert "eyJ" not in r.text


def test_malformed_requests_are_400(engine):
    client = client_for(engine)
    r = client.get("/mcp", headers={"Authorization": "Bearer"})
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]
    r = client.get("/a/%2E%2E/mcp", headers=bearer("zone-audience"))
    assert r.status_code == 400


def test_the_metadata_document_is_served_without_a_token(engine):
    r = client_for(engine).get("/.well-known/oauth-protected-resource/mcp")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.text == engine.metadata_json()
    assert json.loads(r.text)["resource"] == "https://mcp.example.com/mcp"


def test_exempt_paths_pass_without_a_token(engine):
    assert client_for(engine, exempt=["/healthz"]).get("/healthz").status_code == 200
    assert client_for(engine).get("/healthz").status_code == 401


def test_a_route_of_the_policy_needing_a_scope_is_a_403():
    text = keycard_text() + '\n[[routes]]\npath = "/admin"\nscopes = ["mcp:admin"]\n'
    engine = PolicyEngine(
        Policy.from_str(text, name="routes.toml", base_dir=POLICIES),
        context={"credential.key_id": KEY_ID},
        now=DEMO_NOW,
    )
    client = client_for(engine)
    assert client.get("/mcp", headers=bearer("zone-audience")).status_code == 200
    r = client.get("/admin", headers=bearer("zone-audience"))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", '
        f'resource_metadata="{METADATA_URL}"'
    )
    # Without routes, only the policy's own requirements apply.
    assert client_for(engine, routes=False).get("/admin", headers=bearer("zone-audience")).status_code == 200


def test_unavailable_keys_are_a_503_with_retry_after(tmp_path):
    text = keycard_text(
        **{'jwks_file = "keycard-mcp.jwks.json"': 'jwks_url = "http://127.0.0.1:9/jwks.json"'}
    ) + '\n[remote_keys]\nstartup = "lazy"\ncooldown = "7s"\n'
    engine = PolicyEngine(
        Policy.from_str(text, name="remote.toml", base_dir=tmp_path),
        context={"credential.key_id": KEY_ID},
        now=DEMO_NOW,
    )
    r = client_for(engine).get("/mcp", headers=bearer("zone-audience"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "7"
    assert "www-authenticate" not in r.headers
    assert r.json()["reason"] == "keys_unavailable"
