"""LLM access for hgm: provider table, the gateway sandboxed agents talk to, the scripted LLM.

- `providers`: model names -> ModelRoute (base URL, key variable, dialect, price, context window,
  output cap); `check_models`, `check_llm`, `spend_bounds`.
- `pricing`: token usage as providers report it, its price, and a request's cost bound.
- `gateway`: `Gateway` (OpenAI-compatible, Unix socket, per-session tokens, retries, session and
  run budgets held by reservations, running usage totals, recording, cassettes) and `SessionUsage`.
- `relay`: how the jobs on a Ray cluster's worker nodes reach the central gateway (keys stay on the head).
- `scripted`: `ScriptedServer`, the script-driven OpenAI-compatible server used by tests.
"""

from hgm.llm.gateway import GATEWAY_BASE_URL, Gateway, SessionBudget, SessionUsage
from hgm.llm.providers import ModelRoute, ProviderTable, check_models
from hgm.llm.scripted import ScriptedServer

__all__ = ["GATEWAY_BASE_URL", "Gateway", "ModelRoute", "ProviderTable", "ScriptedServer", "SessionBudget",
           "SessionUsage", "check_models"]
