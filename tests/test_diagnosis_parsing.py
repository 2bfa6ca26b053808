"""parse_diagnosis on answers shaped the way real models send them, before they count as failed."""

from __future__ import annotations

import json

import pytest

from hgm.expand import parse_diagnosis

PLAN = {"log_summary": "it never ran the tests", "root_cause": "no test step", "improvement": "run tests",
        "implementation": "edit prompts.py", "problem_statement": "Make the agent run the tests.", "title": "run tests"}


@pytest.mark.parametrize("text", [
    "```JSON\n" + json.dumps(PLAN) + "\n```",  # fence label in capitals
    "```\n" + json.dumps(PLAN, indent=4) + "\n```\nLet me know if you need more.",  # unlabelled fence, prose after
    json.dumps(PLAN) + "\n\nExplanation: the {agent} should test. {\"not\": \"a plan\"}",  # trailing prose with braces
    json.dumps({**PLAN, "confidence": 0.8, "risks": ["flaky tests"]}),  # extra keys
    json.dumps({"diagnosis": PLAN}),  # wrapped in one outer object
    json.dumps(PLAN, indent=2).replace('"\n}', '",\n}'),  # trailing comma
    'First an example: {"a": 1}. The plan: ' + json.dumps(PLAN),  # a non-plan object before the plan
])
def test_plans_as_models_send_them(text: str) -> None:
    assert parse_diagnosis(text) == PLAN


def test_keys_in_other_case_and_spelling() -> None:
    answer = {"Log Summary": PLAN["log_summary"], "ROOT_CAUSE": PLAN["root_cause"], "Improvement": PLAN["improvement"],
              "implementation": PLAN["implementation"], "problemStatement": PLAN["problem_statement"],
              "Title": PLAN["title"]}
    assert parse_diagnosis(json.dumps(answer)) == PLAN
    assert parse_diagnosis(json.dumps({"problem-statement": "Do X."}))["problem_statement"] == "Do X."


def test_missing_title_and_statement_are_made_from_what_is_there() -> None:
    plan = parse_diagnosis(
        json.dumps({"improvement": "Retry failed commands\nonce", "implementation": "in tools/bash.py"})
    )
    assert plan["title"] == "Retry failed commands"
    assert plan["problem_statement"] == "Retry failed commands\nonce\n\nin tools/bash.py"
    assert plan["log_summary"] == "(not given)"


def test_lists_and_objects_as_values_become_text() -> None:
    plan = parse_diagnosis(json.dumps({**PLAN, "implementation": ["edit prompts.py", "add a test"],
                                       "root_cause": {"where": "prompts.py", "why": "no test step"}}))
    assert plan["implementation"] == "edit prompts.py\nadd a test"
    assert plan["root_cause"] == "where: prompts.py\nwhy: no test step"


@pytest.mark.parametrize(("text", "error"), [
    ("The agent should run its tests.", "no JSON object"),
    (json.dumps({"root_cause": "unclear", "confidence": 0.2}), "no problem_statement"),
    ('{"problem_statement": "x" "title": "y"}', "no JSON object"),
])
def test_what_is_not_a_plan_still_fails_with_the_reason(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_diagnosis(text)
