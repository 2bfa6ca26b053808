"""The QA example's scorer (trusted): token F1 of $HGM_OUTPUTS_DIR/answer.txt against the case's
answer in $HGM_HIDDEN_DIR/answers.jsonl, printed as one JSON line {"score": F1, ...}."""

import json
import os
import re
from collections import Counter
from pathlib import Path


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def f1(predicted: str, expected: str) -> float:
    p, e = tokens(predicted), tokens(expected)
    common = sum((Counter(p) & Counter(e)).values())
    if not p or not e or not common:
        return 0.0
    precision, recall = common / len(p), common / len(e)
    return 2 * precision * recall / (precision + recall)


def main() -> None:
    case_id = os.environ["HGM_CASE_ID"]
    lines = (Path(os.environ["HGM_HIDDEN_DIR"]) / "answers.jsonl").read_text().splitlines()
    answers = [json.loads(line) for line in lines if line.strip()]
    expected = next(a["answer"] for a in answers if a["id"] == case_id)
    try:
        predicted = (Path(os.environ["HGM_OUTPUTS_DIR"]) / "answer.txt").read_text(errors="replace")[:10_000]
    except OSError:
        predicted = ""
    print(json.dumps({"score": f1(predicted, expected), "answer_chars": len(predicted)}))


if __name__ == "__main__":
    main()
