"""Type stubs of the native module (`python/src/lib.rs`)."""

from collections.abc import Awaitable, Mapping, Sequence
from os import PathLike
from typing import Any, Literal, final

class PolicyError(ValueError):
    """An invalid policy: `str()` is the located rendering `jwt-policy check` prints."""

    diagnostics: list[Diagnostic]

class EngineError(ValueError):
    """A valid policy the engine cannot be built from (resource client id, keys, secret)."""

@final
class Diagnostic:
    """One located problem in a policy file."""

    severity: Literal["error", "warning"]
    code: str
    message: str
    help: str | None
    file: str
    line: int | None
    column: int | None
    rendered: str

@final
class Policy:
    """A validated policy."""

    @staticmethod
    def from_file(path: str | PathLike[str]) -> Policy:
        """Reads and validates the policy at `path` (relative file names inside it are resolved
        against its directory). Raises `PolicyError`."""
    @staticmethod
    def from_str(
        text: str, name: str = "policy.toml", base_dir: str | PathLike[str] | None = None
    ) -> Policy:
        """Validates policy `text`, naming it `name` in diagnostics (relative file names inside
        it are resolved against `base_dir`, the current directory by default). Raises
        `PolicyError`."""
    @property
    def name(self) -> str: ...
    @property
    def resource_url(self) -> str: ...
    @property
    def resource_name(self) -> str | None: ...
    @property
    def resource_documentation(self) -> str | None: ...
    @property
    def scopes_supported(self) -> list[str]: ...
    @property
    def required_scopes(self) -> list[str]: ...
    @property
    def issuers(self) -> list[str]: ...
    @property
    def revision(self) -> str: ...
    @property
    def warnings(self) -> list[Diagnostic]: ...

@final
class Check:
    """One check of a decision and its outcome."""

    rule: str
    outcome: Literal["passed", "failed", "not_evaluated"]
    reason: str | None
    expected: str | None
    observed: str | None
    detail: str

@final
class Decision:
    """What the engine decided about one token."""

    @property
    def allowed(self) -> bool: ...
    @property
    def verdict(self) -> Literal["allow", "deny"]: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def reasons(self) -> list[str]: ...
    @property
    def reason_text(self) -> str | None: ...
    @property
    def oauth_error(self) -> str | None: ...
    @property
    def http_status(self) -> int: ...
    @property
    def issuer(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def client_id_source(self) -> str | None: ...
    @property
    def resource_client_id(self) -> str | None: ...
    @property
    def audience(self) -> str | None: ...
    @property
    def resource(self) -> str | None: ...
    @property
    def scopes(self) -> list[str]: ...
    @property
    def expires_at(self) -> int | None: ...
    @property
    def required_scopes(self) -> list[str]: ...
    @property
    def policy_revision(self) -> str: ...
    @property
    def checks(self) -> list[Check]: ...
    @property
    def claims(self) -> dict[str, Any] | None: ...
    def to_json(self) -> str:
        """The decision as one line of JSON (as `jwt-policy verify --format json` prints it)."""
    def explain(self) -> str:
        """The decision as text, one check a line (as `jwt-policy verify` prints it)."""

@final
class HttpResponse:
    """An HTTP answer of the contract."""

    status: int
    headers: list[tuple[str, str]]
    body: str
    def header(self, name: str) -> str | None: ...

@final
class RequestOutcome:
    """What the engine made of one HTTP request."""

    allowed: bool
    decision: Decision | None
    response: HttpResponse | None

@final
class PolicyEngine:
    """A policy compiled with the service's context values and keys."""

    def __init__(
        self,
        policy: Policy,
        context: Mapping[str, str] | None = None,
        jwks: str | PathLike[str] | None = None,
        *,
        now: float | None = None,
    ) -> None:
        """Compiles `policy` with the run-time `context` values it refers to (e.g.
        `{"credential.key_id": ...}`); `jwks`, a JWKS file, replaces every issuer's public keys;
        `now` fixes the clock (tests and demos only). Raises `EngineError`."""
    @property
    def policy(self) -> Policy: ...
    @property
    def resource_client_id(self) -> str | None: ...
    @property
    def required_scopes(self) -> list[str]: ...
    @property
    def metadata_path(self) -> str | None: ...
    @property
    def metadata_url(self) -> str | None: ...
    def evaluate(self, token: str, now: float | None = None) -> Decision:
        """Decides about `token` now (or at `now`, seconds since the epoch) with the keys held
        now; never waits. The GIL is released while verifying."""
    def evaluate_async(self, token: str, now: float | None = None) -> Awaitable[Decision]:
        """Like `evaluate`, awaited in a running event loop: remote keys the token needs are
        fetched first, on a tokio runtime, without blocking the loop."""
    def response(self, decision: Decision | None = None) -> HttpResponse:
        """The HTTP answer for `decision` (`None`: a request without credentials)."""
    def challenge(self, decision: Decision | None = None) -> str | None:
        """The `WWW-Authenticate` value for `decision` (`None`: a request without
        credentials); `None` when the answer has none (allow, 503, 500)."""
    def metadata_json(self) -> str:
        """The RFC 9728 protected-resource metadata document, one line of JSON."""
    def metadata_response(self) -> HttpResponse:
        """The answer to `GET metadata_path`."""
    def authorize(
        self,
        authorization: Sequence[str],
        method: str = "GET",
        path: str | None = None,
        now: float | None = None,
    ) -> RequestOutcome:
        """Decides about an HTTP request from all its `Authorization` header values and, when
        `path` is given, the policy's `[[routes]]` for `method` and `path`; never waits."""
    def authorize_async(
        self,
        authorization: Sequence[str],
        method: str = "GET",
        path: str | None = None,
        now: float | None = None,
    ) -> Awaitable[RequestOutcome]:
        """Like `authorize`, fetching remote keys when needed (see `evaluate_async`)."""
