"""The provider client: one chat-completion request upstream through the openai SDK.

The SDK's own retries are off (the gateway retries, so every attempt is counted). The reply
keeps the upstream JSON exactly as sent (malformed tool-call arguments, DeepSeek's
reasoning_content and cache fields pass through untouched). A prompt longer than the model's
context window is never retried, whatever status carries it (`UpstreamReply.context_length`):
OpenAI answers 400 with code `context_length_exceeded`, DeepSeek and vLLM 400 with "maximum
context length" in the message, some servers 413 or a 5xx.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

import openai

from hgm.llm.providers import ModelRoute

RETRYABLE_STATUS = frozenset({408, 409, 429})
_CONTEXT_LENGTH = re.compile(r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|"
                             r"input is too long|reduce the length", re.I)


@dataclass
class UpstreamReply:
    """One attempt's outcome. status 0 = no HTTP response (timeout, connection error)."""

    status: int
    body: dict[str, Any] | None
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    context_length: bool = False
    """The provider refused the prompt as longer than the model's context window (not retried)."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.body is not None and self.error is None

    @classmethod
    def error_reply(cls, status: int, body: dict[str, Any], error: str,
                    retry_after_s: float | None = None) -> UpstreamReply:
        """An HTTP error answer: retryable (408/409/429/5xx) unless it is a context-length refusal."""
        context = status not in (408, 429) and is_context_length(body)  # a rate limit may speak of tokens too
        return cls(status, body, error=error, retryable=not context and (status in RETRYABLE_STATUS or status >= 500),
                   retry_after_s=retry_after_s, context_length=context)


def is_context_length(body: Any) -> bool:
    """Whether an error body says the prompt does not fit the model's context window."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        text = " ".join(str(err.get(k) or "") for k in ("code", "type", "message"))
    else:
        text = str(err if err is not None else body)
    return bool(_CONTEXT_LENGTH.search(text))


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


class ProviderClient:
    """Sends chat-completion bodies to one route's base URL with the real key."""

    def __init__(self, route: ModelRoute, api_key: str | None, timeout_s: float):
        self.route = route
        # Keyless servers: an explicit placeholder stops the SDK from reading OPENAI_API_KEY from the
        # environment, and the omitted header keeps the placeholder off the wire.
        self._auth: dict[str, Any] = {} if api_key else {"Authorization": openai.omit}
        self._client = openai.OpenAI(api_key=api_key or "no-key", base_url=route.base_url, max_retries=0,
                                     timeout=timeout_s)
        create = self._client.chat.completions.create
        self._known = set(inspect.signature(create).parameters) - {
            "extra_headers",
            "extra_query",
            "extra_body",
            "timeout",
        }

    def send(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> UpstreamReply:
        """POST {base_url}/chat/completions with `body` (already adapted to the route)."""
        kwargs = {k: v for k, v in body.items() if k in self._known}
        extra = {k: v for k, v in body.items() if k not in self._known}
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                **kwargs, extra_body=extra or None, extra_headers={**(headers or {}), **self._auth} or None)
        except openai.APIStatusError as e:
            try:
                err_body = e.response.json()
            except ValueError:
                err_body = {"error": {"message": e.response.text[:2000], "type": "upstream_error"}}
            return UpstreamReply.error_reply(
                e.status_code,
                err_body if isinstance(err_body, dict) else {"error": err_body},
                f"HTTP {e.status_code}: {e.message}",
                _retry_after(e.response.headers),
            )
        except openai.APITimeoutError as e:
            return UpstreamReply(0, None, error=f"timeout: {e}", retryable=True)
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            return UpstreamReply(0, None, error=f"connection error: {type(cause).__name__}: {cause}", retryable=True)
        text = raw.http_response.text
        try:
            payload = json.loads(text)
        except ValueError:
            return UpstreamReply(raw.http_response.status_code, None,
                                 error=f"upstream answered non-JSON: {text[:200]!r}", retryable=True)
        if not isinstance(payload, dict) or "choices" not in payload:
            return UpstreamReply(raw.http_response.status_code, None,
                                 error=f"upstream answered without choices: {text[:200]!r}", retryable=True)
        return UpstreamReply(raw.http_response.status_code, payload)

    def close(self) -> None:
        self._client.close()
