"""Model names -> where and how to call them.

A model name resolves through the provider table (hgm/configs/providers.yaml, with a user
file merged on top) into a `ModelRoute`: base URL, the environment variable holding the key,
the upstream model id, the request dialect (`api`) and the price. Accepted names:

- a name listed under `models:` (deepseek-chat, deepseek-reasoner, gpt-5, gpt-5-mini, o3, ...);
- `PREFIX/MODEL` for a prefix listed under `prefixes:` (openrouter/..., ollama/...);
- `MODEL@URL` for any OpenAI-compatible server (vLLM, llama.cpp, a proxy); the key is read
  from HGM_API_KEY when set, otherwise none is sent;
- `scripted:PATH` for the scripted LLM (hgm.llm.scripted), which the gateway starts itself;
- an unlisted OpenAI-style name (gpt-*, o<digit>*) goes to OpenAI with an unknown price.

`check_models(names)` raises a UserError naming every missing key variable, so a run can fail
before it starts any work.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from hgm.config import CONFIG_DIR, BudgetConfig, LLMConfig
from hgm.errors import UserError
from hgm.llm.pricing import Price
from hgm.llm.scripted import load_script

PROVIDERS_FILE = CONFIG_DIR / "providers.yaml"
USER_PROVIDERS_FILE = Path("~/.config/hgm/providers.yaml")
SCRIPTED_PREFIX = "scripted:"
GENERIC_KEY_ENV = "HGM_API_KEY"

Api = Literal["chat", "reasoning"]
# Sampling knobs OpenAI reasoning models (o-series, gpt-5) reject.
REASONING_UNSUPPORTED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)


@dataclass(frozen=True)
class ModelRoute:
    """How to call one model name."""

    name: str
    """The name as the user wrote it (what the store records)."""
    upstream_model: str
    """The model id sent in the request body."""
    base_url: str
    key_env: str | None
    """Environment variable with the API key; None = no key."""
    key_required: bool = True
    api: Api = "chat"
    price: Price | None = None
    provider: str = ""
    script: Path | None = None
    """For scripted:PATH, the script file (the gateway starts a server and fills base_url)."""
    context_window: int | None = None
    """Tokens one request can hold (prompt + answer); None = unknown."""
    max_output: int | None = None
    """Most tokens one answer can have when the request sets no max_tokens; None = unknown."""

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The real key from the environment (None when not needed or not set and optional)."""
        env = os.environ if env is None else env
        if self.key_env is None:
            return None
        key = env.get(self.key_env) or None
        if key is None and self.key_required:
            raise UserError(
                f"model {self.name!r} needs an API key: set the environment variable {self.key_env} "
                f"(e.g. export {self.key_env}=...)"
            )
        return key


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read provider table {path}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"provider table {path} must be a mapping with providers:, models:, prefixes:")
    return data


class ProviderTable:
    """The merged provider table."""

    def __init__(self, data: Mapping[str, Any]):
        self.providers: dict[str, dict[str, Any]] = dict(data.get("providers") or {})
        self.models: dict[str, dict[str, Any]] = dict(data.get("models") or {})
        self.prefixes: dict[str, str] = dict(data.get("prefixes") or {})

    @classmethod
    def load(cls, user_file: Path | None = None) -> ProviderTable:
        """Packaged table, then `user_file` (must exist) or ~/.config/hgm/providers.yaml (if it exists)."""
        data = _read(PROVIDERS_FILE)
        if user_file is not None:
            user_file = Path(user_file).expanduser()
            if not user_file.is_file():
                raise UserError(f"provider table not found: {user_file} (fix llm.providers_file or create the file)")
        elif USER_PROVIDERS_FILE.expanduser().is_file():
            user_file = USER_PROVIDERS_FILE.expanduser()
        if user_file is not None:
            extra = _read(user_file)
            for section in ("providers", "models", "prefixes"):
                merged = copy.deepcopy(data.get(section) or {})
                merged.update(extra.get(section) or {})
                data[section] = merged
        return cls(data)

    def _provider(self, name: str, model_name: str) -> dict[str, Any]:
        if name not in self.providers:
            raise UserError(f"model {model_name!r} names provider {name!r}, which is not in the provider table "
                            f"(known: {', '.join(sorted(self.providers))})")
        return self.providers[name]

    def _route(self, name: str, upstream: str, provider: str, entry: Mapping[str, Any]) -> ModelRoute:
        prov = self._provider(provider, name)
        price = entry.get("price")
        return ModelRoute(
            name=name,
            upstream_model=str(entry.get("upstream", upstream)),
            base_url=str(prov["base_url"]).rstrip("/"),
            key_env=prov.get("key_env"),
            key_required=prov.get("key_env") is not None,
            api=entry.get("api", "chat"),
            price=Price(**price) if price else None,
            provider=provider,
            context_window=_positive(entry.get("context_window")),
            max_output=_positive(entry.get("max_output")),
        )

    def resolve(self, name: str, base_url: str | None = None) -> ModelRoute:
        """Route for a model name; `base_url` (llm.base_url) overrides where table models go."""
        route = self._resolve(name)
        if base_url and route.script is None and "@" not in name:
            route = replace(route, base_url=base_url.rstrip("/"), key_env=route.key_env or GENERIC_KEY_ENV,
                            key_required=False)
        return route

    def _resolve(self, name: str) -> ModelRoute:
        if not name or not name.strip():
            raise UserError("empty model name (set llm.self_improve / llm.downstream / llm.diagnose)")
        if name.startswith(SCRIPTED_PREFIX):
            script = Path(name[len(SCRIPTED_PREFIX):]).expanduser()
            if not script.is_file():
                raise UserError(f"scripted model {name!r}: script file {script} not found")
            data = load_script(script)
            price = data.get("price")
            return ModelRoute(name=name, upstream_model="scripted", base_url="", key_env=None, key_required=False,
                              price=Price(**price) if price else None, provider="scripted", script=script.resolve(),
                              context_window=data.get("context_window"), max_output=data.get("max_output"))
        if name in self.models:
            entry = self.models[name]
            return self._route(name, name, entry.get("provider", "openai"), entry)
        if "@" in name:
            model, _, url = name.partition("@")
            if not model or not re.match(r"https?://", url):
                raise UserError(f"model {name!r}: expected MODEL@URL with an http(s) URL, e.g. qwen@http://localhost:8000/v1")
            return ModelRoute(name=name, upstream_model=model, base_url=url.rstrip("/"), key_env=GENERIC_KEY_ENV,
                              key_required=False, provider="custom")
        prefix, slash, rest = name.partition("/")
        if slash and prefix in self.prefixes and rest:
            provider = self.prefixes[prefix]
            listed = self.models.get(rest, {})  # e.g. openai/gpt-5 keeps gpt-5's dialect and price
            return self._route(name, rest, provider, listed if listed.get("provider") == provider else {})
        if re.match(r"^(gpt-|o\d)", name):
            api: Api = "reasoning" if re.match(r"^(o\d|gpt-5)", name) else "chat"
            return self._route(name, name, "openai", {"api": api})
        known = ", ".join(sorted(self.models))
        raise UserError(
            f"unknown model {name!r}. Known: {known}; or PREFIX/MODEL with prefix in "
            f"{sorted(self.prefixes)}; or MODEL@URL for an OpenAI-compatible server; or scripted:PATH"
        )


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def check_models(names: Iterable[str], table: ProviderTable | None = None, env: Mapping[str, str] | None = None,
                 base_url: str | None = None, need_keys: bool = True) -> list[ModelRoute]:
    """Resolve every name and check its key is set; one UserError lists all problems.
    need_keys=False (cassette replay) only checks that the names resolve."""
    table = table or ProviderTable.load()
    routes, problems = [], []
    for name in dict.fromkeys(names):
        try:
            route = table.resolve(name, base_url)
            if need_keys:
                route.api_key(env)
            routes.append(route)
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError("; ".join(problems))
    return routes


def check_llm(llm: LLMConfig, names: Iterable[str], env: Mapping[str, str] | None = None) -> list[ModelRoute]:
    """check_models for a config's llm section: its provider table and base URL; then, unless
    llm.preflight is off, that every model's endpoint can be reached (hgm/llm/preflight.py).
    Replaying a cassette calls no provider, so it needs no key and no network."""
    replay = llm.cassette is not None and llm.cassette_mode == "replay"
    routes = check_models(names, ProviderTable.load(llm.providers_file), env=env, base_url=llm.base_url,
                          need_keys=not replay)
    if llm.preflight and not replay:
        from hgm.llm.preflight import check_endpoints

        check_endpoints(routes)
    return routes


def spend_bounds(routes: Iterable[ModelRoute], budget: BudgetConfig) -> tuple[list[str], list[str]]:
    """What bounds a run's LLM spend, as (notes, warnings) to show before it starts: the caps, and
    the models whose price is unknown (the dollar cap cannot see them; only the token cap bounds them)."""
    usd, tokens = budget.max_usd_run, budget.max_tokens_run
    caps = [f"${usd} (budget.max_usd_run, known prices)" if usd is not None else "",
            f"{tokens:,} tokens (budget.max_tokens_run)" if tokens is not None else ""]
    notes = [f"LLM spend cap: {' and '.join(c for c in caps if c) or 'none (set one with --max-usd)'}"]
    warnings = []
    unpriced = sorted({r.name for r in routes if r.price is None})
    if unpriced and tokens is not None:
        notes.append(f"models without a known price: {', '.join(unpriced)}; the run token cap of {tokens:,} "
                     "tokens bounds them")
    elif unpriced:
        warnings.append(f"models without a known price: {', '.join(unpriced)}; nothing bounds what they spend. "
                        "Set a run token cap (e.g. --set budget.max_tokens_run=5000000) or give them a price in a "
                        "provider table (llm.providers_file)")
    return notes, warnings


def adapt_request(body: Mapping[str, Any], route: ModelRoute) -> dict[str, Any]:
    """The agent's request rewritten for the route: its model, its dialect. Messages pass unchanged
    (DeepSeek thinking mode wants reasoning_content of tool-call turns passed back; the agent owns that)."""
    out = {k: v for k, v in body.items() if k != "model"}
    out["model"] = route.upstream_model
    if route.api == "reasoning":
        if "max_tokens" in out:
            limit = out.pop("max_tokens")
            out.setdefault("max_completion_tokens", limit)
        for key in REASONING_UNSUPPORTED:
            out.pop(key, None)
    return out
