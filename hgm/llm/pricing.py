"""Token usage as providers report it, and its price.

Providers agree on `usage.prompt_tokens` / `usage.completion_tokens` (reasoning tokens are
part of completion_tokens for both OpenAI and DeepSeek) but not on cached input:
OpenAI reports `usage.prompt_tokens_details.cached_tokens`, DeepSeek
`usage.prompt_cache_hit_tokens` (plus `prompt_cache_miss_tokens`). In both, prompt_tokens
counts cached tokens too. A price that is not known gives a cost of None, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    """USD per million tokens. cached_input None = no cache price known."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Part of prompt_tokens served from the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Part of completion_tokens spent on hidden reasoning (informational)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from_response(response: dict[str, Any]) -> TokenUsage:
    """Read the usage block of a chat-completion response (OpenAI or DeepSeek shape)."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return TokenUsage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None)
    if not cached:
        cached = _int(usage.get("prompt_cache_hit_tokens"))
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    return TokenUsage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=cached,
        reasoning_tokens=_int(reasoning),
    )


def cost_usd(usage: TokenUsage, price: Price | None) -> float | None:
    """Dollar cost of one call; None if the price (or a needed cache price) is unknown."""
    if price is None:
        return None
    if usage.cached_tokens and price.cached_input is None:
        return None
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    cached_cost = usage.cached_tokens * (price.cached_input or 0.0)
    return (uncached * price.input + cached_cost + usage.completion_tokens * price.output) / 1e6
