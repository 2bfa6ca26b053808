"""A tiny character-level language model in numpy: an MLP over the last CONTEXT characters.

Trains on data/train.txt for STEPS steps of SGD and writes model.npz to $HGM_OUTPUT_DIR: vocab,
context, and the weights embed (V x E), w1 (CONTEXT*E x H), b1, w2 (H x V), b2. The scorer reads
only that file and measures the model on text it never sees.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

CONTEXT = 3
EMBED = 8
HIDDEN = 32
LR = 0.3
STEPS = 200
BATCH = 64


def main() -> None:
    case = json.loads(os.environ.get("HGM_CASE", "{}"))
    rng = np.random.default_rng(int(case.get("seed", 0)))
    text = Path("data/train.txt").read_text()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in text])
    v = len(vocab)
    embed = rng.normal(0, 0.1, (v, EMBED))
    w1 = rng.normal(0, 1 / np.sqrt(CONTEXT * EMBED), (CONTEXT * EMBED, HIDDEN))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, v))
    b2 = np.zeros(v)
    start = time.monotonic()
    loss = float("nan")
    for _ in range(STEPS):
        pos = rng.integers(CONTEXT, len(ids), BATCH)
        ctx = np.stack([ids[pos - CONTEXT + k] for k in range(CONTEXT)], axis=1)
        x = embed[ctx].reshape(BATCH, -1)
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-np.log(p[np.arange(BATCH), ids[pos]]).mean())
        d = p
        d[np.arange(BATCH), ids[pos]] -= 1
        d /= BATCH
        gw2, gb2 = h.T @ d, d.sum(0)
        dh = (d @ w2.T) * (1 - h ** 2)
        gw1, gb1 = x.T @ dh, dh.sum(0)
        dx = (dh @ w1.T).reshape(BATCH, CONTEXT, EMBED)
        np.add.at(embed, ctx, -LR * dx)
        w1 -= LR * gw1
        b1 -= LR * gb1
        w2 -= LR * gw2
        b2 -= LR * gb2
    seconds = time.monotonic() - start
    out = Path(os.environ["HGM_OUTPUT_DIR"])
    np.savez(out / "model.npz", vocab=np.array(vocab), context=np.array(CONTEXT), embed=embed, w1=w1, b1=b1, w2=w2,
             b2=b2)
    print(json.dumps({"train_loss": loss, "steps": STEPS, "train_tokens_per_s": STEPS * BATCH / seconds}))


if __name__ == "__main__":
    main()
