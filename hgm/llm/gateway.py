"""The LLM gateway: an OpenAI-compatible endpoint on a Unix socket for sandboxed agents.

The harness runs it in a thread (`with Gateway(...) as gw:`), opens one session per agent run
(`token = gw.open_session(role, model, node_id, task_id)`), passes `gw.agent_env(token, path)`
to the sandbox, and reads `gw.close_session(token)` afterwards. The agent connects with

    openai.OpenAI(base_url="http://hgm-gateway/v1", api_key=TOKEN,
                  http_client=httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET)))

The harness's own calls (the diagnosis, hgm/expand.py) go through the socket the same way, so they
are recorded like an agent's and work unchanged through a worker node's relay (hgm/llm/relay.py).

With `answers` (hgm/replay.py), upstream replies come from the harness instead of the providers:
no client, no key, no network.

Endpoints: POST /v1/chat/completions (`stream: true` gets the finished answer as SSE chunks),
GET /v1/models (the session's model). The requested `model` is replaced by the session's.
The real key never leaves the harness. Upstream 408/409/429/5xx, timeouts and connection
errors are retried with exponential backoff; a prompt longer than the model's context window
is not (recorded as `context_length`, passed to the agent as the provider sent it). Every
exchange is recorded through `recorder` (keywords of RunStore.llm.record). Errors the agent
sees (OpenAI-style JSON): 401 unknown token; 400 bad request; 402 `budget_exceeded` (session
marked over_budget, later calls refused too); 502 `upstream_failed` (upstream down for good, a
cassette miss, or upstream 401/402/403/404 = the harness's key, balance or model name is wrong;
the session is marked upstream_failed so the run books an infra error); other upstream 4xx pass
through as sent.

Budgets. Session caps (budget.max_tokens_session / max_usd_session) are checked before each
request against what the session used so far: a session may cross its cap by its last request.
The run caps (budget.max_usd_run, budget.max_tokens_run) hold with any number of sessions in
flight: before a request is forwarded, the most it can cost (pricing.request_bound) is reserved
against the run's budget, and settled to the real cost when the answer arrives. A request whose
bound does not fit waits while other reservations are open; if it cannot fit even when they
have settled, the run's budget is spent (`run_cap_reason`): that request and every later one
are refused (recorded as `run_cap`). Dollars count known prices only; a model without a price
is bounded by the token cap alone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from hgm.config import BudgetConfig, LLMConfig
from hgm.domain import Usage
from hgm.llm.cassette import Cassette
from hgm.llm.gateway_http import GatewayHandler, UnixHTTPServer
from hgm.llm.pricing import Bound, TokenUsage, cost_usd, request_bound, usage_from_response
from hgm.llm.providers import ModelRoute, ProviderTable, adapt_request
from hgm.llm.scripted import SESSION_HEADER, ScriptedServer, error_body
from hgm.llm.upstream import ProviderClient, UpstreamReply

GATEWAY_BASE_URL = "http://hgm-gateway/v1"
MAX_SOCKET_PATH = 100
HARNESS_FAULT_STATUS = frozenset({401, 402, 403, 404})
"""Upstream answers that are the harness's fault, not the agent's: bad key, no balance, no access, wrong model/URL."""
Recorder = Callable[..., Any]
"""Called with the keywords of RunStore.llm.record: session, role, model, node_id, task_id, status,
attempts, latency_s, prompt_tokens, completion_tokens, cached_tokens, cost_usd, request (the body
sent upstream, a dict), response_json, error. Status is one of ok, error, context_length,
upstream_failed, over_budget (a session cap refused it), run_cap (the run's budget refused it)."""


class Answers(Protocol):
    """Upstream replies served by the harness itself (hgm/replay.py serves a run store's)."""

    def answer(self, session: SessionUsage, request: dict[str, Any]) -> UpstreamReply:
        """The reply to one request of `session`, as sent upstream (adapted to the route)."""
        ...


@dataclass(frozen=True)
class SessionBudget:
    max_tokens: int | None = None
    max_usd: float | None = None


@dataclass(frozen=True)
class SessionUsage:
    """What one session used, and whether it ended in a state the harness must book."""

    session: str
    role: str
    model: str
    node_id: int | None
    task_id: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float | None
    """None when any call's price was unknown."""
    over_budget: bool
    """A request was refused because a cap was reached (the agent was cut off)."""
    upstream_failed: bool
    failure: str | None
    """Why the session was cut off (budget or upstream), None if it was not."""
    run_capped: bool = False
    """The cap that cut it off was the run's (its budget is spent), not the session's own."""


@dataclass
class _Session:
    id: str
    role: str
    route: ModelRoute
    node_id: int | None
    task_id: str | None
    budget: SessionBudget
    calls: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0
    over_budget: bool = False
    upstream_failed: bool = False
    failure: str | None = None
    run_capped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> SessionUsage:
        u = self.usage
        return SessionUsage(self.id, self.role, self.route.name, self.node_id, self.task_id, self.calls,
                            u.prompt_tokens, u.completion_tokens, u.cached_tokens, self.cost_usd,
                            self.over_budget, self.upstream_failed, self.failure, self.run_capped)


class Gateway:
    """OpenAI-compatible gateway on a Unix socket, served from a thread."""

    def __init__(self, socket_path: Path, *, llm: LLMConfig | None = None, budget: BudgetConfig | None = None,
                 recorder: Recorder | None = None, providers: ProviderTable | None = None,
                 env: dict[str, str] | None = None, used_before: dict[str, Usage] | None = None,
                 answers: Answers | None = None):
        """`used_before`: the run's LLM usage per role before this process (on resume), which the
        run caps and `usage_by_role` count too. `answers`: where upstream replies come from instead of
        the providers (`hgm replay`: no client, no key, no network)."""
        self.answers = answers
        self.socket_path = Path(socket_path)
        self.llm = llm or LLMConfig()
        self.budget = budget or BudgetConfig()
        self.recorder = recorder
        self.providers = providers or ProviderTable.load(self.llm.providers_file)
        self.env = dict(os.environ if env is None else env)
        self._usage: dict[str, Usage] = dict(used_before or {})
        before = list(self._usage.values())
        self.run_cost_usd = sum(u.known_cost_usd for u in before)
        """Dollars spent in this run (known prices only), from before a resume too."""
        self.run_tokens = sum(u.prompt_tokens + u.completion_tokens for u in before)
        """Tokens (prompt + completion, all models) used in this run, from before a resume too."""
        self.run_cap_reason: str | None = None
        """Set once the run's budget cannot pay for a request: every later request is refused."""
        self._reserved = Bound(0, 0.0)
        self._budget_cond = threading.Condition()
        self.cassette = Cassette(self.llm.cassette, self.llm.cassette_mode) if self.llm.cassette else None
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._closed: dict[str, _Session] = {}
        self._clients: dict[str, ProviderClient] = {}
        self._scripted: dict[Path, ScriptedServer] = {}
        self._secrets: set[str] = set()
        self._count = 0
        self._server: UnixHTTPServer | None = None
        self._fallback_dir: Path | None = None

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> Gateway:
        """Bind and serve. A path too long for AF_UNIX (~107 bytes) is replaced by a short one under
        /tmp (removed by stop): mount `self.socket_path`, not the path you asked for."""
        if len(os.fsencode(self.socket_path.absolute())) > MAX_SOCKET_PATH:
            self._fallback_dir = Path(tempfile.mkdtemp(prefix="hgm-gw-"))
            self.socket_path = self._fallback_dir / "gateway.sock"
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = UnixHTTPServer(str(self.socket_path), GatewayHandler)
        self._server.gateway = self
        # The token is the access control: any uid in the sandbox may connect.
        os.chmod(self.socket_path, 0o666)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="hgm-llm-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)
        if self._fallback_dir is not None:
            shutil.rmtree(self._fallback_dir, ignore_errors=True)
            self._fallback_dir = None
        for client in self._clients.values():
            client.close()
        for server in self._scripted.values():
            server.stop()
        self._clients.clear()
        self._scripted.clear()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # sessions ------------------------------------------------------------------------------
    def open_session(self, role: str, model: str, node_id: int | None = None, task_id: str | None = None,
                     budgets: SessionBudget | None = None) -> str:
        """A fresh token for one agent run; UserError if the model is unknown or its key is missing."""
        route = self.providers.resolve(model, self.llm.base_url)
        with self._lock:
            self._count += 1
            session_id = f"s{self._count}-{role}"
            if route.name not in self._clients:
                self._clients[route.name] = self._make_client(route)
            token = "hgm-session-" + secrets.token_urlsafe(24)
            budget = budgets or SessionBudget(self.budget.max_tokens_session, self.budget.max_usd_session)
            self._sessions[token] = _Session(
                session_id, role, self._clients[route.name].route, node_id, task_id, budget
            )
        return token

    def _make_client(self, route: ModelRoute) -> ProviderClient:
        if self.answers is not None:  # never sends: a placeholder URL, no key, no scripted server
            return ProviderClient(replace(route, base_url=route.base_url or "http://answers.invalid/v1"), None,
                                  self.llm.request_timeout_s)
        if route.script is not None:
            server = self._scripted.get(route.script)
            if server is None:
                server = self._scripted[route.script] = ScriptedServer(route.script).start()
            route = replace(route, base_url=server.base_url)
        key = (
            None if self.cassette and self.cassette.mode == "replay" and route.key_required else route.api_key(self.env)
        )
        if key:
            self._secrets.add(key)
        return ProviderClient(route, key, self.llm.request_timeout_s)

    def session_usage(self, token: str) -> SessionUsage:
        """Current usage and state of a session (open or closed)."""
        with self._lock:
            session = self._sessions.get(token) or self._closed_session(token)
        return session.snapshot()

    def close_session(self, token: str) -> SessionUsage:
        """Revoke the token (later requests get 401) and return the session's usage."""
        with self._lock:
            session = self._sessions.pop(token, None) or self._closed_session(token)
            self._closed[token] = session
        return session.snapshot()

    def _closed_session(self, token: str) -> _Session:
        if token not in self._closed:
            raise KeyError("unknown gateway session token")
        return self._closed[token]

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, from the provider table (or its LLM script); None = unknown."""
        return self.providers.resolve(model, self.llm.base_url).context_window

    def usage_by_role(self) -> dict[str, Usage]:
        """The run's LLM usage per role (calls, tokens, dollars), kept as running totals: no store scan."""
        with self._lock:
            return dict(self._usage)

    def scripted_server(self, model: str) -> ScriptedServer | None:
        """The scripted LLM server started for `scripted:PATH` (tests read its received requests)."""
        route = self.providers.resolve(model)
        return self._scripted.get(route.script) if route.script else None

    @staticmethod
    def agent_env(token: str, socket_path_in_sandbox: str | Path) -> dict[str, str]:
        """Environment for the agent process: where the gateway is and its session token."""
        return {"HGM_LLM_SOCKET": str(socket_path_in_sandbox), "HGM_LLM_BASE_URL": GATEWAY_BASE_URL,
                "OPENAI_BASE_URL": GATEWAY_BASE_URL, "OPENAI_API_KEY": token}

    # requests ------------------------------------------------------------------------------
    def session_for(self, token: str) -> _Session | None:
        with self._lock:
            return self._sessions.get(token)

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[key hidden]")
        return text

    def _scrub(self, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        """The payload with every real key replaced (upstream errors may quote the key)."""
        if payload is None or not self._secrets:
            return payload
        scrubbed: dict[str, Any] = json.loads(self._scrub_text(json.dumps(payload)))
        return scrubbed

    def _over_session_budget(self, s: _Session) -> str | None:
        b = s.budget
        if b.max_tokens is not None and s.usage.total_tokens >= b.max_tokens:
            return f"session token budget exhausted ({s.usage.total_tokens} >= {b.max_tokens} tokens)"
        # A session whose cost is unknown (no price) is held to its token cap only.
        if b.max_usd is not None and s.cost_usd is not None and s.cost_usd >= b.max_usd:
            return f"session cost budget exhausted (${s.cost_usd:.4f} >= ${b.max_usd})"
        return None

    def _run_cap_refusal(self, bound: Bound, reserved: Bound) -> str | None:
        """Why the run's caps cannot take `bound` on top of what is spent and `reserved`, or None."""
        usd_cap, token_cap = self.budget.max_usd_run, self.budget.max_tokens_run
        if usd_cap is not None and bound.usd is not None and \
                self.run_cost_usd + (reserved.usd or 0.0) + bound.usd > usd_cap:
            return (f"cost cap ${usd_cap} reached: ${self.run_cost_usd:.4f} spent and the next request may cost "
                    f"up to ${bound.usd:.4f} (the run's budget.max_usd_run)")
        if token_cap is not None and self.run_tokens + reserved.tokens + bound.tokens > token_cap:
            return (f"token cap {token_cap} reached: {self.run_tokens} tokens used and the next request may use "
                    f"up to {bound.tokens} (the run's budget.max_tokens_run)")
        return None

    def _reserve(self, route: ModelRoute, request: dict[str, Any]) -> Bound | str:
        """Reserve the most `request` can cost against the run's caps (waiting while other
        reservations are open if it only fits without them); a refusal reason if it never fits."""
        bound = request_bound(request, route.price, route.max_output, route.context_window)
        with self._budget_cond:
            while self.run_cap_reason is None:
                alone = self._run_cap_refusal(bound, Bound(0, 0.0))
                if alone is not None:
                    self.run_cap_reason = alone
                    self._budget_cond.notify_all()
                elif self._run_cap_refusal(bound, self._reserved) is None:
                    self._reserved += bound
                    return bound
                else:
                    self._budget_cond.wait()
            return self.run_cap_reason

    def _settle(self, bound: Bound, usage: TokenUsage, cost: float | None) -> None:
        with self._budget_cond:
            self._reserved -= bound
            self.run_cost_usd += cost or 0.0
            self.run_tokens += usage.total_tokens
            self._budget_cond.notify_all()

    def chat(self, session: _Session, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Serve one chat-completion request of a session: (HTTP status, JSON body for the agent)."""
        with session.lock:  # one request at a time per session keeps budgets exact
            return self._chat(session, body)

    def _chat(self, s: _Session, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = adapt_request(body, s.route)
        record = dict(session=s.id, role=s.role, model=s.route.name, node_id=s.node_id, task_id=s.task_id,
                      request=request)
        if s.upstream_failed or s.over_budget:
            kind = "upstream_failed" if s.upstream_failed else "run_cap" if s.run_capped else "over_budget"
            return self._refuse(record, kind, s.failure or kind)
        reason = self._over_session_budget(s)
        if reason:
            s.over_budget, s.failure = True, reason
            return self._refuse(record, "over_budget", reason)
        bound = self._reserve(s.route, request)
        if isinstance(bound, str):
            s.over_budget, s.run_capped, s.failure = True, True, bound
            return self._refuse(record, "run_cap", bound)
        usage = TokenUsage()
        cost: float | None = 0.0  # None: the model's price is unknown
        try:
            start = time.monotonic()
            attempts, reply = self._forward(s, request)
            latency = time.monotonic() - start
            usage = usage_from_response(reply.body) if reply.ok and reply.body else TokenUsage()
            cost = cost_usd(usage, s.route.price) if reply.ok else 0.0
        finally:
            self._settle(bound, usage, cost)
        with self._lock:
            s.calls += 1
            s.usage = TokenUsage(s.usage.prompt_tokens + usage.prompt_tokens,
                                 s.usage.completion_tokens + usage.completion_tokens,
                                 s.usage.cached_tokens + usage.cached_tokens)
            s.cost_usd = None if s.cost_usd is None or cost is None else s.cost_usd + cost
        if reply.ok:  # delivered even if it crossed a session cap: the next request is refused
            status, payload, state, error = 200, reply.body, "ok", None
        elif reply.context_length:  # the agent's prompt is too long: its failure, passed on as sent
            status = reply.status if 400 <= reply.status < 500 else 400
            payload = reply.body or error_body(str(reply.error), "invalid_request_error", "context_length_exceeded")
            state, error = "context_length", reply.error
        elif reply.status in HARNESS_FAULT_STATUS or reply.retryable:
            why = self._scrub_text(
                f"upstream refused the harness's account or model for {s.route.name} ({reply.error})"
                if reply.status in HARNESS_FAULT_STATUS
                else f"upstream failed after {attempts} attempts: {reply.error}"
            )
            s.upstream_failed, s.failure = True, why
            status, payload, state, error = (
                502,
                error_body(why, "upstream_failed", "upstream_failed"),
                "upstream_failed",
                why,
            )
        else:
            status, payload, state, error = (
                reply.status,
                reply.body or error_body(str(reply.error), "upstream_error"),
                "error",
                reply.error,
            )
        payload = self._scrub(payload) or {}
        self._record(record, status=state, attempts=attempts, latency_s=latency, usage=usage, cost=cost,
                     response_json=self._scrub_text(json.dumps(reply.body)) if reply.body is not None else None,
                     error=self._scrub_text(error) if error else None)
        return status, payload

    def _forward(self, s: _Session, request: dict[str, Any]) -> tuple[int, UpstreamReply]:
        if self.answers is not None:
            return 1, self.answers.answer(s.snapshot(), request)
        if self.cassette and self.cassette.mode == "replay":
            hit = self.cassette.replay(s.route.name, request)
            if hit is None:
                return 0, UpstreamReply(0, None, error=f"cassette {self.cassette.path} has no recorded exchange "
                                                       "for this request", retryable=True)
            status, body = hit
            if status == 200:
                return 0, UpstreamReply(status, body)
            return 0, UpstreamReply.error_reply(status, body or {}, f"HTTP {status} (replayed)")
        client = self._clients[s.route.name]
        headers = {SESSION_HEADER: s.id} if s.route.script else None
        attempts, delay = 0, self.llm.backoff_initial_s
        while True:
            attempts += 1
            reply = client.send(request, headers)
            if reply.ok or not reply.retryable or attempts > self.llm.max_retries:
                break
            wait = max(delay, reply.retry_after_s or 0.0)
            time.sleep(min(wait, self.llm.backoff_max_s))
            delay = min(delay * 2, self.llm.backoff_max_s)
        if self.cassette:
            self.cassette.record(s.route.name, request, reply.status, self._scrub(reply.body))
        return attempts, reply

    def _refuse(self, record: dict[str, Any], kind: str, reason: str) -> tuple[int, dict[str, Any]]:
        reason = self._scrub_text(reason)
        status = 502 if kind == "upstream_failed" else 402
        self._record(record, status=kind, attempts=0, latency_s=0.0, usage=TokenUsage(), cost=0.0,
                     response_json=None, error=reason)
        return status, error_body(reason, kind if kind == "upstream_failed" else "budget_exceeded", kind)

    def _record(self, record: dict[str, Any], *, usage: TokenUsage, cost: float | None, **fields: Any) -> None:
        with self._lock:
            call = Usage(1, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, cost, cost or 0.0)
            self._usage[record["role"]] = self._usage.get(record["role"], Usage()) + call
        if self.recorder is not None:
            self.recorder(**record, **fields, prompt_tokens=usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens, cost_usd=cost)
