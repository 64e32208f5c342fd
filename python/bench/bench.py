"""Tokens verified per second from Python: jwt-policy against PyJWT and FastMCP's `JWTVerifier`,
on the same tokens, in the same process, one thread and two threads.

    python python/bench/bench.py --data DIR [--rounds 5] [--algs RS256,ES256,EdDSA,HS256]

DIR is the independent benchmark corpus: 2,000 compact JWS per algorithm signed by another
library (`rs256.tokens.txt`, ...), its public keys (`jwks.json`, `*.public.pem`), the HS256
secret (`hs256.secret.hex`), `meta.json` (issuer and audiences), and jwt-policy's own policy per
algorithm in `DIR/policies/bench-<alg>.toml`. The project does not ship it; any corpus laid out
alike works.

What each verifier checks: the signature with the one allowed algorithm, the issuer, an audience
among the resource and the zone, `exp` and `nbf` (and `iat` where it can); jwt-policy checks more
(typ, kid, the zone audience only with `resource` naming this server, client id). Keys are parsed
once, before timing. Every verifier must accept every token first: a verifier that refuses some is
reported, not timed. The figures are tokens per wall-clock second and per CPU second of the
process (what a shared machine does not distort), the medians of the rounds; with two threads,
both threads verify all the tokens at once and the figures are their total. Numbers are reported,
never asserted: they depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

FILES = {"RS256": "rs256", "ES256": "es256", "EdDSA": "eddsa", "HS256": "hs256"}


def load(data: Path, alg: str) -> list[str]:
    return (data / f"{FILES[alg]}.tokens.txt").read_text().split()


def jwt_policy_verifier(data: Path, alg: str) -> Callable[[list[str]], int]:
    from jwt_policy import Policy, PolicyEngine

    engine = PolicyEngine(Policy.from_file(data / "policies" / f"bench-{FILES[alg]}.toml"))

    def run(tokens: list[str]) -> int:
        return sum(engine.evaluate(t).allowed for t in tokens)

    return run


def pyjwt_verifier(data: Path, alg: str, meta: dict) -> Callable[[list[str]], int]:
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if alg == "HS256":
        key: object = bytes.fromhex((data / "hs256.secret.hex").read_text().strip())
    else:
        key = load_pem_public_key((data / f"{FILES[alg]}.public.pem").read_bytes())
    options = {"require": ["exp", "nbf", "iat", "iss", "aud"]}

    def run(tokens: list[str]) -> int:
        ok = 0
        for t in tokens:
            try:
                jwt.decode(
                    t,
                    key,  # type: ignore[arg-type]
                    algorithms=[alg],
                    audience=meta["audiences"],
                    issuer=meta["issuer"],
                    options=options,  # type: ignore[arg-type]
                )
                ok += 1
            except jwt.PyJWTError:
                pass
        return ok

    return run


def fastmcp_verifier(data: Path, alg: str, meta: dict) -> Callable[[list[str]], int]:
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    # joserfc warns on every EdDSA token (RFC 9864 deprecates the name); the corpus uses it.
    warnings.filterwarnings("ignore", message="EdDSA is deprecated")

    if alg == "HS256":
        key: str | bytes = bytes.fromhex((data / "hs256.secret.hex").read_text().strip())
    else:
        key = (data / f"{FILES[alg]}.public.pem").read_text()
    verifier = JWTVerifier(
        public_key=key, issuer=meta["issuer"], audience=meta["audiences"], algorithm=alg
    )

    def run(tokens: list[str]) -> int:
        async def all_of() -> int:
            ok = 0
            for t in tokens:
                ok += await verifier.verify_token(t) is not None
            return ok

        return asyncio.run(all_of())

    return run


def rate(run: Callable[[list[str]], int], tokens: list[str], threads: int) -> tuple[float, float]:
    """Tokens per wall-clock second and per CPU second of the process, with `threads` threads
    each verifying all `tokens`."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        run(tokens)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = threads * len(tokens)
    return n / wall, n / cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the corpus directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algs", default="RS256,ES256,EdDSA,HS256")
    args = parser.parse_args()
    meta = json.loads((args.data / "meta.json").read_text())
    verifiers = {
        "jwt-policy": lambda alg: jwt_policy_verifier(args.data, alg),
        "PyJWT": lambda alg: pyjwt_verifier(args.data, alg, meta),
        "FastMCP JWTVerifier": lambda alg: fastmcp_verifier(args.data, alg, meta),
    }
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, medians")
    print("| alg | verifier | tokens/s, 1 thread | tokens/s, 2 threads | tokens/CPU-s, 1 thread | tokens/CPU-s, 2 threads |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for alg in args.algs.split(","):
        tokens = load(args.data, alg)
        for name, make in verifiers.items():
            try:
                run = make(alg)
            except Exception as e:  # a verifier that cannot take this algorithm
                print(f"| {alg} | {name} | n/a ({e}) | | | |")
                continue
            accepted = run(tokens)
            if accepted != len(tokens):
                print(f"| {alg} | {name} | accepts {accepted}/{len(tokens)}: not timed | | | |")
                continue
            one = [rate(run, tokens, 1) for _ in range(args.rounds)]
            two = [rate(run, tokens, 2) for _ in range(args.rounds)]
            cells = [statistics.median(r[i] for r in runs) for i in (0, 1) for runs in (one, two)]
            wall1, wall2, cpu1, cpu2 = cells
            print(f"| {alg} | {name} | {wall1:,.0f} | {wall2:,.0f} | {cpu1:,.0f} | {cpu2:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
