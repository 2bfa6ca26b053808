"""A small question-answering pipeline: retrieve the sentence of knowledge.txt that shares the
most words with the question, then answer with it. Writes answer.txt to $HGM_OUTPUT_DIR."""

import json
import os
import re
from pathlib import Path

DROP_QUESTION_WORDS = False
"""Answer with only the words of the sentence that the question does not already contain."""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def answer(question: str, sentences: list[str]) -> str:
    q = set(words(question))
    best = max(sentences, key=lambda s: len(q & set(words(s))))
    if DROP_QUESTION_WORDS:
        return " ".join(w for w in best.rstrip(".").split() if w.lower() not in q)
    return best


def main() -> None:
    case = json.loads(os.environ["HGM_CASE"])
    sentences = [line for line in Path("knowledge.txt").read_text().splitlines() if line.strip()]
    text = answer(case["question"], sentences)
    (Path(os.environ["HGM_OUTPUT_DIR"]) / "answer.txt").write_text(text + "\n")
    print(f"{case['question']} -> {text}")


if __name__ == "__main__":
    main()
