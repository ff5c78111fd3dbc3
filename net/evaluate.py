"""Autoregressive evaluation (SPEC.md §8): per-composition accuracies on fresh inputs, their aggregates, which
checkpoints to evaluate, and the two stages run by 03_evaluate_i.py and 03_evaluate_o.py.

Per composition, over `nsamples` fresh inputs, on the final output y_L (the last m tokens of a document):
  token_acc  generated token == true token, averaged over positions and samples (the paper's "accuracy")
  seq_acc    fraction of samples whose whole y_L is right
  tf_acc     token accuracy of the same positions predicted with the true document as context
  y{k}_acc   step-by-step only: token accuracy of the k-th output the model wrote (y_L's equals token_acc)
Chance is 1/A per token. Inputs come from the seed alone (never from the stored eval corpora), so every
checkpoint of a run is scored on the same inputs and a rerun gives the same numbers. Aggregates weigh every
composition the same; compositions of small reported groups may get more samples (`min_group_samples`).
"""

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from net import results
from net.checkpoint import list_checkpoints, load_checkpoint, load_model
from net.decode import generate_and_teacher_force
from net.device import autocast_context, resolve_device
from net.results import step_columns
from synthetic.compositions import (
    composition_keys,
    displacement_of,
    inorder_compositions,
    n_functions_of,
    outorder_compositions,
)
from synthetic.config import get_bool, get_int, get_path, get_tag
from synthetic.dataset import Dataset, load_dataset
from synthetic.documents import make_documents, sample_inputs
from synthetic.errors import ConfigError, PipelineError
from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec

INPUT_CHUNK = 1024  # compositions per input stream: inputs depend on the seed and the samples per composition only
INPUT_STREAM, COMPOSITION_STREAM = 0, 1  # independent random streams derived from the seed
DEFAULT_BATCH_SIZE = {"cpu": 256, "cuda": 16384}  # sequences per forward pass when batch_size=null


class EvaluationError(PipelineError):
    """Checkpoints that are missing, or that disagree with the dataset they are evaluated on."""


@dataclass(frozen=True)
class Failure:
    """One sample the model got wrong: the true document and the model's own."""

    composition: int  # row of the evaluated compositions
    expected: np.ndarray  # (doc_len,)
    generated: np.ndarray  # (doc_len,)


@dataclass(frozen=True)
class Scores:
    """Per-composition means over each composition's samples (fresh inputs)."""

    n_samples: np.ndarray  # (C,) samples of each composition
    token_acc: np.ndarray  # (C,)
    seq_acc: np.ndarray  # (C,)
    tf_acc: np.ndarray  # (C,)
    token_sq: np.ndarray  # (C,) mean of the squared per-sample token accuracy, for standard errors
    step_acc: np.ndarray  # (C, n_steps): each output written after the prompt (direct: y_L only)
    failures: list[Failure]


def input_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def samples_per_composition(groups: np.ndarray, nsamples: int, min_group_samples: int) -> np.ndarray:
    """`nsamples` for every composition, raised in small groups (groups (C,): a group label per composition) so
    that each group holds at least `min_group_samples` samples in all: (C,) int64."""
    _, index, sizes = np.unique(groups, axis=0, return_inverse=True, return_counts=True)
    per_group = np.maximum(nsamples, -(-min_group_samples // sizes))  # ceil division
    return per_group[index.reshape(-1)].astype(np.int64)


def input_batches(
    spec: TaskSpec, n_samples: np.ndarray, seed: int, batch_size: int, with_replacement: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(composition row (b,), input x (b, m)) batches: n_samples[c] fresh inputs for every composition c, in
    order. Each chunk of INPUT_CHUNK compositions has its own stream, so the batch size never changes the inputs."""
    for chunk, start in enumerate(range(0, len(n_samples), INPUT_CHUNK)):
        stop = min(start + INPUT_CHUNK, len(n_samples))
        rows = np.repeat(np.arange(start, stop), n_samples[start:stop])
        x = sample_inputs(input_rng(seed, INPUT_STREAM, chunk), len(rows), spec, with_replacement)
        for b in range(0, len(rows), batch_size):
            yield rows[b : b + batch_size], x[b : b + batch_size]


def per_sample_counts(spec: TaskSpec, docs: torch.Tensor, generated: torch.Tensor, tf: torch.Tensor) -> torch.Tensor:
    """docs, generated (B, T), tf (B, T-1) -> (4 + n_steps, B) int64 counts: tokens of y_L right, whole y_L right
    (0/1), tokens right under teacher forcing, the first count squared, then tokens right in each output."""
    m, out = spec.seq_len, spec.output_start
    right = generated[:, out:] == docs[:, out:]  # (B, m)
    token = right.sum(dim=1)
    tf_right = (tf[:, out - 1 :] == docs[:, out:]).sum(dim=1)
    steps = [(generated[:, s : s + m] == docs[:, s : s + m]).sum(dim=1) for s in spec.step_starts]
    return torch.stack([token, right.all(dim=1).long(), tf_right, token * token, *steps])


def spread(n: int, k: int) -> np.ndarray:
    """Up to k distinct indices of range(n), evenly spread, first and last included."""
    return np.unique(np.floor(np.linspace(0, n - 1, min(k, n)) + 0.5).astype(int)) if n and k else np.arange(0)


def evaluate_compositions(
    model: nn.Module,
    spec: TaskSpec,
    functions: FunctionTables,
    comps: np.ndarray,
    *,
    nsamples: int | np.ndarray,
    seed: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
    with_replacement: bool = True,
    n_failures: int = 0,
    progress=None,
) -> Scores:
    """Score `model` on every composition of comps (C, L, 2) with `nsamples` fresh inputs each (an int, or one
    count per composition from samples_per_composition).

    Documents are built in spec's format; batches mix compositions. `progress` (a tqdm bar) advances by the
    number of sequences scored. Up to `n_failures` wrong samples are kept, spread over the compositions.
    """
    C, m = len(comps), spec.seq_len
    n_samples = np.broadcast_to(np.asarray(nsamples, dtype=np.int64), (C,))
    sums = np.zeros((4 + spec.n_steps, C))  # exact: sums of integer counts
    candidates: list[Failure] = []
    model.eval()
    for rows, x in input_batches(spec, n_samples, seed, batch_size, with_replacement):
        true_docs = make_documents(spec, functions, comps[rows], x)  # (b, T)
        docs = torch.from_numpy(true_docs).to(device)
        with autocast_context(device, bf16):
            generated, tf = generate_and_teacher_force(model, docs, spec.prompt_len)
        counts = per_sample_counts(spec, docs, generated, tf).cpu().numpy()  # (4 + n_steps, b)
        for k, values in enumerate(counts):
            sums[k] += np.bincount(rows, weights=values, minlength=C)
        wrong = np.flatnonzero(counts[1] == 0)[spread(int((counts[1] == 0).sum()), n_failures)]
        candidates += [Failure(int(rows[i]), true_docs[i], generated[i].cpu().numpy()) for i in wrong]
        if progress is not None:
            progress.update(len(rows))
    sums /= n_samples
    return Scores(
        n_samples=n_samples.copy(), token_acc=sums[0] / m, seq_acc=sums[1], tf_acc=sums[2] / m,
        token_sq=sums[3] / (m * m), step_acc=sums[4:].T / m,
        failures=[candidates[i] for i in spread(len(candidates), n_failures)],
    )


def aggregate(spec: TaskSpec, scores: Scores, mask: np.ndarray) -> dict:
    """Mean accuracies over the compositions in mask (C,), each composition weighing the same, and the standard
    error of token_acc from the sampled inputs: sqrt(sum_c var_c / n_c) / C over the compositions c in mask."""
    n = int(mask.sum())
    out: dict = {"n_compositions": n, "n_samples": int(scores.n_samples[mask].sum())}
    names = ["token_acc", "seq_acc", "tf_acc", *step_columns(spec)]
    if n == 0:
        return {**out, **dict.fromkeys(names), "token_acc_se": None}
    token = scores.token_acc[mask]
    variance = np.maximum(scores.token_sq[mask] - token * token, 0.0)  # per composition, over its samples
    se = math.sqrt(float((variance / scores.n_samples[mask]).sum())) / n
    out |= {"token_acc": float(token.mean()), "token_acc_se": se}
    out |= {"seq_acc": float(scores.seq_acc[mask].mean()), "tf_acc": float(scores.tf_acc[mask].mean())}
    for k, name in enumerate(step_columns(spec)):
        out[name] = float(scores.step_acc[mask, k].mean())
    return out


def in_train_mask(comps: np.ndarray, train_comps: np.ndarray) -> np.ndarray:
    """(C,) bool: which compositions the model was trained on."""
    train = set(composition_keys(train_comps))
    return np.array([key in train for key in composition_keys(comps)], dtype=bool)


def inorder_summary(spec: TaskSpec, scores: Scores, comps: np.ndarray, in_train: np.ndarray) -> dict:
    """Overall, training vs unseen compositions, and by number of (non-identity) functions."""
    n_fn = n_functions_of(comps)
    return {
        "overall": aggregate(spec, scores, np.ones(len(comps), dtype=bool)),
        "train": aggregate(spec, scores, in_train),
        "unseen": aggregate(spec, scores, ~in_train),
        "by_n_functions": [{"n_functions": int(k), **aggregate(spec, scores, n_fn == k)} for k in np.unique(n_fn)],
    }


def outorder_summary(spec: TaskSpec, scores: Scores, comps: np.ndarray) -> dict:
    """Overall and per (#identities, displacement) group."""
    n_id, disp = spec.depth - n_functions_of(comps), displacement_of(comps)
    groups = sorted(set(zip(n_id.tolist(), disp.tolist(), strict=True)))
    return {
        "overall": aggregate(spec, scores, np.ones(len(comps), dtype=bool)),
        "groups": [
            {"n_identity": i, "displacement": d, **aggregate(spec, scores, (n_id == i) & (disp == d))}
            for i, d in groups
        ],
    }


def select_checkpoints(
    checkpoints: list[tuple[int, Path]], xlim: tuple[int | None, int | None], nckpts: int
) -> list[tuple[int, Path]]:
    """`nckpts` of the checkpoints (sorted by step) with steps inside xlim, spread evenly by rank; the first
    and the newest inside xlim are always among them (nckpts=1: the newest alone)."""
    lo, hi = xlim
    inside = [(s, p) for s, p in checkpoints if (lo is None or s >= lo) and (hi is None or s <= hi)]
    if not inside:
        steps = [s for s, _ in checkpoints]
        raise EvaluationError(f"xlim={[lo, hi]} holds none of the checkpoint steps ({steps[0]}..{steps[-1]})")
    if nckpts >= len(inside):
        return inside
    ranks = np.floor(np.linspace(len(inside) - 1, 0, nckpts) + 0.5).astype(int)  # distinct: spacing >= 1
    return [inside[r] for r in sorted(ranks)]


# ---- the two evaluation stages (03_evaluate_i.py, 03_evaluate_o.py) ----


@dataclass(frozen=True)
class Setup:
    """What both stages read from their config, the checkpoints and the dataset."""

    dataset: Dataset
    spec: TaskSpec  # in the evaluated format
    checkpoints: list[tuple[int, Path]]  # every checkpoint of the run, sorted by step
    device: torch.device
    bf16: bool
    seed: int
    nsamples: int
    min_group_samples: int
    batch_size: int
    n_failures: int
    out_dir: Path
    model_args: dict  # of the newest checkpoint

    def samples(self, groups: np.ndarray) -> np.ndarray:
        """Samples per composition, given the reporting group of each (C,) or (C, k)."""
        return samples_per_composition(groups, self.nsamples, self.min_group_samples)

    def scores(self, model: nn.Module, comps: np.ndarray, n_samples: np.ndarray, progress) -> Scores:
        return evaluate_compositions(
            model, self.spec, self.dataset.functions, comps, nsamples=n_samples, seed=self.seed,
            batch_size=self.batch_size, device=self.device, bf16=self.bf16,
            with_replacement=bool(self.dataset.config["with_replacement"]), n_failures=self.n_failures,
            progress=progress,
        )


def find_checkpoints(ckpt_dir: str) -> list[tuple[int, Path]]:
    if not Path(ckpt_dir).is_dir():
        raise EvaluationError(f"ckpt_dir={ckpt_dir!r} does not exist; check ckpt_tag or train with 02_train.py")
    checkpoints = list_checkpoints(ckpt_dir)
    if not checkpoints:
        raise EvaluationError(f"ckpt_dir={ckpt_dir!r} holds no checkpoints (ckpt_<step>.pt)")
    return checkpoints


def _check_flag(config: dict, key: str, actual: bool, source: str) -> None:
    """permute/lstm come from the dataset/checkpoint; a value given on the command line must agree."""
    value = config[key]
    if value is not None and value != actual:
        raise ConfigError(
            f"{key}={str(value).lower()} disagrees with {source} ({str(actual).lower()}); "
            f"leave {key}=null to read it from there"
        )


def check_agreement(ckpt: dict, path: Path, ds: Dataset, spec: TaskSpec) -> None:
    """The checkpoint must have been trained on this dataset's vocabulary, functions and split, and its model
    must fit the evaluated documents."""
    trained = ckpt["data"]["meta"].get("sha256", {})
    for name in ("vocab.json", "functions.json", "train_compositions.json"):
        if name in trained and trained[name] != ds.meta["sha256"][name]:
            raise EvaluationError(
                f"checkpoint {path} was trained on dataset {ckpt['data']['path']!r}, whose {name} differs from "
                f"the one in {str(ds.path)!r}; set data_path=null to use the training dataset"
            )
    args = ckpt["model_args"]
    if args["vocab_size"] < spec.vocab_size:
        raise EvaluationError(
            f"checkpoint {path} has vocab_size={args['vocab_size']} < {spec.vocab_size} tokens of {str(ds.path)!r}"
        )
    if args["kind"] == "nanogpt" and args["context_size"] < spec.doc_len - 1:
        raise EvaluationError(
            f"checkpoint {path} has context_size={args['context_size']}, too short for documents of "
            f"{spec.doc_len} tokens (direct={spec.direct})"
        )


def load_setup(config: dict) -> Setup:
    """Validate the keys shared by both stages, then find the checkpoints and the dataset and check they agree."""
    get_tag(config)
    get_tag(config, "ckpt_tag")
    for key in ("direct", "permute", "lstm"):
        if config[key] is not None:
            get_bool(config, key)
    device = resolve_device(config["device"])
    batch_size = None if config["batch_size"] is None else get_int(config, "batch_size", minimum=1)
    if get_int(config, "threads", minimum=0):
        torch.set_num_threads(config["threads"])
    settings = {
        "device": device,
        "batch_size": batch_size or DEFAULT_BATCH_SIZE[device.type],
        "bf16": get_bool(config, "bf16") and device.type == "cuda",
        "seed": get_int(config, "seed", minimum=0),
        "nsamples": get_int(config, "nsamples", minimum=1),
        "min_group_samples": get_int(config, "min_group_samples", minimum=0),
        "n_failures": get_int(config, "nfailures", minimum=0),
        "out_dir": Path(get_path(config, "out_dir")),
    }
    checkpoints = find_checkpoints(get_path(config, "ckpt_dir"))
    newest_path = checkpoints[-1][1]
    newest = load_checkpoint(newest_path, map_location="cpu")
    data_path = newest["data"]["path"] if config["data_path"] is None else get_path(config, "data_path")
    ds = load_dataset(data_path)
    _check_flag(config, "permute", bool(ds.config["function"]["permute"]), f"dataset {data_path!r}")
    _check_flag(config, "lstm", newest["model_args"]["kind"] == "lstm", f"checkpoint {newest_path}")
    spec = replace(ds.spec, direct=ds.spec.direct if config["direct"] is None else config["direct"])
    check_agreement(newest, newest_path, ds, spec)
    return Setup(dataset=ds, spec=spec, checkpoints=checkpoints, model_args=newest["model_args"], **settings)


def run_info(config: dict, setup: Setup) -> dict:
    """What a reader of summary.json needs to interpret its numbers."""
    return {
        "ckpt_dir": config["ckpt_dir"], "dataset": str(setup.dataset.path), "model": setup.model_args,
        "direct": setup.spec.direct, "nsamples": setup.nsamples, "min_group_samples": setup.min_group_samples,
        "seed": setup.seed,
        "chance": 1 / setup.spec.n_alphabets, "config": config,
    }


def load_evaluated_model(setup: Setup, path: Path) -> nn.Module:
    ckpt = load_checkpoint(path, map_location="cpu")  # any device's checkpoint loads here
    check_agreement(ckpt, path, setup.dataset, setup.spec)
    return load_model(ckpt, setup.device)


def write_run_json(config: dict, setup: Setup) -> None:
    """run.json: what the report stage (04_report.py) needs to label this run."""
    info = {"tag": config["tag"], "data": setup.dataset.config, "model": setup.model_args,
            "ckpt_dir": config["ckpt_dir"], "dataset": str(setup.dataset.path)}
    results.write_text_atomic(setup.out_dir / "run.json", json.dumps(info, indent=1) + "\n")


HOW_KEYS = ("skip_complete", "threads", "device", "batch_size", "nfailures")  # change speed or output, not numbers


def already_evaluated(config: dict, section: str, csv_name: str, steps: list[int]) -> bool:
    """True when out_dir holds this section's results for the same settings and the same checkpoint steps."""
    out_dir = Path(config["out_dir"])
    try:
        done = json.loads((out_dir / "summary.json").read_text())[section]
    except (OSError, ValueError, KeyError):
        return False
    same = {k: v for k, v in done.get("config", {}).items() if k not in HOW_KEYS} == {
        k: v for k, v in config.items() if k not in HOW_KEYS}
    done_steps = [s["step"] for s in done["steps"]] if "steps" in done else [done.get("step")]
    return same and done_steps == steps and (out_dir / csv_name).is_file() and (out_dir / "run.json").is_file()


def parse_xlim(config: dict) -> tuple[int | None, int | None]:
    xlim = config["xlim"]
    if xlim is None:
        return None, None
    ok = isinstance(xlim, list | tuple) and len(xlim) == 2
    ok = ok and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in xlim)
    if not ok or (None not in xlim and xlim[0] > xlim[1]):
        raise ConfigError(f"xlim={xlim} must be [first_step, last_step] (either may be null) with first <= last")
    return xlim[0], xlim[1]


def progress_bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="seq", unit_scale=True, mininterval=1.0, dynamic_ncols=True)


def run_inorder(config: dict) -> dict:
    """Evaluate every in-order composition at `nckpts` checkpoints; write inorder.csv and summary.json."""
    xlim, nckpts = parse_xlim(config), get_int(config, "nckpts", minimum=1)
    setup = load_setup(config)
    chosen = select_checkpoints(setup.checkpoints, xlim, nckpts)
    steps = [step for step, _ in chosen]
    if get_bool(config, "skip_complete") and already_evaluated(config, "inorder", "inorder.csv", steps):
        print(f"{setup.out_dir} already holds this in-order evaluation: skipping")
        return json.loads((setup.out_dir / "summary.json").read_text())["inorder"]
    spec, ds = setup.spec, setup.dataset
    comps = inorder_compositions(spec.depth, spec.n_functions)
    in_train = in_train_mask(comps, ds.train_compositions)
    n_samples = setup.samples(np.stack([n_functions_of(comps), in_train], axis=1))  # every reported group
    bar = progress_bar(len(chosen) * int(n_samples.sum()), "in-order")
    rows, per_step = [], []
    for step, path in chosen:
        bar.set_postfix(step=step)
        scores = setup.scores(load_evaluated_model(setup, path), comps, n_samples, bar)
        rows += results.composition_rows(step, spec, ds.vocab, comps, scores, in_train=in_train)
        per_step.append({"step": step, **inorder_summary(spec, scores, comps, in_train)})
    bar.close()
    summary = {**run_info(config, setup), "steps": per_step}
    results.write_csv(setup.out_dir / "inorder.csv", results.inorder_header(spec), rows)
    results.update_summary(setup.out_dir / "summary.json", "inorder", summary)
    write_run_json(config, setup)
    print(results.inorder_table(summary))
    print(results.failures_text(ds.vocab, spec, comps, scores.failures, chosen[-1][0]))
    print(f"wrote inorder.csv, summary.json and run.json to {setup.out_dir}")
    return summary


def run_outorder(config: dict) -> dict:
    """Evaluate the out-of-order groups at one checkpoint; write outorder.csv and summary.json."""
    max_per_pattern = get_int(config, "max_per_pattern", minimum=1)
    chosen_step = None if config["step"] is None else get_int(config, "step", minimum=0)
    setup = load_setup(config)
    steps = {s: p for s, p in setup.checkpoints}
    step = setup.checkpoints[-1][0] if chosen_step is None else chosen_step
    if step not in steps:
        raise EvaluationError(f"step={step} has no checkpoint in {config['ckpt_dir']}; available: {sorted(steps)}")
    if get_bool(config, "skip_complete") and already_evaluated(config, "outorder", "outorder.csv", [step]):
        print(f"{setup.out_dir} already holds this out-of-order evaluation: skipping")
        return json.loads((setup.out_dir / "summary.json").read_text())["outorder"]
    spec, ds = setup.spec, setup.dataset
    comps = outorder_compositions(input_rng(setup.seed, COMPOSITION_STREAM), spec.depth, spec.n_functions,
                                  max_per_pattern)
    n_samples = setup.samples(np.stack([n_functions_of(comps), displacement_of(comps)], axis=1))
    bar = progress_bar(int(n_samples.sum()), f"out-of-order, step {step}")
    scores = setup.scores(load_evaluated_model(setup, steps[step]), comps, n_samples, bar)
    bar.close()
    in_train = in_train_mask(comps, ds.train_compositions)
    summary = {**run_info(config, setup), "step": step, **outorder_summary(spec, scores, comps)}
    rows = results.composition_rows(step, spec, ds.vocab, comps, scores, in_train=in_train, outorder=True)
    results.write_csv(setup.out_dir / "outorder.csv", results.OUTORDER_HEADER, rows)
    results.update_summary(setup.out_dir / "summary.json", "outorder", summary)
    write_run_json(config, setup)
    print(results.outorder_table(summary))
    print(results.failures_text(ds.vocab, spec, comps, scores.failures, step))
    print(f"wrote outorder.csv, summary.json and run.json to {setup.out_dir}")
    return summary
