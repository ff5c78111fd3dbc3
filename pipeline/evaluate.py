"""Stage 3 (03_evaluate_i.py, 03_evaluate_o.py): a training run's checkpoints -> results/<tag>/ (docs/task.md §8).

Both stages share the folder, each owning a section of summary.json:

  inorder.csv    one row per (checkpoint step, in-order composition)             03_evaluate_i.py
  outorder.csv   one row per out-of-order composition, at one checkpoint          03_evaluate_o.py
  run.json       the run: tag, dataset config, model_args, checkpoint folder      both
  metrics.jsonl  the training run's metrics.jsonl, copied (the report reads only results/)
  summary.json   {"inorder": ..., "outorder": ...}: per section the numbers and the settings
  manifest.json  written last, an entry per section (core/manifest.py): its config, fingerprint, the training run
                 it read, and the sha256 of each file above that the section wrote

A section counts as complete only when every file its entry covers still has its recorded sha256: a killed
evaluation is then redone, never trusted (skip_complete).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.config import NEUTRAL, PATH, TAG, at_least, fingerprint, int_or, parse
from core.errors import ConfigError
from core.io import OutputLock, csv_text, json_text, write_text
from core.manifest import write_entry
from core.stage import SKIP, STAGES, Found, check_flags, decide, found_output
from net.checkpoint import list_checkpoints, load_checkpoint, load_model, trained_precision
from net.device import precision, resolve_device
from net.evaluate import (
    COMPOSITION_STREAM,
    INPUT_CHUNK,
    EvaluationError,
    Scores,
    evaluate_compositions,
    in_train_mask,
    inorder_summary,
    input_rng,
    outorder_summary,
    samples_per_composition,
    select_checkpoints,
)
from pipeline import eval_wandb, results
from pipeline.launch import parallel_launcher, set_threads
from pipeline.resources import MAX_SAMPLES, evaluation_bytes, require_memory
from pipeline.train import TrainConfig
from synthetic.compositions import displacement_of, inorder_compositions, n_functions_of, outorder_compositions
from synthetic.dataset import Dataset, load_dataset
from synthetic.task import TaskSpec

DEFAULT_BATCH_SIZE = {"cpu": 256, "cuda": 16384}  # sequences per forward pass when batch_size=null


@dataclass(frozen=True)
class EvalConfig:
    """config/eval/conf.yaml, validated: both evaluation scripts read it."""

    tag: str = field(metadata=TAG)
    seed: int = field(metadata=at_least(0))
    ckpt_tag: str = field(metadata=TAG)
    ckpt_dir: str = field(metadata=PATH)
    out_dir: str = field(metadata=PATH)
    data_path: str | None = field(metadata=PATH)
    batch_size: int | None = field(metadata=at_least(1) | NEUTRAL)
    device: str = field(metadata=NEUTRAL)
    bf16: bool
    threads: int | str = field(metadata=int_or("auto") | NEUTRAL)
    direct: bool | None
    permute: bool | None
    lstm: bool | None
    nfailures: int = field(metadata=at_least(0) | NEUTRAL)
    skip_complete: bool = field(metadata=NEUTRAL)
    overwrite: bool = field(metadata=NEUTRAL)
    xlim: list[int | None] | None  # in-order
    step: int | None = field(metadata=at_least(0))  # out-of-order
    nckpts: int = field(metadata=at_least(1))  # in-order
    nsamples: int = field(metadata=at_least(1, MAX_SAMPLES))
    min_group_samples: int = field(metadata=at_least(0, MAX_SAMPLES))
    max_per_pattern: int = field(metadata=at_least(1))  # out-of-order
    wandb: eval_wandb.EvalWandbConfig = field(metadata=NEUTRAL)

    def __post_init__(self) -> None:
        check_flags(self.skip_complete, self.overwrite)
        if self.xlim is not None and (len(self.xlim) != 2 or (None not in self.xlim and self.xlim[0] > self.xlim[1])):
            raise ConfigError(f"xlim={self.xlim} must be [first_step, last_step] (either may be null) with "
                              "first <= last")


@dataclass(frozen=True)
class Setup:
    """What both stages read from their config, the checkpoints and the dataset."""

    config: EvalConfig
    dataset: Dataset
    spec: TaskSpec  # in the evaluated format
    checkpoints: list[tuple[int, Path]]  # every checkpoint of the run, sorted by step
    device: torch.device
    batch_size: int
    precision: str  # what this evaluation computes in: "bf16" or "float32" (net.device.precision)
    model_args: dict  # of the newest checkpoint
    trained: dict  # the training run's fingerprint (its config and precision), by its newest checkpoint
    wandb: Callable[[], object] | None  # resumes the training run's wandb run, when results are logged there
    out_dir: Path  # config.out_dir

    def samples(self, groups: np.ndarray) -> np.ndarray:
        """Samples per composition, given the reporting group of each (C,) or (C, k); ConfigError when scoring
        them would need more memory than the machine has."""
        c = self.config
        n_samples = samples_per_composition(groups, c.nsamples, c.min_group_samples)
        need = evaluation_bytes(n_samples, INPUT_CHUNK, self.batch_size, self.spec,
                                bool(self.dataset.config["with_replacement"]), self.model_args)
        require_memory(f"nsamples={c.nsamples} and min_group_samples={c.min_group_samples} ({int(n_samples.sum()):,} "
                       f"sequences, decoded batch_size={self.batch_size} at a time)", need,
                       "nsamples, min_group_samples or batch_size")
        return n_samples

    def scores(self, path: Path, comps: np.ndarray, n_samples: np.ndarray, progress) -> Scores:
        """The checkpoint at `path` (verify_checkpoints has checked it) scored on `comps`."""
        model = load_model(load_checkpoint(path, map_location="cpu"), self.device)  # any device's checkpoint loads
        return evaluate_compositions(model, self.spec, self.dataset.functions, comps, nsamples=n_samples,
                                     seed=self.config.seed, batch_size=self.batch_size, device=self.device,
                                     bf16=self.precision == "bf16", progress=progress, n_failures=self.config.nfailures,
                                     with_replacement=bool(self.dataset.config["with_replacement"]))


def find_checkpoints(ckpt_dir: str) -> list[tuple[int, Path]]:
    if not Path(ckpt_dir).is_dir():
        raise EvaluationError(f"ckpt_dir={ckpt_dir!r} does not exist; check ckpt_tag or train with 02_train.py")
    checkpoints = list_checkpoints(ckpt_dir)
    if not checkpoints:
        raise EvaluationError(f"ckpt_dir={ckpt_dir!r} holds no checkpoints (ckpt_<step>.pt)")
    return checkpoints


def checkpoint_at(ckpt_dir: str, step: int | None) -> tuple[int, Path]:
    """The checkpoint of `step` (None: the newest) in ckpt_dir."""
    checkpoints = dict(find_checkpoints(ckpt_dir))
    step = max(checkpoints) if step is None else step
    if step not in checkpoints:
        raise EvaluationError(f"step={step} has no checkpoint in {ckpt_dir}; available: {sorted(checkpoints)}")
    return step, checkpoints[step]


def _check_flag(key: str, value: bool | None, actual: bool, source: str) -> None:
    """permute/lstm come from the dataset/checkpoint; a value given on the command line must agree."""
    if value is not None and value != actual:
        raise ConfigError(f"{key}={str(value).lower()} disagrees with {source} ({str(actual).lower()}); leave "
                          f"{key}=null to read it from there")


def check_agreement(ckpt: dict, path: Path, ds: Dataset, spec: TaskSpec) -> None:
    """The checkpoint must have been trained on this dataset's vocabulary, functions and split, and its model
    must fit the evaluated documents."""
    trained = ckpt["data"]["meta"].get("sha256", {})
    for name in ("vocab.json", "functions.json", "train_compositions.json"):
        if name in trained and trained[name] != ds.meta["sha256"][name]:
            raise EvaluationError(f"checkpoint {path} was trained on dataset {ckpt['data']['path']!r}, whose {name} "
                                  f"differs from the one in {str(ds.path)!r}; set data_path=null to use the training "
                                  "dataset")
    args = ckpt["model_args"]
    if args["vocab_size"] < spec.vocab_size:
        raise EvaluationError(f"checkpoint {path} has vocab_size={args['vocab_size']} < {spec.vocab_size} tokens "
                              f"of {str(ds.path)!r}")
    if args["kind"] == "nanogpt" and args["context_size"] < spec.doc_len - 1:
        raise EvaluationError(f"checkpoint {path} has context_size={args['context_size']}, too short for documents "
                              f"of {spec.doc_len} tokens (direct={spec.direct})")


def load_setup(c: EvalConfig) -> Setup:
    """Find the checkpoints and the dataset and check that they agree with each other and with the config."""
    device = resolve_device(c.device)
    set_threads(c.threads)
    checkpoints = find_checkpoints(c.ckpt_dir)
    newest_path = checkpoints[-1][1]
    newest = load_checkpoint(newest_path, map_location="cpu")
    data_path = newest["data"]["path"] if c.data_path is None else c.data_path
    ds = load_dataset(data_path)
    _check_flag("permute", c.permute, bool(ds.config["function"]["permute"]), f"dataset {data_path!r}")
    _check_flag("lstm", c.lstm, newest["model_args"]["kind"] == "lstm", f"checkpoint {newest_path}")
    spec = replace(ds.spec, direct=ds.spec.direct if c.direct is None else c.direct)
    check_agreement(newest, newest_path, ds, spec)
    return Setup(config=c, dataset=ds, spec=spec, checkpoints=checkpoints, device=device,
                 batch_size=c.batch_size or DEFAULT_BATCH_SIZE[device.type], precision=precision(device, c.bf16),
                 model_args=newest["model_args"],
                 trained=fingerprint(TrainConfig, newest["train_config"], trained_precision(newest)),
                 wandb=eval_wandb.training_run(c.wandb.mode, newest, newest_path), out_dir=Path(c.out_dir))


def run_info(raw: dict, setup: Setup) -> dict:
    """What a reader of summary.json needs to interpret its numbers."""
    c = setup.config
    return {"ckpt_dir": c.ckpt_dir, "dataset": str(setup.dataset.path), "model": setup.model_args,
            "direct": setup.spec.direct, "nsamples": c.nsamples, "min_group_samples": c.min_group_samples,
            "seed": c.seed, "chance": 1 / setup.spec.n_alphabets, "config": raw}


def read_summary(out_dir: Path) -> dict:
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def existing(out_dir: Path, section: str) -> Found:
    """The section's results in out_dir, by its manifest entry (before manifests: a fingerprint in summary.json)."""
    return found_output(out_dir, section, f"the {section} results",
                        legacy="fingerprint" in read_summary(out_dir).get(section, {}))


def write_section(out_dir: Path, section: str, summary: dict, files: dict[str, str], entry: dict) -> None:
    """Write `files` (name -> text) atomically, then summary.json's `section` (the other section kept), then the
    section's manifest entry (`entry`: its config, fingerprint, upstream and ran) covering the files: it goes last,
    so a kill in between leaves files that no entry vouches for."""
    for name, text in files.items():
        write_text(out_dir / name, text)
    write_text(out_dir / "summary.json", json_text(read_summary(out_dir) | {section: summary}))
    write_entry(out_dir, section, files=list(files), **entry)


def run_files(setup: Setup) -> dict[str, str]:
    """run.json (what the report needs to label this run) and the training run's metrics.jsonl."""
    # "train": how the model was trained, for telling runs apart in the report: the training run's fingerprint
    # without what run.json holds elsewhere (the model, the dataset) or what names and places it (tag, folders)
    trained = {k: v for k, v in setup.trained.items() if k not in ("tag", "out_dir", "net")}
    trained["data"] = {"batch_size": setup.trained.get("data", {}).get("batch_size")}
    # "tag": the results folder's name, not this stage's tag: both evaluations write run.json and must agree on it
    info = {"tag": setup.out_dir.name, "data": setup.dataset.config, "model": setup.model_args, "train": trained,
            "ckpt_dir": setup.config.ckpt_dir, "dataset": str(setup.dataset.path)}
    metrics = Path(setup.config.ckpt_dir) / "metrics.jsonl"
    return {"run.json": json_text(info), "metrics.jsonl": metrics.read_text() if metrics.is_file() else ""}


def progress_bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="seq", unit_scale=True, mininterval=1.0, dynamic_ncols=True,
                disable=parallel_launcher())


def evaluate_section(section: str, raw: dict, setup: Setup, chosen: list[tuple[int, Path]],
                     score: Callable[[], tuple[dict, dict[str, str], str]]) -> dict:
    """Check the `chosen` checkpoints; under out_dir's lock, unless decide() skips, `score()` them (summary, files,
    terminal report), write those files, run.json, metrics.jsonl, summary.json's section and the manifest entry,
    and log the summary to wandb when asked."""
    c, out_dir, stage = setup.config, setup.out_dir, STAGES[section]
    # every checkpoint loads, matches its checksum and fits the dataset: checked before anything is written (or a
    # progress bar drawn), so that a bad one is one line, not an error halfway through
    for _, path in chosen:
        check_agreement(load_checkpoint(path, map_location="cpu"), path, setup.dataset, setup.spec)
    stage.check_target(out_dir)
    with OutputLock(out_dir):
        record = {"config": fingerprint(EvalConfig, raw, setup.precision), "steps": [step for step, _ in chosen]}
        if decide(stage, out_dir, record, existing(out_dir, section), skip_complete=c.skip_complete,
                  overwrite=c.overwrite) == SKIP:
            print(f"{out_dir} already holds this {stage.noun}: skipping")
            return read_summary(out_dir)[section]
        entry = {"config": raw, "fingerprint": record, "upstream": {"folder": c.ckpt_dir, "fingerprint": setup.trained},
                 "ran": {"device": str(setup.device), "precision": setup.precision}}
        with eval_wandb.resumed(setup.wandb, section) as log:  # before anything is written
            summary, files, report = score()
            write_section(out_dir, section, summary, {**files, **run_files(setup)}, entry)
            log(eval_wandb.inorder_records(summary) if section == "inorder" else eval_wandb.outorder_records(summary))
    # one write: parallel jobs' tables do not interleave
    print("\n".join([report, f"wrote {section}.csv, summary.json and run.json to {out_dir}"]))
    return summary


def run_inorder(raw: dict) -> dict:
    """Evaluate every in-order composition at `nckpts` checkpoints; write inorder.csv and summary.json."""
    c = parse(EvalConfig, raw)
    setup = load_setup(c)
    chosen = select_checkpoints(setup.checkpoints, tuple(c.xlim or (None, None)), c.nckpts)
    spec, ds = setup.spec, setup.dataset
    comps = inorder_compositions(spec.depth, spec.n_functions)
    in_train = in_train_mask(comps, ds.train_compositions)
    n_samples = setup.samples(np.stack([n_functions_of(comps), in_train], axis=1))  # every reported group

    def score() -> tuple[dict, dict[str, str], str]:
        bar = progress_bar(len(chosen) * int(n_samples.sum()), "in-order")
        rows, per_step = [], []
        for step, path in chosen:
            bar.set_postfix(step=step)
            scores = setup.scores(path, comps, n_samples, bar)
            rows += results.composition_rows(setup.out_dir.name, step, spec, ds.vocab, comps, scores,
                                             in_train=in_train)
            per_step.append({"step": step, **inorder_summary(spec, scores, comps, in_train)})
        bar.close()
        summary = {**run_info(raw, setup), "steps": per_step}
        return summary, {"inorder.csv": csv_text(results.inorder_header(spec), rows)}, "\n".join([
            results.inorder_table(summary), results.failures_text(ds.vocab, spec, comps, scores.failures, step)])

    return evaluate_section("inorder", raw, setup, chosen, score)


def run_outorder(raw: dict) -> dict:
    """Evaluate the out-of-order groups at one checkpoint; write outorder.csv and summary.json."""
    c = parse(EvalConfig, raw)
    setup = load_setup(c)
    step, path = checkpoint_at(c.ckpt_dir, c.step)
    spec, ds = setup.spec, setup.dataset
    comps = outorder_compositions(input_rng(c.seed, COMPOSITION_STREAM), spec.depth, spec.n_functions,
                                  c.max_per_pattern)
    n_samples = setup.samples(np.stack([n_functions_of(comps), displacement_of(comps)], axis=1))

    def score() -> tuple[dict, dict[str, str], str]:
        bar = progress_bar(int(n_samples.sum()), f"out-of-order, step {step}")
        scores = setup.scores(path, comps, n_samples, bar)
        bar.close()
        in_train = in_train_mask(comps, ds.train_compositions)
        summary = {**run_info(raw, setup), "step": step, **outorder_summary(spec, scores, comps)}
        rows = results.composition_rows(setup.out_dir.name, step, spec, ds.vocab, comps, scores,
                                        in_train=in_train, outorder=True)
        return summary, {"outorder.csv": csv_text(results.OUTORDER_HEADER, rows)}, "\n".join([
            results.outorder_table(summary), results.failures_text(ds.vocab, spec, comps, scores.failures, step)])

    return evaluate_section("outorder", raw, setup, [(step, path)], score)
