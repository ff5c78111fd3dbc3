"""Re-derive every document of a dataset folder from its own JSON files and token strings.

Deliberately shares no code with `synthetic/`: it reads vocab.json, functions.json, train_compositions.json
and meta.json, parses the task tokens of each prompt and recomputes the outputs with plain Python.
"""

import json
from itertools import product
from pathlib import Path

import numpy as np


def apply(entry: dict, x: list[int]) -> list[int]:
    if entry["kind"] == "identity":
        return list(x)
    if entry["kind"] == "bijection":
        return [entry["table"][t] for t in x]
    assert entry["kind"] == "permutation", entry
    return [x[j] for j in entry["table"]]


def check_dataset(folder: Path) -> dict[str, set]:
    """Assert every document is right; return the set of compositions seen in each corpus."""
    vocab = json.loads((folder / "vocab.json").read_text())
    levels = json.loads((folder / "functions.json").read_text())["levels"]
    meta = json.loads((folder / "meta.json").read_text())
    train_comps = {tuple(map(tuple, c)) for c in json.loads((folder / "train_compositions.json").read_text())}
    cfg = meta["config"]
    m, L, N = cfg["seq_len"], cfg["function"]["depth"], cfg["function"]["n_functions"]
    assert len(vocab) == meta["vocab_size"] == cfg["n_alphabets"] + L * (N + 1) + 3
    assert vocab[-3:] == [" ", "<PAD>", "S"]
    assert len(levels) == L and all(len(level) == N + 1 and level[0] == {"kind": "identity"} for level in levels)
    seen = {}
    for corpus in ("train", "eval_train", "eval_all"):
        docs = np.load(folder / f"{corpus}.npy")
        assert docs.dtype == (np.uint8 if len(vocab) <= 256 else np.uint16)
        assert docs.shape[1] == meta["doc_len"]
        seen[corpus] = set()
        for doc in docs.tolist():
            text = [vocab[t] for t in doc]
            assert "<PAD>" not in text
            assert text[0] == "S" and text[L + 1] == " " and text[L + 2 + m] == " "
            comp = tuple((int(t[1:].split("_")[0]), int(t.split("_")[1])) for t in text[1 : L + 1])
            assert all(t.startswith("T") for t in text[1 : L + 1])
            seen[corpus].add(comp)
            y = [int(t[1:]) for t in text[L + 2 : L + 2 + m]]
            outputs = []
            for level, fn in comp:
                y = apply(levels[level][fn], y)
                outputs.append(y)
            if cfg["direct"]:
                expected = [f"X{t}" for t in outputs[-1]]
            else:
                expected = sum(([f"X{t}" for t in out] + [" "] for out in outputs), [])[:-1]
            assert text[meta["prompt_len"] :] == expected, (corpus, text)
    assert seen["train"] <= train_comps and seen["eval_train"] <= train_comps
    inorder = {tuple((k, i) for k, i in enumerate(fns)) for fns in product(range(N + 1), repeat=L)}
    assert seen["eval_all"] <= inorder
    return seen
