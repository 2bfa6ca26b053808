"""The harness's own prompts (self-modification), in one place.

In the spirit of DGM/HGM's self-improve step: a diagnosis model reads how an agent failed one
benchmark task, together with the agent's code and what its ancestors already tried, and
proposes ONE general improvement to the agent as a JSON plan; the plan becomes the problem
statement the agent then solves on its own source code. The wording here is hgm's own; what the
benchmark's tasks are (`{benchmark}`) comes from the benchmark (`hgm.benchmarks.describe`).
"""

DIAGNOSE_SYSTEM = """You are a senior engineer who improves autonomous coding agents.
You study how an agent failed a task and propose one concrete, general change to the agent's
own code (its prompts, tools, control loop, or how it checks its work) that would make it solve
more tasks of this kind. You answer with a single JSON object and nothing else."""

DIAGNOSE_USER = """# The coding agent's source code
{agent_code}

# The benchmark task it was given ({task_id})
The agent's tasks are {benchmark}.
<problem_statement>
{task_statement}
</problem_statement>

# What the agent did on that task (its chat log, possibly shortened)
<agent_log>
{chat_log}
</agent_log>

# Result of the hidden tests after the agent stopped ({task_status})
<test_output>
{test_output}
</test_output>

# Earlier changes along this agent's lineage (root first) and how each version scored
{lineage}

# Your job
Work out why the agent failed, then propose ONE improvement to the agent's code that would fix
this kind of failure in general, not only for this task (never hard-code a task's answer). Do not
repeat a change the lineage already made unless you say why it fell short. Reply with only this
JSON object:
{{
  "log_summary": "what the agent did and where it went wrong, in a few sentences",
  "root_cause": "the weakness of the agent's code behind the failure",
  "improvement": "the one general change to make to the agent",
  "implementation": "which files and functions to change, and how",
  "problem_statement": "a self-contained task description for a developer who will make the change to the agent's repository",
  "title": "a short commit title for the change (under 70 characters)"
}}"""

DIAGNOSE_RETRY = """Your answer was not the JSON object I asked for ({error}). Reply again with only the JSON
object, with the keys log_summary, root_cause, improvement, implementation, problem_statement, title."""

SELF_IMPROVE_STATEMENT = """# Improve this coding agent

This repository is the source code of a coding agent: `coding_agent.py` runs an LLM with the tools
in `tools/` in a loop to solve programming tasks in a git repository. Its tasks are {benchmark}.

While solving the task `{task_id}`, the agent failed. Analysis of its run:
{log_summary}

Root cause: {root_cause}

## Your task
{problem_statement}

Suggested implementation: {implementation}

## Rules
- Make the change in this repository's files; the change must be general, never specific to one task.
- Keep `python coding_agent.py --help` and its command-line flags working, keep the tool contract
  (each tools/<name>.py has tool_info() and tool_function(**kwargs)), and keep the agent's tests
  passing (`python -m pytest -q tests`); add a test for what you change when you can.
- There is no network. Do not commit; leave your changes in the working tree.
"""

DIAGNOSE_HINTS = """

# Hints from the researcher who runs this search (take them into account)
{hints}"""

REQUESTS = """
## Asking for what the sandbox does not give you
If the change needs something you do not have here - a Python package, a data file, a program, or
more time - write a JSON list of requests to `{requests_file}` (also in $HGM_REQUESTS_FILE), e.g.
`[{{"kind": "package", "what": "numpy", "why": "..."}}]` (kind: package, file, tool or time). A person
reads them after this rewrite and may grant them for later rewrites; nothing is installed now.
{answers}"""

COMMIT_MESSAGE = """{title}

Why: the parent (node {parent_id}) failed {task_id} ({task_status}).
Root cause: {root_cause}
Change: {improvement}
"""


# -- targets (hgm run --target DIR) with a fixed rewriter agent (DARWIN's setting) -------------

TARGET_DIAGNOSE_SYSTEM = """You are a senior engineer who improves programs against a measurable objective.
You study how a program did on one evaluation case (its own output and the scorer's metrics) and
propose one concrete, general change to the program's code that would make it score better on
every case. You answer with a single JSON object and nothing else."""

TARGET_DIAGNOSE_USER = """# The program's source code ({benchmark})
{agent_code}

# The evaluation case ({task_id})
{task_statement}

# What the program printed on that case (possibly shortened)
<program_output>
{chat_log}
</program_output>

# The scorer's result on that case ({task_status})
<scorer_result>
{test_output}
</scorer_result>

# Earlier changes along this program's lineage (root first) and how each version scored
{lineage}

# Your job
Work out what limits the program's score, then propose ONE improvement to its code that should
raise the score on every case, not only on this one (never special-case a case, and never try
to read the scorer's data: the program cannot see it). Do not repeat a change the lineage already
made unless you say why it fell short. Reply with only this JSON object:
{{
  "log_summary": "what the program did and how it scored, in a few sentences",
  "root_cause": "what in the code limits the score",
  "improvement": "the one general change to make",
  "implementation": "which files and functions to change, and how",
  "problem_statement": "a self-contained task description for a developer who will make the change",
  "title": "a short commit title for the change (under 70 characters)"
}}"""

TARGET_REWRITE_STATEMENT = """# Improve this program

This repository is {benchmark}. Each evaluation runs `{entry}` on one case and a
scorer you cannot see measures the result (higher is better).

On the case `{task_id}`, analysis of its run:
{log_summary}

Root cause: {root_cause}

## Your task
{problem_statement}

Suggested implementation: {implementation}

## Memory
`{memory_file}` (JSON) lists the earlier changes along this program's lineage, the reason given for
each and the score change each brought; read it before you start and do not repeat what did not help.

## Rules
- Make the change in this repository's files; keep `{entry}` working and writing its outputs
  ({outputs}) under $HGM_OUTPUT_DIR.
- There is no network. Do not commit; leave your changes in the working tree.
"""
