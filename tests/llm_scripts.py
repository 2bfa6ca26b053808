"""Scripted-LLM scripts for run/expand tests: one script per role (each session replays its own).

- downstream: solves python__transpose (writes the reference solution with the editor tool),
  gives up on every other task (empty patch).
- diagnose: answers with a JSON plan (fenced, as models often do), or garbage (`malformed`).
- self_improve: the parent agent edits its own prompts.py with its bash tool (`good`), changes
  nothing (`noop`), breaks its own code (`break`), or gets an API error and exits (`crash`).
"""

from __future__ import annotations

import json
from pathlib import Path

PLAN = {
    "log_summary": "The agent stopped without writing any code.",
    "root_cause": "Its prompt does not insist on running the tests before stopping.",
    "improvement": "Tell the agent to run the tests before it stops.",
    "implementation": "Add a sentence to SYSTEM in prompts.py.",
    "problem_statement": "Change the system prompt so the agent always runs the tests before it stops.",
    "title": "Run the tests before stopping",
}
SELF_IMPROVE_COMMANDS = {
    "good": "printf '\\n# lesson: run the tests before you stop (%s)\\n' \"$(date +%s%N)\" >> prompts.py",
    "break": "printf '\\ndef broken(:\\n' >> prompts.py",
}


def write_scripts(tmp: Path, polyglot: Path, *, diagnose: str = "ok", self_improve: str = "good") -> dict[str, str]:
    """Write the three scripts under tmp; returns {role: model name}."""
    tmp.mkdir(parents=True, exist_ok=True)
    reference = (polyglot / "python" / "exercises" / "practice" / "transpose" / ".meta" / "example.py").read_text()
    downstream = {
        "rules": [{"match": "Given an input text output it transposed",
                   "content": "I will write the solution.",
                   "tool_calls": [{"name": "editor", "arguments": {
                       "command": "create", "path": "transpose.py", "file_text": reference}}]}],
        "responses": [{"content": "Done."}],
    }
    answer = "```json\n" + json.dumps(PLAN, indent=2) + "\n```" if diagnose == "ok" else "The agent should try harder."
    diag = {"responses": [{"content": answer, "usage": {"prompt_tokens": 3000, "completion_tokens": 200},
                           "repeat": 1 if diagnose == "ok" else 2}],  # a malformed answer is repeated on the retry
            "price": {"input": 1.0, "output": 2.0}}
    if self_improve == "noop":
        si = {"responses": [{"content": "Nothing to change."}]}
    elif self_improve == "crash":  # a request the model API rejects: the agent stops with an LLM error
        si = {"responses": [{"fault": 400, "message": "context length exceeded"}]}
    else:
        si = {
            "rules": [
                {
                    "match": "Improve this coding agent",
                    "content": "Editing my prompt.",
                    "tool_calls": [{"name": "bash", "arguments": {"command": SELF_IMPROVE_COMMANDS[self_improve]}}],
                }
            ],
            "responses": [{"content": "Done."}],
        }
    models = {}
    for role, script in (("downstream", downstream), ("diagnose", diag), ("self_improve", si)):
        path = tmp / f"{role}.json"
        path.write_text(json.dumps(script))
        models[role] = f"scripted:{path}"
    return models
