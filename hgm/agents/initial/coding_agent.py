"""A small coding agent: an LLM with tools (tools/*.py) in a loop, editing a git working tree.

python coding_agent.py --problem-statement-file F --git-dir D --base-commit C --chat-history-file H
                       --language L --model M [--self-improve] [--test-description T]

The LLM is any OpenAI-compatible chat-completions endpoint: OPENAI_BASE_URL (or HGM_LLM_BASE_URL)
and OPENAI_API_KEY; with HGM_LLM_SOCKET set, requests go over that Unix socket. The agent edits
files under D and never commits; whoever started it diffs the tree against C.

The conversation is kept under the model's context window (--context-window, default
AGENT_CONTEXT_WINDOW, 0 = unknown): old tool output is elided first; if that is not enough, or
the API still says the prompt is too long, the agent stops.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import httpx
import openai
import prompts

TOOLS_DIR = Path(__file__).resolve().parent / "tools"
BYTES_PER_TOKEN = 3  # a safe guess without the model's tokenizer (English and code average about 4)


def load_tools() -> dict:
    """Every tools/<name>.py with tool_info() and tool_function(), keyed by the tool's name."""
    tools = {}
    for path in sorted(TOOLS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"tools.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "tool_info") and hasattr(module, "tool_function"):
            tools[module.tool_info()["name"]] = module
    return tools


def make_client() -> openai.OpenAI:
    base_url = os.environ.get("HGM_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    socket = os.environ.get("HGM_LLM_SOCKET")
    transport = httpx.HTTPTransport(uds=socket) if socket else None
    return openai.OpenAI(
        base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"), max_retries=2,
        http_client=httpx.Client(transport=transport, timeout=httpx.Timeout(900.0, connect=30.0)),
    )


class ChatLog:
    """The whole conversation as readable markdown, appended as it happens (survives a kill)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def write(self, heading: str, body: str) -> None:
        with self.path.open("a") as f:
            f.write(f"## {heading}\n\n{body}\n\n")


def run_tool(tools: dict, name: str, raw_args: str) -> str:
    """Call one tool; every problem (bad JSON, unknown tool, exception) becomes text for the model."""
    if name not in tools:
        return prompts.UNKNOWN_TOOL.format(name=name, names=", ".join(tools))
    try:
        args = json.loads(raw_args or "{}")
        if not isinstance(args, dict):
            raise ValueError("expected a JSON object")
    except ValueError as e:
        return prompts.BAD_TOOL_ARGS.format(name=name, error=e)
    try:
        return str(tools[name].tool_function(**args))
    except Exception as e:  # a tool failing is information for the model, not the end of the run
        return f"Error: {type(e).__name__}: {e}"


def fit_context(messages: list[dict], schemas: list[dict], window: int) -> bool:
    """Keep the request under 3/4 of the context window (the rest is for the answer) by eliding old
    tool output, oldest first, down to half the window at once (so the conversation's prefix, which
    providers cache, stays the same for many steps). False if it cannot fit."""
    if window <= 0:
        return True
    sizes = [len(json.dumps(m)) for m in messages]
    tokens = lambda: (sum(sizes) + len(json.dumps(schemas))) // BYTES_PER_TOKEN  # noqa: E731
    if tokens() <= window * 3 // 4:
        return True
    for i, m in enumerate(messages[:-1]):  # the newest message is what the model must see now
        if tokens() <= window // 2:
            break
        if m["role"] == "tool" and m["content"] != prompts.ELIDED:
            m["content"] = prompts.ELIDED
            sizes[i] = len(json.dumps(m))
    return tokens() <= window * 3 // 4


def is_context_error(e: openai.APIError) -> bool:
    text = f"{getattr(e, 'code', '')} {e}".lower()
    return "context_length" in text or "context length" in text or "too long" in text


def agent_loop(client: openai.OpenAI, model: str, messages: list[dict], tools: dict, log: ChatLog,
               max_steps: int, deadline: float, context_window: int = 0) -> str:
    """Ask, run the requested tools, repeat; returns why it stopped."""
    schemas = [{"type": "function", "function": m.tool_info()} for m in tools.values()]
    for step in range(1, max_steps + 1):
        if time.monotonic() > deadline:
            return "wall-time limit reached"
        if not fit_context(messages, schemas, context_window):
            log.write("Context window full", f"the conversation no longer fits {context_window} tokens")
            return "context window full"
        try:
            response = client.chat.completions.create(model=model, messages=messages, tools=schemas)
        except openai.APIError as e:
            log.write("LLM error", f"```\n{type(e).__name__}: {e}\n```")
            return "LLM error: context window exceeded" if is_context_error(e) else f"LLM error: {type(e).__name__}"
        if not response.choices:
            log.write("LLM error", "the response has no choices")
            return "LLM error: empty response"
        message = response.choices[0].message
        calls = message.tool_calls or []
        # DeepSeek's thinking mode needs the reasoning of tool-call turns sent back in later requests.
        reasoning = getattr(message, "reasoning_content", None)
        messages.append({
            "role": "assistant", "content": message.content,
            **({"tool_calls": [c.model_dump() for c in calls]} if calls else {}),
            **({"reasoning_content": reasoning} if calls and reasoning else {}),
        })
        log.write(f"Assistant (step {step})", message.content or "")
        if not calls:
            return "done"
        for call in calls:
            result = run_tool(tools, call.function.name, call.function.arguments)
            log.write(f"Tool call: {call.function.name}", f"```json\n{call.function.arguments}\n```\n\n"
                      f"Result:\n```\n{result}\n```")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "step limit reached"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem-statement-file", type=Path, required=True)
    ap.add_argument("--git-dir", type=Path, required=True)
    ap.add_argument("--base-commit", required=True)
    ap.add_argument("--chat-history-file", type=Path, required=True)
    ap.add_argument("--language", default="python")
    ap.add_argument("--model", required=True)
    ap.add_argument("--self-improve", action="store_true")
    ap.add_argument("--test-description", default="")
    ap.add_argument("--max-steps", type=int, default=int(os.environ.get("AGENT_MAX_STEPS", "100")))
    ap.add_argument("--max-wall-s", type=float, default=float(os.environ.get("AGENT_MAX_WALL_S", "1500")))
    ap.add_argument("--context-window", type=int, default=int(os.environ.get("AGENT_CONTEXT_WINDOW", "0")),
                    help="the model's context window in tokens (0 = unknown)")
    args = ap.parse_args(argv)

    git_dir = args.git_dir.resolve()
    os.chdir(git_dir)
    user = prompts.TASK.format(statement=args.problem_statement_file.read_text(), git_dir=git_dir,
                               language=args.language)
    if args.test_description:
        user += prompts.TESTS.format(test_description=args.test_description)
    if args.self_improve:
        user += prompts.SELF_IMPROVE
    messages = [
        {"role": "system", "content": prompts.SYSTEM.format(git_dir=git_dir, base_commit=args.base_commit)},
        {"role": "user", "content": user},
    ]
    log = ChatLog(args.chat_history_file)
    log.write("System", messages[0]["content"])
    log.write("User", user)
    reason = agent_loop(make_client(), args.model, messages, load_tools(), log, args.max_steps,
                        time.monotonic() + args.max_wall_s, args.context_window)
    log.write("Stopped", reason)
    print(f"agent stopped: {reason}", file=sys.stderr)
    return 3 if reason.startswith("LLM error") else 0


if __name__ == "__main__":
    sys.exit(main())
