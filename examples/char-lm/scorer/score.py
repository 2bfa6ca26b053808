"""The char-LM example's scorer (trusted; it runs in a sandbox of its own).

Reads only $HGM_OUTPUTS_DIR/model.npz (never pickles) and $HGM_HIDDEN_DIR/valid.txt, and prints one
JSON line: val_loss (nats per character on the held-back text, a character the model's vocabulary
lacks costing ln 256), tokens_per_s (the model's own speed on that text, timed here), and
score = 0.9 * (1 - val_loss / ln V) + 0.1 * min(1, tokens_per_s / 1e6), clipped to [0, 1], where V is
the number of distinct characters of the held-back text. A model file that is malformed scores 0:
the target's outputs are untrusted, and only a fault of the scorer itself may crash it.
"""

import json
import math
import os
import time
from pathlib import Path

import numpy as np

UNKNOWN_COST = math.log(256)


def evaluate(model: Path, text: str) -> dict:
    z = np.load(model, allow_pickle=False)
    vocab = [str(c) for c in z["vocab"]]
    context = int(z["context"])
    embed, w1, b1, w2, b2 = (np.asarray(z[k], dtype=float) for k in ("embed", "w1", "b1", "w2", "b2"))
    v, e = embed.shape
    if len(vocab) != v or not 1 <= context <= 64 or w1.shape[0] != context * e or w2.shape != (w1.shape[1], v) \
            or b1.shape != (w1.shape[1],) or b2.shape != (v,):
        raise ValueError("the weights' shapes do not fit together")
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index.get(c, -1) for c in text])
    known = np.clip(ids, 0, None)
    padded = np.concatenate([np.zeros(context, dtype=int), known])
    ctx = np.stack([padded[k:k + len(ids)] for k in range(context)], axis=1)
    start = time.perf_counter()
    logits = np.tanh(embed[ctx].reshape(len(ids), -1) @ w1 + b1) @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    seconds = time.perf_counter() - start
    nll = np.where(ids >= 0, -logp[np.arange(len(ids)), known], UNKNOWN_COST)
    val_loss = float(nll.mean())
    if not math.isfinite(val_loss):
        raise ValueError("the model's loss is not finite")
    uniform = math.log(len(set(text)))
    tokens_per_s = len(ids) / max(seconds, 1e-9)
    score = 0.9 * (1 - val_loss / uniform) + 0.1 * min(1.0, tokens_per_s / 1e6)
    return {"score": min(1.0, max(0.0, score)), "val_loss": val_loss, "tokens_per_s": tokens_per_s,
            "train_seconds": float(os.environ.get("HGM_ENTRY_SECONDS", "nan"))}


def main() -> None:
    text = (Path(os.environ["HGM_HIDDEN_DIR"]) / "valid.txt").read_text()
    try:
        result = evaluate(Path(os.environ["HGM_OUTPUTS_DIR"]) / "model.npz", text)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
        result = {"score": 0.0, "error": f"unusable model.npz: {e}"[:300]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
