"""Threads verifying in parallel with one engine (the GIL is released while verifying): every
thread gets the right decision for every token."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from conftest import demo_token


def test_threads_share_one_engine_and_each_gets_its_decisions(engine):
    tokens = {
        "zone-audience": (True, None),
        "resource-audience": (True, None),
        "other-resource": (False, "resource_mismatch"),
        "not-a-token": (False, "malformed_token"),
    }
    texts = {name: (demo_token(name) if name != "not-a-token" else name) for name in tokens}

    def work(i: int) -> list[tuple[str, bool, str | None, str | None]]:
        out = []
        for round_ in range(200):
            name = list(tokens)[(i + round_) % len(tokens)]
            d = engine.evaluate(texts[name])
            out.append((name, d.allowed, d.reason, d.client_id if d.allowed else None))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert sum(len(r) for r in results) == 1600
    for result in results:
        for name, allowed, reason, client in result:
            assert (allowed, reason) == tokens[name], name
            assert client == ("mcp-inspector" if allowed else None)
