"""Writes the example's text: target/data/train.txt (the target sees it) and hidden/valid.txt
(held back: only the scorer sees it). Sentences from a small grammar, two seeds; run once, committed."""

import random
from pathlib import Path

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the small bird", "a farmer", "the river", "our teacher"]
VERBS = ["sees", "follows", "likes", "finds", "paints", "carries", "watches", "remembers"]
OBJECTS = ["the red ball", "a quiet house", "the green field", "a long road", "the bright moon", "an open door"]
ENDINGS = ["in the morning", "after the rain", "near the hill", "every day", "with great care", "before night"]


def text(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if rng.random() < 0.6:
            s += f" {rng.choice(ENDINGS)}"
        out.append(s + ".")
    return "\n".join(out) + "\n"


here = Path(__file__).parent
(here / "target" / "data" / "train.txt").write_text(text(1, 600))
(here / "hidden" / "valid.txt").write_text(text(2, 150))
