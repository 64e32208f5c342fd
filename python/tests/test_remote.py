"""Remote keys: `evaluate_async` fetches them on the engine's tokio runtime while the asyncio
event loop goes on; `evaluate` never waits for them."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import DEMO_NOW, KEY_ID, POLICIES, demo_token, keycard_text
from jwt_policy import Policy, PolicyEngine

JWKS = (POLICIES / "keycard-mcp.jwks.json").read_bytes()


class SlowJwks(http.server.BaseHTTPRequestHandler):
    """Serves the demo key set after a pause, counting requests."""

    requests = 0

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        type(self).requests += 1
        time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(JWKS)))
        self.end_headers()
        self.wfile.write(JWKS)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_url() -> Iterator[str]:
    SlowJwks.requests = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowJwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def remote_engine(url: str, tmp_path) -> PolicyEngine:
    text = keycard_text(**{'jwks_file = "keycard-mcp.jwks.json"': f'jwks_url = "{url}"'})
    text += '\n[remote_keys]\nstartup = "lazy"\n'
    return PolicyEngine(
        Policy.from_str(text, name="remote.toml", base_dir=tmp_path),
        context={"credential.key_id": KEY_ID},
        now=DEMO_NOW,
    )


def test_evaluate_async_fetches_the_keys_without_blocking_the_event_loop(jwks_url, tmp_path):
    engine = remote_engine(jwks_url, tmp_path)

    async def scenario() -> tuple[bool, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        decision = await engine.evaluate_async(demo_token("zone-audience"))
        done.set()
        await task
        return decision.allowed, ticks

    allowed, ticks = asyncio.run(scenario())
    assert allowed
    # The loop ran other tasks while the key set was being fetched (it takes 0.5 s to answer).
    assert ticks >= 5, ticks
    assert SlowJwks.requests == 1
    # Fetched once: later decisions, sync or async, use the keys held.
    assert engine.evaluate(demo_token("resource-audience")).allowed

    async def other() -> str | None:
        return (await engine.evaluate_async(demo_token("other-resource"))).reason

    assert asyncio.run(other()) == "resource_mismatch"
    assert SlowJwks.requests == 1


def test_evaluate_never_waits_for_keys(jwks_url, tmp_path):
    engine = remote_engine(jwks_url, tmp_path)
    started = time.monotonic()
    first = engine.evaluate(demo_token("zone-audience"))
    assert first.reason == "keys_unavailable"
    assert first.http_status == 503
    assert engine.response(first).header("retry-after") == "30"
    assert time.monotonic() - started < 0.45  # the key set takes 0.5 s to come
    # The fetch it started goes on in the background: the keys arrive without an await.
    deadline = time.monotonic() + 10
    while not engine.evaluate(demo_token("zone-audience")).allowed:
        assert time.monotonic() < deadline, "the keys never arrived"
        time.sleep(0.05)
