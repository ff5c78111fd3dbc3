"""Re-derive every document of a dataset folder from its own JSON files and token strings, and check the functions
and the split against docs/reference.md ("Generating data").

Deliberately shares no code with `synthetic/`: it reads vocab.json, functions.json, train_compositions.json
and meta.json, parses the task tokens of each prompt and recomputes the outputs with plain Python.
"""

import json
import math
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import numpy as np

MISS_PROBABILITY = 1e-6  # a corpus must hold every composition of its set when missing one is this unlikely


def apply(entry: dict, x: list[int]) -> list[int]:
    if entry["kind"] == "identity":
        return list(x)
    if entry["kind"] == "bijection":
        return [entry["table"][t] for t in x]
    assert entry["kind"] == "permutation", entry
    return [x[j] for j in entry["table"]]


def outputs(levels: list, comp: Sequence[Sequence[int]], x: Sequence[int]) -> list[list[int]]:
    """y_1..y_L: the stored functions (functions.json's "levels") of comp's slots, each (level, function),
    applied slot by slot to the input x."""
    ys, y = [], list(x)
    for level, fn in comp:
        y = apply(levels[level][fn], y)
        ys.append(y)
    return ys


def after_prompt(levels: list, comp: Sequence[Sequence[int]], x: Sequence[int], direct: bool, sep: object) -> list:
    """What a document holds after its prompt: y_L alone when direct, else y_1 sep y_2 sep ... sep y_L."""
    ys = outputs(levels, comp, x)
    return ys[-1] if direct else sum((y + [sep] for y in ys), [])[:-1]


def check_functions(levels: list, cfg: dict) -> None:
    """Level d holds the identity, then N drawn functions: permutations of positions exactly on permute_levels
    (null: [0]) when function.permute is on, token bijections elsewhere; none is the identity; with
    function.repeat, every level of a kind holds the same N functions."""
    fn = cfg["function"]
    permuting = set([0] if fn["permute_levels"] is None else fn["permute_levels"]) if fn["permute"] else set()
    for d, level in enumerate(levels):
        kind = "permutation" if d in permuting else "bijection"
        size = cfg["seq_len"] if kind == "permutation" else cfg["n_alphabets"]
        assert level[0] == {"kind": "identity"} and [e["kind"] for e in level[1:]] == [kind] * fn["n_functions"], d
        for e in level[1:]:
            assert sorted(e["table"]) == list(range(size)) and e["table"] != list(range(size)), (d, e)
    if fn["repeat"]:
        for d, level in enumerate(levels):
            first = min(k for k in range(len(levels)) if (k in permuting) == (d in permuting))
            assert level == levels[first], (d, first)


def check_split(comps: list[tuple], cfg: dict) -> None:
    """The training compositions are the ones the strategy names, in the counts the config asks for."""
    L, N = cfg["function"]["depth"], cfg["function"]["n_functions"]
    split = cfg["function"]["split"]
    n = split["n_compositions"]
    identity = tuple((k, 0) for k in range(L))
    base = {identity} | {tuple((k, i if k == slot else 0) for k in range(L)) for slot in range(L)
                         for i in range(1, N + 1)}
    assert len(set(comps)) == len(comps), "a training composition twice"
    assert all(len(c) == L and all(0 <= d < L and 0 <= i <= N and (i > 0 or d == k) for k, (d, i) in enumerate(c))
               for c in comps), "a slot outside the task (an identity is always written (k, 0))"
    in_order = [c for c in comps if all(d == k for k, (d, _) in enumerate(c))]
    displaced = [c for c in comps if all(d != k and i > 0 for k, (d, i) in enumerate(c))]
    others = [c for c in in_order if c not in base]
    strategy = split["strategy"]
    if strategy == "random":
        assert len(in_order) == len(comps) == n
    elif strategy == "random_biased":
        assert len(in_order) == len(comps) == n
        assert all(sum(i == 0 for _, i in c) == split["n_identity"] for c in comps)
    elif strategy == "base":
        assert base <= set(comps) and len(others) == n and len(comps) == len(base) + n
    else:
        head = {"random_combo": {identity}, "base_combo": base, "randombase_combo": base}[strategy]
        extra = split["n_compositions_inorder"] if strategy == "randombase_combo" else 0
        assert head <= set(comps) and len(displaced) == n and len(others) == extra
        assert len(comps) == len(head) + extra + n


def must_cover(n_documents: int, n_compositions: int) -> bool:
    """Whether n uniform draws from n_compositions miss one with probability below MISS_PROBABILITY (union bound)."""
    return n_compositions * math.exp(-n_documents / n_compositions) < MISS_PROBABILITY


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
    assert len(levels) == L and all(len(level) == N + 1 for level in levels)
    check_functions(levels, cfg)
    check_split([tuple(map(tuple, c)) for c in json.loads((folder / "train_compositions.json").read_text())], cfg)
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
            assert cfg["with_replacement"] or len(set(y)) == m, "an input repeats a token"
            expected = [t if t == " " else f"X{t}" for t in after_prompt(levels, comp, y, cfg["direct"], " ")]
            assert text[meta["prompt_len"] :] == expected, (corpus, text)
    inorder = {tuple((k, i) for k, i in enumerate(fns)) for fns in product(range(N + 1), repeat=L)}
    assert seen["train"] <= train_comps and seen["eval_train"] <= train_comps and seen["eval_all"] <= inorder
    for corpus, pool in (("train", train_comps), ("eval_train", train_comps), ("eval_all", inorder)):
        if must_cover(len(np.load(folder / f"{corpus}.npy", mmap_mode="r")), len(pool)):
            assert seen[corpus] == pool, f"{corpus} misses {len(pool - seen[corpus])} of its compositions"
    return seen
