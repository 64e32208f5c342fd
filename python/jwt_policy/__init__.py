"""Decide from a declarative TOML policy whether an OAuth/JWT access token may reach a service,
and explain why: the jwt-policy engine (Rust) from Python.

    from jwt_policy import Policy, PolicyEngine

    engine = PolicyEngine(
        Policy.from_file("policies/keycard-mcp.toml"),
        context={"credential.key_id": "mcp-server-key-1"},
    )
    decision = engine.evaluate(token)
    if not decision.allowed:
        print(decision.reason)      # e.g. "resource_mismatch"
        print(decision.explain())   # every check, as `jwt-policy verify` prints it

Every decision is made by the engine itself (the `jwt-policy` crate): this package only adapts
it to Python, to FastMCP (`jwt_policy.fastmcp`, with the `fastmcp` extra) and to ASGI
applications (`jwt_policy.asgi`).
"""

from ._jwt_policy import (
    Check,
    Decision,
    Diagnostic,
    EngineError,
    HttpResponse,
    Policy,
    PolicyEngine,
    PolicyError,
    RequestOutcome,
)

__all__ = [
    "Check",
    "Decision",
    "Diagnostic",
    "EngineError",
    "HttpResponse",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "RequestOutcome",
]
