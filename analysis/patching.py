"""Activation patching (step-by-step documents): which sublayer carries the choice of the function, causally.

For an output step k (0-based; it writes y_{k+1} by applying slot k's function to y_k) a **clean** document and a
**corrupted** one differ in one token only: slot k's task token. The corrupted slot holds another function of the
same level:
  identity slot  a non-identity function, uniform over the level's N
  function slot  another non-identity function, uniform over the level's other N-1 (never the identity: the
                 contrast is then "which function" alone, not "a function or a copy"; needs N >= 2)
Every other token is the clean document's: y_1..y_k do not depend on slot k, and y_{k+1} is teacher-forced, so the
positions writing y_{k+1} see the clean tokens written so far. Clean compositions are in-order (SPEC §3), every
other slot uniform over its level's N+1 functions, slot k drawn uniformly among the identity (identity steps) or
the N functions (function steps); the same number of documents for every (step, slot kind).

Metric, at the m positions predicting y_{k+1}: the logit of the clean answer's token minus the logit of the
corrupted answer's token (the token the corrupted composition would write there), averaged over the m positions.
A logit difference rather than a log-probability: it is linear in the last residual stream (up to the final
LayerNorm's scale) and does not saturate, whereas a confident model's log-probability sits near 0 once the clean
token is the argmax, so that half a restored logit margin would already count as nearly all of it.

A **site** is one layer's attention output (`blocks.{l}.hook_attn_out`), one head's output before the output
projection (`blocks.{l}.attn.hook_z`, that head's slice only) or one MLP output (`blocks.{l}.hook_mlp_out`). It is
patched from the clean run into the corrupted run, at every position (`positions` "all") or only at the m
positions predicting y_{k+1} ("step"), in a full teacher-forced forward pass. Fraction restored:

    sum over documents of (patched - corrupted)  /  sum over documents of (clean - corrupted)

(numerator and denominator aggregated over documents before dividing, so documents with a near-zero gap weigh
little instead of blowing up; nan when the summed gap is exactly 0). 1 means the site alone carries what the clean
task token changes; 0 that it carries nothing of it (a site whose activation does not differ gives exactly 0).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from analysis.layout import step_query_positions, task_position
from analysis.plots import new_figure, save_png
from net.model import HookFn
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec

SLOT_KINDS = ("identity", "function")
POSITIONS = ("all", "step")


@dataclass(frozen=True)
class Site:
    name: str  # hook point
    layer: int
    component: str  # "attn" | "head" | "mlp"
    head: int | None = None  # for "head": the slice of hook_z patched

    @property
    def label(self) -> str:
        return f"L{self.layer} H{self.head}" if self.component == "head" else f"L{self.layer} {self.component}"


def patch_sites(n_layer: int, n_head: int, mlp: bool) -> list[Site]:
    """Per layer: its attention output, each of its heads, its MLP output (unless the model has none)."""
    sites = []
    for layer in range(n_layer):
        sites.append(Site(f"blocks.{layer}.hook_attn_out", layer, "attn"))
        sites += [Site(f"blocks.{layer}.attn.hook_z", layer, "head", head) for head in range(n_head)]
        if mlp:
            sites.append(Site(f"blocks.{layer}.hook_mlp_out", layer, "mlp"))
    return sites


# ---- documents ----


def sample_compositions(rng: np.random.Generator, spec: TaskSpec, k: int, kind: str, n: int) -> np.ndarray:
    """n in-order compositions (n, L, 2): slot k holds the identity or a function (`kind`), other slots anything."""
    L, N = spec.depth, spec.n_functions
    fns = rng.integers(0, N + 1, size=(n, L))
    fns[:, k] = 0 if kind == "identity" else rng.integers(1, N + 1, size=n)
    return np.stack([np.broadcast_to(np.arange(L), (n, L)), fns], axis=-1)


def corrupt_slot(rng: np.random.Generator, comps: np.ndarray, k: int, n_functions: int) -> np.ndarray:
    """comps (n, L, 2) with slot k's function replaced (module docstring): identity -> uniform over 1..N,
    function i -> uniform over 1..N without i."""
    fn = comps[:, k, 1]
    if n_functions < 2 and (fn > 0).any():
        raise ValueError(f"a function slot needs another function of its level: n_functions={n_functions} < 2")
    draw = rng.integers(1, n_functions + (fn == 0))  # identity rows: 1..N; function rows: 1..N-1, then skip fn
    out = comps.copy()
    out[:, k, 1] = np.where((fn > 0) & (draw >= fn), draw + 1, draw)
    return out


def unpatchable(spec: TaskSpec) -> str | None:
    """Why patching cannot run on spec's documents, or None: direct documents have no y_{k+1}, and with one
    function per level a function slot has no other function to be swapped for."""
    if spec.direct:
        return "direct documents have no intermediate outputs (y_{k+1}) to patch"
    if spec.n_functions < 2:
        return f"n_functions={spec.n_functions}: a function slot has no other function of its level to swap in"
    return None


@dataclass(frozen=True)
class PatchingDocs:
    step: int  # k, 0-based: the documents differ in slot k, the answer is y_{k+1}
    clean: torch.Tensor  # (n, doc_len)
    corrupted: torch.Tensor  # (n, doc_len): clean, but for slot k's task token
    clean_answer: torch.Tensor  # (n, m) y_{k+1} of the clean documents
    corrupted_answer: torch.Tensor  # (n, m) y_{k+1} of the corrupted composition


def patching_documents(rng: np.random.Generator, spec: TaskSpec, functions: FunctionTables, k: int, kind: str,
                       n: int, with_replacement: bool = True) -> PatchingDocs:
    """n clean/corrupted pairs for step k whose clean slot k holds `kind`."""
    reason = unpatchable(spec)
    if reason:
        raise ValueError(f"activation patching cannot run: {reason}")
    if kind not in SLOT_KINDS:
        raise ValueError(f"slot kind {kind!r} is not one of {SLOT_KINDS}")
    comps = sample_compositions(rng, spec, k, kind, n)
    corrupted_comps = corrupt_slot(rng, comps, k, spec.n_functions)
    x = sample_inputs(rng, n, spec, with_replacement)
    clean = make_documents(spec, functions, comps, x)
    answer = slice(spec.step_starts[k], spec.step_starts[k] + spec.seq_len)
    corrupted_answer = make_documents(spec, functions, corrupted_comps, x)[:, answer]
    corrupted = clean.copy()
    corrupted[:, task_position(k)] = spec.task_token(k, corrupted_comps[:, k, 1])
    return PatchingDocs(step=k, clean=torch.from_numpy(clean), corrupted=torch.from_numpy(corrupted),
                        clean_answer=torch.from_numpy(clean[:, answer]),
                        corrupted_answer=torch.from_numpy(corrupted_answer))


# ---- patching ----


def answer_logit_diff(logits: torch.Tensor, queries: torch.Tensor, clean_answer: torch.Tensor,
                      corrupted_answer: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), queries (m,), answers (B, m) -> (B,): mean over the m positions of
    logit[clean answer token] - logit[corrupted answer token]."""
    at = logits[:, queries]  # (B, m, V)
    diff = at.gather(-1, clean_answer[..., None]) - at.gather(-1, corrupted_answer[..., None])  # (B, m, 1)
    return diff[..., 0].double().mean(dim=-1)


def patch_hook(clean: torch.Tensor, positions: torch.Tensor | None, head: int | None) -> HookFn:
    """Replace the activation (B, T, ...) by the clean run's, at every position (None) or at `positions`; for a
    hook_z activation (B, T, nh, hs) with `head`, only that head's slice."""
    at = (slice(None), slice(None) if positions is None else positions, *([] if head is None else [head]))

    def patch(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[at] = clean[at]
        return x

    return patch


@dataclass(frozen=True)
class PatchEffects:
    """The metric per document: clean, corrupted, and corrupted with one site patched."""

    clean: np.ndarray  # (n,)
    corrupted: np.ndarray  # (n,)
    patched: dict[tuple[Site, str], np.ndarray]  # (site, positions) -> (n,)


@torch.no_grad()
def patch_effects(model: nn.Module, docs: PatchingDocs, sites: list[Site], spec: TaskSpec,
                  batch_size: int) -> PatchEffects:
    """Clean, corrupted and every (site, positions) patched run of the documents, teacher-forced."""
    device = next(model.parameters()).device
    queries = torch.from_numpy(step_query_positions(spec)[docs.step]).to(device)  # (m,)
    names = sorted({site.name for site in sites})
    clean, corrupted = [], []
    patched: dict[tuple[Site, str], list[torch.Tensor]] = {(s, p): [] for s in sites for p in POSITIONS}
    for start in range(0, len(docs.clean), batch_size):
        rows = slice(start, start + batch_size)
        clean_idx, corrupted_idx = docs.clean[rows, :-1].to(device), docs.corrupted[rows, :-1].to(device)
        answers = docs.clean_answer[rows].to(device), docs.corrupted_answer[rows].to(device)
        logits, cache = model.run_with_cache(clean_idx, names=names)
        clean.append(answer_logit_diff(logits, queries, *answers))
        corrupted.append(answer_logit_diff(model(corrupted_idx), queries, *answers))
        for site, positions in patched:
            hook = patch_hook(cache[site.name], None if positions == "all" else queries, site.head)
            with model.hooks({site.name: hook}):
                patched[(site, positions)].append(answer_logit_diff(model(corrupted_idx), queries, *answers))
    return PatchEffects(torch.cat(clean).cpu().numpy(), torch.cat(corrupted).cpu().numpy(),
                        {key: torch.cat(v).cpu().numpy() for key, v in patched.items()})


def measure_patching(model: nn.Module, spec: TaskSpec, functions: FunctionTables, n: int, seed: int,
                     batch_size: int, with_replacement: bool = True) -> dict[tuple[int, str], PatchEffects]:
    """n clean/corrupted pairs for every (step k, slot kind), every site of the model patched: (k, kind) -> effects."""
    rng = np.random.default_rng(seed)
    sites = patch_sites(model.config.n_layer, model.config.n_head, model.config.mlp)
    return {(k, kind): patch_effects(model, patching_documents(rng, spec, functions, k, kind, n, with_replacement),
                                     sites, spec, batch_size)
            for k in range(spec.n_steps) for kind in SLOT_KINDS}


def patching_bytes(spec: TaskSpec, model_args: dict, n: int, batch_size: int) -> int:
    """Peak memory of measure_patching with n pairs per (step, slot kind): one (step, kind)'s documents (clean,
    corrupted, their answers and make_documents' temporaries, int64), every document's metric for every (site,
    positions) of every (step, kind) (float64, kept for the rows), and one batch's cached sites (three per layer)
    with a forward pass's activations and logits (float32)."""
    layers, width = model_args["n_layer"], model_args["n_embd"]
    sites = len(patch_sites(layers, model_args["n_head"], model_args.get("mlp", True)))
    documents = 4 * n * spec.doc_len * 8
    effects = spec.n_steps * len(SLOT_KINDS) * n * (2 + len(POSITIONS) * sites) * 8
    per_sequence = 4 * spec.doc_len * (15 * layers * width + 2 * model_args.get("vocab_size", spec.vocab_size))
    return documents + effects + min(batch_size, n) * per_sequence


# ---- rows, summary, figure ----


def restored_fraction(clean: np.ndarray, corrupted: np.ndarray, patched: np.ndarray) -> float:
    """sum(patched - corrupted) / sum(clean - corrupted) over documents; nan when the summed gap is 0."""
    gap = float((clean - corrupted).sum())
    return float((patched - corrupted).sum()) / gap if gap != 0 else math.nan


PATCHING_HEADER = ["site", "label", "layer", "head", "component", "positions", "step", "slot_kind", "restored",
                   "clean", "corrupted", "n_documents"]


def patching_rows(effects: dict[tuple[int, str], PatchEffects], digits: int = 6) -> list[list]:
    """Per (site, positions): a row per step 1..L and "all", each for slot kind "identity", "function" and "all"
    (documents pooled; every (step, kind) holds as many). clean / corrupted: mean metric (logit difference)."""
    n_steps = 1 + max(k for k, _ in effects)
    first = next(iter(effects.values()))
    rows = []
    for site, positions in first.patched:
        for step in [*range(n_steps), "all"]:
            for kind in [*SLOT_KINDS, "all"]:
                chosen = [e for (k, kd), e in effects.items() if step in ("all", k) and kind in ("all", kd)]
                clean = np.concatenate([e.clean for e in chosen])
                corrupted = np.concatenate([e.corrupted for e in chosen])
                patched = np.concatenate([e.patched[(site, positions)] for e in chosen])
                rows.append([site.name, site.label, site.layer, "" if site.head is None else site.head,
                             site.component, positions, step if step == "all" else step + 1, kind,
                             round(restored_fraction(clean, corrupted, patched), digits),
                             round(float(clean.mean()), digits), round(float(corrupted.mean()), digits), len(clean)])
    return rows


def _records(rows: list) -> list[dict]:
    """Rows as dicts: lists from patching_rows, or dicts (of strings) from csv.DictReader."""
    return [r if isinstance(r, dict) else dict(zip(PATCHING_HEADER, r, strict=True)) for r in rows]


def _restored(records: list[dict], component: str, layer: int | None = None) -> list[float | None]:
    """The fraction restored by each `component` site (of `layer`), in row order; nan (no gap to restore) as None,
    so the numbers stay valid JSON."""
    values = [float(r["restored"]) for r in records if r["component"] == component and layer in (None, int(r["layer"]))]
    return [None if math.isnan(x) else x for x in values]


def patching_numbers(rows: list) -> dict:
    """The numbers the claims are judged on, JSON-ready, from the rows pooled over steps (step "all"): per slot kind,
    the gap (mean logit difference, clean minus corrupted), the documents, and per positions ("step", "all") the
    fraction restored by each layer's attention output and MLP output (lists by layer; no MLP: empty) and each
    head (a list per layer). None where nothing was there to restore. Pure: judges nothing."""
    records = [r for r in _records(rows) if str(r["step"]) == "all"]
    numbers: dict[str, dict] = {}
    for kind in SLOT_KINDS:
        of_kind = [r for r in records if r["slot_kind"] == kind]
        if not any(str(r["positions"]) == "step" for r in of_kind):
            raise ValueError(f"no {kind}-step rows patched at the step's positions (positions 'step', step 'all')")
        first = of_kind[0]
        entry = {"gap": round(float(first["clean"]) - float(first["corrupted"]), 6),  # equal in every row
                 "n_documents": int(first["n_documents"])}
        for positions in POSITIONS:
            at = [r for r in of_kind if str(r["positions"]) == positions]  # site order: by layer, heads in order
            layers = range(1 + max(int(r["layer"]) for r in at))
            entry[positions] = {"attn": _restored(at, "attn"), "mlp": _restored(at, "mlp"),
                                "head": [_restored(at, "head", layer) for layer in layers]}
        numbers[kind] = entry
    return numbers


def patching_bars(rows: list, path) -> None:
    """Fraction restored per site (steps pooled), function vs identity steps; one panel per `positions`."""
    records = [r for r in _records(rows) if str(r["step"]) == "all" and r["slot_kind"] in SLOT_KINDS]
    labels = list(dict.fromkeys(r["label"] for r in records))
    restored = {(r["label"], r["positions"], r["slot_kind"]): float(r["restored"]) for r in records}
    fig = new_figure(max(5.0, 0.7 * len(labels) + 2), 6.0)
    axes = fig.subplots(len(POSITIONS), 1, sharex=True)
    x = np.arange(len(labels))
    for ax, positions in zip(axes, POSITIONS, strict=True):
        for i, kind in enumerate(("function", "identity")):
            ax.bar(x - 0.2 + 0.4 * i, [restored.get((lab, positions, kind), np.nan) for lab in labels], 0.4,
                   label=f"{kind} steps")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(0.0, color="gray", linewidth=0.8)
        ax.set_ylabel("fraction restored")
        where = "every position" if positions == "all" else "the step's own positions"
        ax.set_title(f"Patched at {where}", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[-1].set_xticks(x, labels, rotation=45, ha="right")
    fig.suptitle("Clean answer restored by patching one site from the clean run (logit difference)", fontsize=10)
    save_png(fig, path)
