"""LLM access for hgm: provider table, the gateway sandboxed agents talk to, the scripted LLM.

- `providers`: model names -> ModelRoute (base URL, key variable, dialect, price); `check_models`.
- `gateway`: `Gateway` (OpenAI-compatible, Unix socket, per-session tokens, retries, budgets,
  recording, cassettes) and `SessionUsage`.
- `scripted`: `ScriptedServer`, the script-driven OpenAI-compatible server used by tests.
"""

from hgm.llm.gateway import GATEWAY_BASE_URL, Gateway, SessionBudget, SessionUsage
from hgm.llm.providers import ModelRoute, ProviderTable, check_models
from hgm.llm.scripted import ScriptedServer

__all__ = ["GATEWAY_BASE_URL", "Gateway", "ModelRoute", "ProviderTable", "ScriptedServer", "SessionBudget",
           "SessionUsage", "check_models"]
