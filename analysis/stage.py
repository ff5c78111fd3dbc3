"""The analysis stage (05_analyze.py): one nanoGPT checkpoint, its dataset, three analyses, their files.

Writes into out_dir: attention.csv, attention_heatmap.png, attention_current_task.png (step-by-step data only),
probes.csv, probes.png, ablation.csv, ablation.png (unless ablation_nsamples=0), summary.json (settings, wall
times and the finding-7 summary of analysis.findings).
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from analysis.ablation import AblationSetup, ablation_header, ablation_rows, ablation_sites, hook_name, mean_activations
from analysis.attention import ATTENTION_HEADER, ROLES, attention_rows, attention_stats
from analysis.findings import summarize_mechanism
from analysis.layout import position_labels
from analysis.plots import ablation_bars, attention_heatmap, attention_task_bars, probe_curve
from analysis.probes import PROBE_HEADER, collect_residuals, probe_rows
from net.checkpoint import list_checkpoints, load_checkpoint, load_model
from net.device import resolve_device
from net.evaluate import check_agreement
from net.model import GPT
from net.results import write_csv
from synthetic.atomic import write_text_atomic
from synthetic.compositions import inorder_compositions
from synthetic.config import get_bool, get_float, get_int, get_path, get_tag, lookup
from synthetic.dataset import Dataset, load_dataset
from synthetic.errors import ConfigError, PipelineError

OUTPUTS = ("attention.csv", "attention_heatmap.png", "attention_current_task.png", "probes.csv", "probes.png",
           "ablation.csv", "ablation.png")


class AnalysisError(PipelineError):
    """A checkpoint the analysis cannot read through hook points, or one that does not exist."""


@dataclass(frozen=True)
class Settings:
    """The validated analysis config."""

    ckpt_dir: str
    step: int | None
    nsamples: int
    ablation_nsamples: int
    l2: float
    max_iter: int
    seed: int
    batch_size: int
    device: str
    out_dir: Path
    skip_complete: bool


def parse_settings(config: dict) -> Settings:
    get_tag(config)
    get_tag(config, "ckpt_tag")
    return Settings(
        ckpt_dir=get_path(config, "ckpt_dir"),
        step=None if lookup(config, "step") is None else get_int(config, "step", minimum=0),
        nsamples=get_int(config, "nsamples", minimum=1),
        ablation_nsamples=get_int(config, "ablation_nsamples", minimum=0),
        l2=get_float(config, "probe.l2", minimum=0.0),
        max_iter=get_int(config, "probe.max_iter", minimum=1),
        seed=get_int(config, "seed", minimum=0),
        batch_size=get_int(config, "batch_size", minimum=1),
        device=lookup(config, "device"),
        out_dir=Path(get_path(config, "out_dir")),
        skip_complete=get_bool(config, "skip_complete"),
    )


def choose_checkpoint(ckpt_dir: str, step: int | None) -> tuple[int, Path]:
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise AnalysisError(f"ckpt_dir={ckpt_dir!r} holds no checkpoints (ckpt_<step>.pt); train with 02_train.py")
    if step is None:
        return found[-1]
    steps = dict(found)
    if step not in steps:
        raise ConfigError(f"step={step} has no checkpoint in {ckpt_dir!r}; available: {sorted(steps)}")
    return step, steps[step]


def analysis_documents(eval_all: np.ndarray, nsamples: int, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random sets of `nsamples` documents from the eval_all corpus: (analyzed, probe training)."""
    if 2 * nsamples > len(eval_all):
        raise ConfigError(f"nsamples={nsamples} needs {2 * nsamples} documents (analyzed + probe training) but "
                          f"{source} holds {len(eval_all)}; lower nsamples")
    order = np.random.default_rng(seed).permutation(len(eval_all))
    return eval_all[order[:nsamples]], eval_all[order[nsamples : 2 * nsamples]]


def completed_summary(out_dir: Path, run: dict) -> dict | None:
    """summary.json of an earlier run with these very settings whose files all exist, else None."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    same = isinstance(summary, dict) and all(summary.get(k) == v for k, v in run.items())
    return summary if same and all((out_dir / f).is_file() for f in summary.get("files", [])) else None


def analyze_attention(model: GPT, ds: Dataset, docs: torch.Tensor, s: Settings) -> list[str]:
    spec = ds.spec
    stats = attention_stats(model, docs, spec, s.batch_size)
    write_csv(s.out_dir / "attention.csv", ATTENTION_HEADER, attention_rows(stats))
    attention_heatmap(stats, position_labels(spec, spec.doc_len - 1), s.out_dir / "attention_heatmap.png")
    attention_task_bars(stats, s.out_dir / "attention_current_task.png")
    cur = ROLES.index("current_task")
    for layer in range(model.config.n_layer):
        shares = stats.shares[layer, :, :, cur].mean(axis=1)  # (H,) mean over steps
        print(f"  attention layer {layer}: share on the current task token per head "
              f"{' '.join(f'{x:.3f}' for x in shares)} (uniform {stats.uniform[:, cur].mean():.3f})")
    return ["attention.csv", "attention_heatmap.png", "attention_current_task.png"]


def analyze_probes(model: GPT, ds: Dataset, docs: torch.Tensor, probe_docs: torch.Tensor, s: Settings) -> list[str]:
    train = collect_residuals(model, probe_docs, ds.spec, s.batch_size)
    test = collect_residuals(model, docs, ds.spec, s.batch_size)
    rows = probe_rows(model, train, test, ds.spec, s.l2, s.max_iter)
    write_csv(s.out_dir / "probes.csv", PROBE_HEADER, rows)
    probe_curve(rows, s.out_dir / "probes.png")
    for r in rows:
        if r[3] == "all":
            print(f"  {r[1]:>8}: logit lens {r[4]:.3f}  probe {r[5]:.3f} (train {r[6]:.3f})  chance {r[7]:.3f}")
    return ["probes.csv", "probes.png"]


def analyze_ablations(model: GPT, ds: Dataset, docs: torch.Tensor, s: Settings, device: torch.device) -> list[str]:
    spec = ds.spec
    means = mean_activations(model, docs, [hook_name(layer, c) for layer, c in ablation_sites(model)], s.batch_size)
    setup = AblationSetup(spec, ds.functions, inorder_compositions(spec.depth, spec.n_functions),
                          s.ablation_nsamples, s.seed, s.batch_size, device, bool(ds.config["with_replacement"]))
    rows = ablation_rows(model, setup, means)
    write_csv(s.out_dir / "ablation.csv", ablation_header(spec), rows)
    ablation_bars(rows, s.out_dir / "ablation.png")
    return ["ablation.csv", "ablation.png"]


def run_analysis(config: dict) -> dict:
    """Analyze one checkpoint; write the CSVs, figures and summary.json into out_dir; return the summary."""
    s = parse_settings(config)
    device = resolve_device(s.device)
    step, path = choose_checkpoint(s.ckpt_dir, s.step)
    run = {"checkpoint": str(path), "step": step,
           **{k: v for k, v in asdict(s).items() if k in ("nsamples", "ablation_nsamples", "l2", "max_iter", "seed")}}
    if s.skip_complete and (done := completed_summary(s.out_dir, run)) is not None:
        print(f"{s.out_dir} already holds this analysis of {path}: skipped (skip_complete=true)")
        return done
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt["model_args"]["kind"] != "nanogpt":
        raise AnalysisError(f"checkpoint {path} holds a net.kind={ckpt['model_args']['kind']} model; the analysis "
                            f"reads Transformer hook points and needs net.kind=nanogpt")
    ds = load_dataset(ckpt["data"]["path"])
    check_agreement(ckpt, path, ds, ds.spec)
    docs, probe_docs = (torch.from_numpy(d.astype(np.int64)).to(device) for d in
                        analysis_documents(ds.eval_all, s.nsamples, s.seed, f"{ds.path}/eval_all.npy"))
    model = load_model(ckpt, device)
    print(f"analyzing {path} (step {step}, {model.config.n_layer} layers x {model.config.n_head} heads, "
          f"n_embd {model.config.n_embd}) on {s.nsamples} documents of {ds.path}")

    seconds, files = {}, []
    started = time.perf_counter()
    if ds.spec.direct:
        print("  attention: skipped (direct documents have no per-step task token)")
    else:
        files += analyze_attention(model, ds, docs, s)
    seconds["attention"] = time.perf_counter() - started
    files += analyze_probes(model, ds, docs, probe_docs, s)
    seconds["probes"] = time.perf_counter() - started - seconds["attention"]
    if s.ablation_nsamples:
        files += analyze_ablations(model, ds, docs, s, device)
    seconds["ablation"] = time.perf_counter() - started - seconds["attention"] - seconds["probes"]
    seconds["total"] = time.perf_counter() - started
    for stale in set(OUTPUTS) - set(files):  # from an earlier run with other settings: never mix two runs
        (s.out_dir / stale).unlink(missing_ok=True)

    mechanism = summarize_mechanism(s.out_dir)
    summary = {**run, "dataset": str(ds.path), "model_args": ckpt["model_args"],
               "seconds": {k: round(v, 2) for k, v in seconds.items()}, "files": files, "mechanism": mechanism}
    write_text_atomic(s.out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(mechanism["markdown"])
    print(f"wrote {', '.join(files)} and summary.json to {s.out_dir} in {seconds['total']:.1f} s")
    return summary
