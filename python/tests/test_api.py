"""The Python API against the shipped policies and demo tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import (
    DEMO_NOW,
    KEY_ID,
    KEYCARD,
    METADATA_URL,
    POLICIES,
    RESOURCE_URL,
    ROOT,
    demo_token,
    keycard_text,
)
from jwt_policy import Decision, EngineError, Policy, PolicyEngine, PolicyError


def test_a_zone_token_naming_this_resource_is_allowed_with_its_principal(engine):
    d = engine.evaluate(demo_token("zone-audience"))
    assert d.allowed and d.verdict == "allow"
    assert (d.reason, d.oauth_error, d.http_status) == (None, None, 200)
    assert d.issuer == "https://abc123.keycard.cloud"
    assert d.subject == "user-123"
    assert (d.client_id, d.client_id_source) == ("mcp-inspector", "client_id")
    assert d.resource_client_id == KEY_ID
    assert d.audience == "https://abc123.keycard.cloud"
    assert d.resource == RESOURCE_URL
    assert d.scopes == ["mcp:tools", "mcp:resources"]
    assert d.expires_at == 1_767_229_200
    assert d.required_scopes == ["mcp:tools"]
    assert d.claims is not None and d.claims["jti"] == "demo-1"
    assert all(c.outcome == "passed" for c in d.checks)
    assert json.loads(d.to_json())["verdict"] == "allow"
    assert d.explain().startswith("ALLOW\n")


def test_the_confused_deputy_token_for_another_resource_is_refused(engine):
    d = engine.evaluate(demo_token("other-resource"))
    assert not d.allowed and d.verdict == "deny"
    assert d.reason == "resource_mismatch"
    assert (d.oauth_error, d.http_status) == ("invalid_token", 401)
    assert d.claims is None
    failed = [c for c in d.checks if c.outcome == "failed"]
    assert [(c.rule, c.reason) for c in failed] == [
        ("audience", "resource_mismatch"),
        ("resource", "resource_mismatch"),
    ]
    assert failed[1].observed == "`resource` `https://other.example.com/mcp`"
    assert d.explain().startswith("DENY: resource_mismatch (invalid_token HTTP 401)\n")
    assert json.loads(d.to_json())["reason"] == "resource_mismatch"


def test_the_clock_is_the_engines_or_the_callers(engine):
    token = demo_token("resource-audience")
    assert engine.evaluate(token).allowed
    assert engine.evaluate(token, now=DEMO_NOW + 7200).reason == "expired"
    # Without a fixed clock the engine decides at the wall clock: the demo tokens are long
    # expired.
    live = PolicyEngine(Policy.from_file(KEYCARD), context={"credential.key_id": KEY_ID})
    assert live.evaluate(token).reason == "expired"
    assert live.evaluate(token, now=DEMO_NOW + 0.9).allowed
    with pytest.raises(ValueError, match="finite number of seconds"):
        live.evaluate(token, now=float("nan"))


def test_malformed_input_is_a_decision_not_an_exception(engine):
    for token in ["", "not-a-token", "a.b.c", "é" * 10, "x" * 20_000]:
        d = engine.evaluate(token)
        assert not d.allowed
        assert d.reason in {"malformed_token", "token_too_large"}, (token[:10], d.reason)


def test_evaluate_async_decides_like_evaluate(engine):
    async def both():
        return await asyncio.gather(
            engine.evaluate_async(demo_token("zone-audience")),
            engine.evaluate_async(demo_token("other-resource")),
        )

    allowed, refused = asyncio.run(both())
    assert isinstance(allowed, Decision) and allowed.allowed
    assert refused.reason == "resource_mismatch"


def test_challenges_and_metadata_are_the_http_contracts(engine):
    assert engine.challenge() == f'Bearer resource_metadata="{METADATA_URL}"'
    refused = engine.evaluate(demo_token("other-resource"))
    assert engine.challenge(refused) == (
        'Bearer error="invalid_token", error_description="resource_mismatch: the token is '
        f'not for this resource", resource_metadata="{METADATA_URL}"'
    )
    assert engine.challenge(engine.evaluate(demo_token("zone-audience"))) is None
    r = engine.response(refused)
    assert r.status == 401
    assert r.header("WWW-Authenticate") == engine.challenge(refused)
    assert json.loads(r.body) == {
        "verdict": "deny",
        "reason": "resource_mismatch",
        "policy_revision": engine.policy.revision,
    }
    assert engine.metadata_path == "/.well-known/oauth-protected-resource/mcp"
    assert engine.metadata_url == METADATA_URL
    assert json.loads(engine.metadata_json()) == {
        "resource": RESOURCE_URL,
        "authorization_servers": ["https://abc123.keycard.cloud"],
        "scopes_supported": ["mcp:tools", "mcp:resources", "mcp:prompts"],
        "bearer_methods_supported": ["header"],
    }
    m = engine.metadata_response()
    assert (m.status, m.header("content-type"), m.body) == (
        200,
        "application/json",
        engine.metadata_json(),
    )


def test_a_missing_scope_is_a_403_naming_every_required_scope():
    policy = Policy.from_str(
        keycard_text(**{'required = ["mcp:tools"]': 'required = ["mcp:tools", "mcp:admin"]'}),
        name="admin.toml",
        base_dir=POLICIES,
    )
    engine = PolicyEngine(policy, context={"credential.key_id": KEY_ID}, now=DEMO_NOW)
    d = engine.evaluate(demo_token("zone-audience"))
    assert (d.reason, d.oauth_error, d.http_status) == ("insufficient_scope", "insufficient_scope", 403)
    assert engine.challenge(d) == (
        f'Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", '
        f'resource_metadata="{METADATA_URL}"'
    )


def test_authorize_reads_the_request_like_the_layer_and_serve(engine):
    token = demo_token("zone-audience")
    ok = engine.authorize([f"Bearer {token}"], "POST", "/mcp")
    assert ok.allowed and ok.response is None and ok.decision.client_id == "mcp-inspector"
    none = engine.authorize([])
    assert not none.allowed and none.decision is None
    assert none.response.status == 401
    assert none.response.header("www-authenticate") == f'Bearer resource_metadata="{METADATA_URL}"'
    several = engine.authorize([f"Bearer {token}", f"Bearer {token}"])
    assert several.response.status == 400
    assert 'error="invalid_request"' in several.response.header("www-authenticate")
    dotted = engine.authorize([f"Bearer {token}"], "GET", "/a/../mcp")
    assert dotted.response.status == 400
    refused = engine.authorize([f"Bearer {demo_token('other-resource')}"])
    assert refused.response.status == 401 and refused.decision.reason == "resource_mismatch"


def test_policy_accessors():
    policy = Policy.from_file(KEYCARD)
    assert policy.name == str(KEYCARD)
    assert policy.resource_url == RESOURCE_URL
    assert policy.issuers == ["https://abc123.keycard.cloud"]
    assert policy.required_scopes == ["mcp:tools"]
    assert policy.scopes_supported == ["mcp:tools", "mcp:resources", "mcp:prompts"]
    assert len(policy.revision) == 16
    assert policy.warnings == []


def _snapshot(fixture: Path) -> str:
    name = f"policy_errors__invalid_policies@{fixture.name}.snap"
    text = (ROOT / "tests" / "snapshots" / name).read_text()
    return text.split("\n---\n", 1)[1].rstrip("\n")


def test_policy_error_is_the_rendering_of_check_for_every_invalid_fixture(monkeypatch):
    # The snapshots pin what `jwt-policy check` prints for each fixture, loaded by its path
    # relative to the repository.
    monkeypatch.chdir(ROOT)
    fixtures = sorted((ROOT / "tests" / "fixtures" / "policies" / "invalid").glob("*.toml"))
    assert len(fixtures) > 50
    for fixture in fixtures:
        relative = fixture.relative_to(ROOT)
        with pytest.raises(PolicyError) as caught:
            Policy.from_file(relative)
        assert str(caught.value) == _snapshot(fixture), relative
        for d in caught.value.diagnostics:
            assert d.rendered.startswith(f"{d.severity}[{d.code}]: {d.message}\n"), relative
            assert d.rendered in str(caught.value), relative


def test_policy_error_diagnostics_are_objects():
    text = keycard_text(**{'algorithms = ["RS256", "ES256", "EdDSA"]': 'algoritms = ["RS256"]'})
    with pytest.raises(PolicyError) as caught:
        Policy.from_str(text, name="typo.toml", base_dir=POLICIES)
    (d,) = [d for d in caught.value.diagnostics if d.code == "unknown-key"]
    assert (d.severity, d.file, d.line, d.column) == ("error", "typo.toml", 32, 1)
    assert d.message == "unknown key `algoritms` in `issuers[0]`"
    assert d.help == "did you mean `algorithms`?"
    assert str(caught.value) == (
        "error[unknown-key]: unknown key `algoritms` in `issuers[0]`\n"
        "  --> typo.toml:32:1\n"
        "   |\n"
        '32 | algoritms = ["RS256"]\n'
        "   | ^^^^^^^^^\n"
        "   = help: did you mean `algorithms`?\n"
        "\n"
        "error: policy `typo.toml` is invalid: 1 error"
    )
    assert str(d) == d.rendered and d.rendered in str(caught.value)


def test_a_missing_policy_file_is_a_policy_error():
    with pytest.raises(PolicyError) as caught:
        Policy.from_file("/nonexistent/policy.toml")
    (d,) = caught.value.diagnostics
    assert (d.code, d.line, d.column) == ("io", None, None)
    assert "cannot read policy `/nonexistent/policy.toml`" in str(caught.value)


def test_engine_errors_name_the_missing_context():
    with pytest.raises(EngineError) as caught:
        PolicyEngine(Policy.from_file(KEYCARD))
    assert "no resource client id" in str(caught.value)
    assert "help: pass `credential.key_id` or `registration.client_id` in `context`" in str(
        caught.value
    )
    with pytest.raises(EngineError, match="resource client id `ua:0f3c` .* is refused"):
        PolicyEngine(Policy.from_file(KEYCARD), context={"credential.key_id": "ua:0f3c"})


def test_a_jwks_file_replaces_the_issuers_keys():
    other = POLICIES / "okta.jwks.json"
    engine = PolicyEngine(
        Policy.from_file(KEYCARD), {"credential.key_id": KEY_ID}, jwks=other, now=DEMO_NOW
    )
    assert engine.evaluate(demo_token("zone-audience")).reason == "key_not_found"
    with pytest.raises(EngineError, match="jwks `/nonexistent.json`"):
        PolicyEngine(Policy.from_file(KEYCARD), {"credential.key_id": KEY_ID}, jwks="/nonexistent.json")


def test_every_shipped_policy_reads_without_warnings():
    shipped = sorted(p for p in POLICIES.glob("*.toml") if not p.name.endswith(".tests.toml"))
    assert len(shipped) >= 6
    for path in shipped:
        policy = Policy.from_file(path)
        assert policy.warnings == [], (path, [str(w) for w in policy.warnings])
        assert policy.issuers and policy.resource_url, path
