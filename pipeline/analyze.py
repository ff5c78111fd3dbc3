"""Stage 5 (05_analyze.py): one nanoGPT checkpoint -> results/<tag>/analysis/ (docs/task.md §9, finding 7).

Writes, as one folder swapped in whole: attention.csv, attention_heatmap.png, attention_current_task.png
(step-by-step data only), probes.csv, probes.png, ablation.csv, ablation.png (unless ablation_nsamples=0),
patching.csv, patching.png (step-by-step data with N >= 2 only, unless patching_nsamples=0), and summary.json
(settings, fingerprint, wall times, and the numbers finding 7 is judged on: analysis/summary.py).
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from analysis import patching
from analysis.ablation import AblationSetup, ablation_header, ablation_rows, ablation_sites, hook_name, mean_activations
from analysis.attention import ATTENTION_HEADER, ROLES, attention_rows, attention_stats
from analysis.layout import position_labels
from analysis.plots import ablation_bars, attention_heatmap, attention_task_bars, probe_curve
from analysis.probes import PROBE_HEADER, collect_residuals, probe_rows
from analysis.summary import mechanism_numbers
from core.config import NEUTRAL, PATH, TAG, at_least, fingerprint, int_or, parse
from core.errors import ConfigError, PipelineError
from core.io import OutputLock, StagedFolder, csv_text, write_json, write_text
from core.manifest import write_entry
from core.stage import SKIP, STAGES, Found, check_flags, decide, found_output
from net.checkpoint import list_checkpoints, load_checkpoint, load_model, trained_precision
from net.device import resolve_device
from net.evaluate import INPUT_CHUNK
from net.model import GPT
from pipeline.evaluate import check_agreement
from pipeline.launch import set_threads
from pipeline.resources import MAX_SAMPLES, evaluation_bytes, require_memory
from pipeline.train import TrainConfig
from synthetic.compositions import inorder_compositions
from synthetic.dataset import Dataset, load_dataset
from synthetic.task import TaskSpec

STAGE = STAGES["analyze"]
PARTS = ("attention", "probes", "ablation", "patching")  # in this order; each an Analysis method


class AnalysisError(PipelineError):
    """A checkpoint the analysis cannot read through hook points, or one that does not exist."""


@dataclass(frozen=True)
class ProbeConfig:
    l2: float = field(metadata=at_least(0.0))
    max_iter: int = field(metadata=at_least(1))


@dataclass(frozen=True)
class AnalyzeConfig:
    """config/analyze/conf.yaml, validated."""

    tag: str = field(metadata=TAG)
    ckpt_tag: str = field(metadata=TAG)
    ckpt_dir: str = field(metadata=PATH)
    step: int | None = field(metadata=at_least(0))
    nsamples: int = field(metadata=at_least(1))
    ablation_nsamples: int = field(metadata=at_least(0, MAX_SAMPLES))
    patching_nsamples: int = field(metadata=at_least(0, MAX_SAMPLES))
    probe: ProbeConfig
    seed: int = field(metadata=at_least(0))
    device: str = field(metadata=NEUTRAL)
    threads: int | str = field(metadata=int_or("auto") | NEUTRAL)
    batch_size: int = field(metadata=at_least(1) | NEUTRAL)
    out_dir: str = field(metadata=PATH | NEUTRAL)
    skip_complete: bool = field(metadata=NEUTRAL)
    overwrite: bool = field(metadata=NEUTRAL)

    def __post_init__(self) -> None:
        check_flags(self.skip_complete, self.overwrite)


def skipped_parts(c: AnalyzeConfig, spec: TaskSpec) -> dict[str, str]:
    """The parts of PARTS that do not run, with the reason printed for each."""
    reasons = {"attention": "direct documents have no per-step task token" if spec.direct else None,
               "ablation": None if c.ablation_nsamples else "ablation_nsamples=0",
               "patching": patching.unpatchable(spec) or (None if c.patching_nsamples else "patching_nsamples=0")}
    return {part: why for part, why in reasons.items() if why}


def existing(out_dir: Path) -> Found:
    """The analysis out_dir holds (core.stage.found_output); before manifests, a summary.json."""
    return found_output(out_dir, "analyze", "the analysis", legacy=(out_dir / "summary.json").is_file())


def check_memory(c: AnalyzeConfig, ds: Dataset, model_args: dict) -> None:
    """ConfigError when the analysis would need more memory than the machine has: the residual streams the probes
    read (every site, at every position, of the analyzed and the probe-training documents, float32, and a
    standardized copy), one batch's cache (activations and attention maps), the ablations' evaluations, and the
    activation patching (analysis.patching.patching_bytes)."""
    t, width, layers = ds.spec.doc_len, model_args["n_embd"], model_args["n_layer"]
    sites = 2 * layers + 1
    features = 2 * c.nsamples * t * width * sites * 4 * 2
    batch = min(c.batch_size, c.nsamples) * t * (sites * width + layers * model_args["n_head"] * t) * 4 * 2
    require_memory(f"nsamples={c.nsamples} documents (batch_size={c.batch_size} at a time)", features + batch,
                   "nsamples or batch_size")
    n_samples = np.full((ds.spec.n_functions + 1) ** ds.spec.depth, c.ablation_nsamples, dtype=np.int64)
    need = evaluation_bytes(n_samples, INPUT_CHUNK, c.batch_size, ds.spec, bool(ds.config["with_replacement"]),
                            model_args)
    require_memory(f"ablation_nsamples={c.ablation_nsamples} per in-order composition ({int(n_samples.sum()):,} "
                   "sequences per ablated evaluation)", need, "ablation_nsamples or batch_size")
    if "patching" not in skipped_parts(c, ds.spec):
        require_memory(f"patching_nsamples={c.patching_nsamples} document pairs per (step, slot kind)",
                       patching.patching_bytes(ds.spec, model_args, c.patching_nsamples, c.batch_size),
                       "patching_nsamples or batch_size")


class Analysis:
    """One checkpoint's analyses, each writing its CSV and figures into the staged folder."""

    def __init__(self, c: AnalyzeConfig, model: GPT, ds: Dataset, folder: Path, device: torch.device,
                 docs: torch.Tensor, probe_docs: torch.Tensor) -> None:
        self.c, self.model, self.ds, self.folder, self.device = c, model, ds, folder, device
        self.docs, self.probe_docs = docs, probe_docs  # (nsamples, doc_len) each: analyzed, probe training
        self.files: list[str] = []
        self.rows: dict[str, list[dict]] = {}

    def write_csv(self, name: str, header: list[str], rows: list[list], *figures: str) -> None:
        """<name>.csv, and the `figures` the part draws from its rows next, in the folder's list of files."""
        write_text(self.folder / f"{name}.csv", csv_text(header, rows))
        self.rows[name] = [dict(zip(header, row, strict=True)) for row in rows]
        self.files += [f"{name}.csv", *figures]

    def attention(self) -> None:
        spec = self.ds.spec
        stats = attention_stats(self.model, self.docs, spec, self.c.batch_size)
        self.write_csv("attention", ATTENTION_HEADER, attention_rows(stats), "attention_heatmap.png",
                       "attention_current_task.png")
        attention_heatmap(stats, position_labels(spec, spec.doc_len - 1), self.folder / "attention_heatmap.png")
        attention_task_bars(stats, self.folder / "attention_current_task.png")
        cur = ROLES.index("current_task")
        for layer in range(self.model.config.n_layer):
            shares = stats.shares[layer, :, :, cur].mean(axis=1)  # (H,) mean over steps
            print(f"  attention layer {layer}: share on the current task token per head "
                  f"{' '.join(f'{x:.3f}' for x in shares)} (uniform {stats.uniform[:, cur].mean():.3f})")

    def probes(self) -> None:
        spec, c = self.ds.spec, self.c
        train = collect_residuals(self.model, self.probe_docs, spec, c.batch_size)
        test = collect_residuals(self.model, self.docs, spec, c.batch_size)
        rows = probe_rows(self.model, train, test, spec, c.probe.l2, c.probe.max_iter)
        self.write_csv("probes", PROBE_HEADER, rows, "probes.png")
        probe_curve(self.rows["probes"], self.folder / "probes.png")
        for r in self.rows["probes"]:
            if r["step"] == "all":
                print(f"  {r['label']:>8}: logit lens {r['logit_lens_acc']:.3f}  probe {r['probe_acc']:.3f} "
                      f"(train {r['probe_train_acc']:.3f})  chance {r['chance']:.3f}")

    def ablation(self) -> None:
        spec, c = self.ds.spec, self.c
        names = [hook_name(layer, part) for layer, part in ablation_sites(self.model)]
        means = mean_activations(self.model, self.docs, names, c.batch_size)
        setup = AblationSetup(spec, self.ds.functions, inorder_compositions(spec.depth, spec.n_functions),
                              c.ablation_nsamples, c.seed, c.batch_size, self.device,
                              bool(self.ds.config["with_replacement"]))
        self.write_csv("ablation", ablation_header(spec), ablation_rows(self.model, setup, means), "ablation.png")
        ablation_bars(self.rows["ablation"], self.folder / "ablation.png")

    def patching(self) -> None:
        spec, c = self.ds.spec, self.c
        effects = patching.measure_patching(self.model, spec, self.ds.functions, c.patching_nsamples, c.seed,
                                            c.batch_size, bool(self.ds.config["with_replacement"]))
        self.write_csv("patching", patching.PATCHING_HEADER, patching.patching_rows(effects), "patching.png")
        patching.patching_bars(self.rows["patching"], self.folder / "patching.png")
        for r in self.rows["patching"]:
            if r["positions"] == "step" and r["step"] == "all" and r["slot_kind"] == "function":
                print(f"  patching {r['label']:>8} at the step's positions: {r['restored']:.3f} of the logit "
                      f"difference restored at function steps")


def run(raw: dict) -> dict:
    """Analyze one checkpoint into out_dir (or keep an identical analysis: skip_complete); return the summary."""
    c = parse(AnalyzeConfig, raw)
    device = resolve_device(c.device)
    set_threads(c.threads)
    found = dict(list_checkpoints(c.ckpt_dir))
    if not found:
        raise AnalysisError(f"ckpt_dir={c.ckpt_dir!r} holds no checkpoints (ckpt_<step>.pt); train with 02_train.py")
    step = max(found) if c.step is None else c.step
    if step not in found:
        raise ConfigError(f"step={step} has no checkpoint in {c.ckpt_dir!r}; available: {sorted(found)}")
    path = found[step]
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt["model_args"]["kind"] != "nanogpt":
        raise AnalysisError(f"checkpoint {path} holds a net.kind={ckpt['model_args']['kind']} model; the analysis "
                            f"reads Transformer hook points and needs net.kind=nanogpt")
    ds = load_dataset(ckpt["data"]["path"])
    check_agreement(ckpt, path, ds, ds.spec)
    if 2 * c.nsamples > len(ds.eval_all):
        raise ConfigError(f"nsamples={c.nsamples} needs {2 * c.nsamples} documents (analyzed + probe training) but "
                          f"{ds.path}/eval_all.npy holds {len(ds.eval_all)}; lower nsamples")
    order = np.random.default_rng(c.seed).permutation(len(ds.eval_all))  # two disjoint sets: analyzed, probe training
    docs, probe_docs = (torch.from_numpy(ds.eval_all[o].astype(np.int64)).to(device)
                        for o in (order[: c.nsamples], order[c.nsamples : 2 * c.nsamples]))
    check_memory(c, ds, ckpt["model_args"])  # nsamples is within eval_all; what it derives may still not fit
    out_dir = Path(c.out_dir)
    record = {"config": fingerprint(AnalyzeConfig, raw), "checkpoint": str(path), "step": step}
    STAGE.check_target(out_dir, existing(out_dir))
    with OutputLock(out_dir):
        if decide(STAGE, out_dir, record, existing(out_dir), skip_complete=c.skip_complete,
                  overwrite=c.overwrite) == SKIP:
            print(f"{out_dir} already holds this analysis of {path}: skipped (skip_complete=true)")
            return json.loads((out_dir / "summary.json").read_text())
        model = load_model(ckpt, device)
        print(f"analyzing {path} (step {step}, {model.config.n_layer} layers x {model.config.n_head} heads, "
              f"n_embd {model.config.n_embd}) on {c.nsamples} documents of {ds.path}")
        with StagedFolder(out_dir) as staged:
            analysis = Analysis(c, model, ds, staged.path, device, docs, probe_docs)
            seconds: dict[str, float] = {}
            skipped = skipped_parts(c, ds.spec)
            for part in PARTS:
                started = time.perf_counter()
                if part in skipped:
                    print(f"  {part}: skipped ({skipped[part]})")
                else:
                    getattr(analysis, part)()
                seconds[part] = time.perf_counter() - started
            seconds["total"] = sum(seconds.values())
            summary = {"checkpoint": str(path), "step": step, "dataset": str(ds.path),
                       "model_args": ckpt["model_args"], "seconds": {k: round(v, 2) for k, v in seconds.items()},
                       "mechanism": mechanism_numbers(*(analysis.rows.get(part) for part in PARTS))}
            write_json(staged.path / "summary.json", summary)
            write_entry(staged.path, "analyze", config=raw, fingerprint=record, files=[*analysis.files, "summary.json"],
                        upstream={"folder": c.ckpt_dir, "fingerprint": fingerprint(
                            TrainConfig, ckpt["train_config"], trained_precision(ckpt))},
                        ran={"device": str(device), "precision": "float32"})  # the analysis never autocasts
            staged.publish()
    print(f"wrote {', '.join(analysis.files)} and summary.json to {out_dir} in {seconds['total']:.1f} s")
    return summary
