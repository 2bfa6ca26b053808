"""Token usage as providers report it, and its price.

Providers agree on `usage.prompt_tokens` / `usage.completion_tokens` (reasoning tokens are
part of completion_tokens for both OpenAI and DeepSeek) but not on cached input:
OpenAI reports `usage.prompt_tokens_details.cached_tokens`, DeepSeek
`usage.prompt_cache_hit_tokens` (plus `prompt_cache_miss_tokens`). In both, prompt_tokens
counts cached tokens too. A price that is not known gives a cost of None, never 0.

Before a request is sent, the gateway reserves what it can cost at most (`request_bound`): its
prompt estimated from its size, plus the most output it may get, at the full input and output
price. No tokenizer is consulted (each model has its own): one token per 3 bytes of the
request's JSON overestimates English and code, which average about 4 bytes a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BYTES_PER_TOKEN = 3
DEFAULT_MAX_OUTPUT = 32_768
"""Output bound of a request that sets no max_tokens, for a model whose output cap and window are unknown."""


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


@dataclass(frozen=True)
class Bound:
    """The most one request can use: tokens (prompt estimate + output cap) and dollars (None = no price)."""

    tokens: int
    usd: float | None

    def __add__(self, other: Bound) -> Bound:
        return Bound(self.tokens + other.tokens, (self.usd or 0.0) + (other.usd or 0.0))

    def __sub__(self, other: Bound) -> Bound:
        return Bound(self.tokens - other.tokens, (self.usd or 0.0) - (other.usd or 0.0))


def prompt_tokens_bound(request: Mapping[str, Any]) -> int:
    """An over-estimate of a request's prompt tokens (messages and tools, see the module docstring)."""
    size = len(json.dumps([request.get("messages"), request.get("tools")], ensure_ascii=False).encode())
    return size // BYTES_PER_TOKEN + 1


def request_bound(request: Mapping[str, Any], price: Price | None, max_output: int | None,
                  context_window: int | None) -> Bound:
    """What answering `request` can cost at most: its own max_(completion_)tokens, else the model's
    output cap, else what its context window leaves, else DEFAULT_MAX_OUTPUT; times `n` choices."""
    prompt = prompt_tokens_bound(request)
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if not (isinstance(limit, int) and limit > 0):
        limit = max_output or (max(context_window - prompt, 1) if context_window else DEFAULT_MAX_OUTPUT)
    n = request.get("n")
    output = limit * (n if isinstance(n, int) and n > 1 else 1)
    usd = None if price is None else (prompt * price.input + output * price.output) / 1e6
    return Bound(prompt + output, usd)
