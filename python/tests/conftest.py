"""Shared fixtures: the repository's shipped policies and demo tokens.

The demo tokens (policies/demo/*.jwt) are signed once and frozen: they are valid at
`DEMO_NOW` (2026-01-01T00:00:00Z), so every evaluation of them passes that instant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jwt_policy import Policy, PolicyEngine

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
KEYCARD = POLICIES / "keycard-mcp.toml"
DEMO_NOW = 1_767_225_600
KEY_ID = "mcp-server-key-1"
RESOURCE_URL = "https://mcp.example.com/mcp"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def demo_token(name: str) -> str:
    """A demo token by name: `zone-audience`, `resource-audience`, `other-resource`."""
    return (POLICIES / "demo" / f"{name}.jwt").read_text().strip()


def keycard_text(**replace: str) -> str:
    """policies/keycard-mcp.toml with some lines replaced (old text -> new text)."""
    text = KEYCARD.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def engine() -> PolicyEngine:
    """The keycard policy with its demo keys, at the demo instant."""
    return PolicyEngine(
        Policy.from_file(KEYCARD), context={"credential.key_id": KEY_ID}, now=DEMO_NOW
    )
