"""Issue 11's parts: per-step teacher-forced accuracies and the `run` column of the result files, activation
patching in the analysis stage, the study-sized model, and the `paper_scale` suite."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from analysis.patching import patch_sites, patching_numbers
from core.config import parse
from core.errors import ConfigError
from core.manifest import read_entry
from net.evaluate import aggregate, evaluate_compositions, tf_step_columns
from net.model import build_model
from pipeline import analyze, generate, train
from pipeline.analyze import AnalyzeConfig, skipped_parts
from pipeline.evaluate import run_inorder, run_outorder
from sweep.driver import Plan, composed, report_args, route
from sweep.experiments import Experiment, Profile, Suite, load
from synthetic.compositions import inorder_compositions
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec
from tests.conftest import TINY_DATA, compose_config, stage_config
from tests.task_models import Oracle, prefix_hash
from tests.test_analysis import PATCHING_COLUMNS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- teacher-forced accuracy of each step ----


class OneStepRight(Oracle):
    """The oracle on the tokens of output y_{step+1}; every other output token it predicts is a pseudo-random
    data token (right by chance, 1/A)."""

    def __init__(self, spec: TaskSpec, functions, step: int) -> None:
        super().__init__(spec, functions)
        self.start = spec.step_starts[step]

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        nxt = super().next_tokens(idx)
        target = torch.arange(1, idx.size(1) + 1)  # the document column each prediction is for
        kept = (target < self.spec.prompt_len) | ((target >= self.start) & (target < self.start + self.spec.seq_len))
        noise = (prefix_hash(idx) >> 8) % self.spec.n_alphabets
        return torch.where(~kept & (nxt < self.spec.n_alphabets), noise, nxt)


class ChainAfterAWrongStart(Oracle):
    """Writes y_1 at random, then each later output by applying its slot's function to the previous output as the
    context holds it: under teacher forcing every step after the first is right; in free generation none is
    (beyond chance), since each applies the right function to a wrong input."""

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        s = self.spec
        out = super().next_tokens(idx).clone()
        comps = self.prompt_compositions(idx)  # (B, L, 2)
        noise = (prefix_hash(idx) >> 8) % s.n_alphabets
        for k, start in enumerate(s.step_starts):
            cols = [c for c in range(start - 1, start - 1 + s.seq_len) if c < idx.size(1)]  # predict y_{k+1}
            if not cols:
                continue
            if k == 0:
                out[:, cols] = noise[:, cols]
                continue
            previous = idx[:, start - s.seq_len - 1 : start - 1].numpy()  # (B, m): y_k as the context holds it
            step = self.functions.apply(comps[:, k, 0], comps[:, k, 1], previous)  # (B, m)
            out[:, cols] = torch.from_numpy(step[:, : len(cols)])
        return out


def step_scores(model, spec, functions, nsamples=40):
    comps = inorder_compositions(spec.depth, spec.n_functions)
    scores = evaluate_compositions(model, spec, functions, comps, nsamples=nsamples, seed=0, batch_size=512,
                                   device=torch.device("cpu"))
    return scores, aggregate(spec, scores, np.ones(len(comps), dtype=bool))


SPEC = TaskSpec(n_alphabets=10, seq_len=6, depth=3, n_functions=2)  # 27 in-order compositions, 3 steps
FUNCTIONS = sample_functions(np.random.default_rng(0), SPEC, frozenset(), repeat=False)


def test_oracle_scores_one_on_every_teacher_forced_step():
    scores, overall = step_scores(Oracle(SPEC, FUNCTIONS), SPEC, FUNCTIONS, nsamples=4)
    assert tf_step_columns(SPEC) == ["tf_y1_acc", "tf_y2_acc", "tf_y3_acc"]
    assert scores.tf_step_acc.shape == (27, 3) and (scores.tf_step_acc == 1.0).all()
    assert all(overall[name] == 1.0 for name in tf_step_columns(SPEC))
    assert tf_step_columns(replace(SPEC, direct=True)) == []


@pytest.mark.parametrize("step", [0, 1])
def test_a_model_right_on_one_step_only(step):
    scores, overall = step_scores(OneStepRight(SPEC, FUNCTIONS, step), SPEC, FUNCTIONS)
    for k, name in enumerate(tf_step_columns(SPEC)):
        if k == step:
            assert overall[name] == 1.0
        else:  # 27 x 40 samples x 6 tokens: chance 0.1 within about 5 standard errors
            assert overall[name] == pytest.approx(0.1, abs=0.05)
    np.testing.assert_array_equal(scores.tf_step_acc[:, -1], scores.tf_acc)  # y_L's is tf_acc
    # free generation: the oracle's part reads only the prompt, so its step is right whatever came before it
    assert [overall[f"y{k + 1}_acc"] == 1.0 for k in range(SPEC.depth)] == [k == step for k in range(SPEC.depth)]


def test_teacher_forcing_gives_each_step_the_true_previous_output():
    scores, overall = step_scores(ChainAfterAWrongStart(SPEC, FUNCTIONS), SPEC, FUNCTIONS)
    tf = [overall[name] for name in tf_step_columns(SPEC)]
    free = [overall[f"y{k + 1}_acc"] for k in range(SPEC.depth)]
    assert tf[0] == pytest.approx(0.1, abs=0.05) and tf[1:] == [1.0, 1.0]
    assert free == pytest.approx([0.1, 0.1, 0.1], abs=0.05)  # errors carry forward; under teacher forcing they do not


# ---- tiny trained checkpoints ----


def tiny_run(root, n_functions: int):
    """A barely trained checkpoint of 02_train.py on a tiny task with N = n_functions."""
    data, ckpts = root / f"data{n_functions}", root / f"ckpt{n_functions}"
    generate.run(stage_config("gen", [*TINY_DATA, "n_alphabets=4", "seq_len=2", "function.depth=2",
                                      f"function.n_functions={n_functions}", "function.split.n_compositions=2",
                                      f"out_dir={data}"]))
    train.run(stage_config("train", [f"data.path={data}", f"out_dir={ckpts}", "net.n_embd=16", "device=cpu",
                                     "data.batch_size=100", "log.eval_interval=2"]))
    return ckpts


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    return {n: tiny_run(root, n) for n in (1, 2)}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_result_files_start_with_the_run_and_hold_each_steps_teacher_forced_accuracy(tmp_path, tiny_ckpts):
    out = tmp_path / "my_run"
    base = ["ckpt_tag=tiny", f"ckpt_dir={tiny_ckpts[2]}", f"out_dir={out}", "device=cpu",
            "nsamples=2", "min_group_samples=0", "nckpts=2", "max_per_pattern=1"]
    summary = run_inorder(stage_config("eval", base))
    run_outorder(stage_config("eval", base))
    with open(out / "inorder.csv") as f:
        header = next(csv.reader(f))
    assert header[0] == "run" and header[-2:] == ["tf_y1_acc", "tf_y2_acc"]
    rows = read_csv(out / "inorder.csv")
    assert {r["run"] for r in rows} == {"my_run"} and all(r["tf_y2_acc"] == r["tf_acc"] for r in rows)
    outorder = read_csv(out / "outorder.csv")
    assert list(outorder[0])[0] == "run" and {r["run"] for r in outorder} == {"my_run"}
    assert json.loads((out / "run.json").read_text())["tag"] == "my_run"  # the name the report knows the run by
    for at_step in summary["steps"]:  # summary.json's aggregates: each composition weighs the same
        of_step = [r for r in rows if int(r["step"]) == at_step["step"]]
        for name in ("tf_y1_acc", "tf_y2_acc"):
            mean = np.mean([float(r[name]) for r in of_step])
            assert at_step["overall"][name] == pytest.approx(mean, abs=1e-6)
            assert name in at_step["by_n_functions"][0] and name in at_step["unseen"]


# ---- activation patching in the analysis stage ----


def analyze_config(ckpts, out, *extra: str) -> dict:
    return stage_config("analyze", ["ckpt_tag=tiny", f"ckpt_dir={ckpts}", f"out_dir={out}", "nsamples=20",
                                    "ablation_nsamples=0", "device=cpu", "probe.max_iter=5", *extra])


def test_analysis_writes_patching_and_its_numbers(tmp_path, tiny_ckpts, capsys):
    summary = analyze.run(analyze_config(tiny_ckpts[2], tmp_path / "a", "patching_nsamples=3"))
    out = tmp_path / "a"
    rows = read_csv(out / "patching.csv")
    sites = patch_sites(n_layer=2, n_head=1, mlp=True)
    assert list(rows[0]) == PATCHING_COLUMNS  # as docs/reference.md documents them
    assert len(rows) == len(sites) * 2 * (2 + 1) * 3  # sites x positions x (steps, all) x (kinds, all)
    assert {int(r["n_documents"]) for r in rows if r["step"] != "all" and r["slot_kind"] != "all"} == {3}
    assert (out / "patching.png").read_bytes().startswith(PNG_SIGNATURE)
    assert {"patching.csv", "patching.png"} <= set(read_entry(out, "analyze").files)
    assert "patching" in summary["seconds"]
    numbers = summary["mechanism"]["patching"]
    assert numbers == patching_numbers(rows) == json.loads((out / "summary.json").read_text())["mechanism"]["patching"]
    for kind in ("identity", "function"):
        assert numbers[kind]["n_documents"] == 2 * 3  # both steps pooled
        for positions in ("step", "all"):
            at = numbers[kind][positions]
            assert len(at["attn"]) == len(at["mlp"]) == 2 and [len(h) for h in at["head"]] == [1, 1]
    assert "judge" not in json.dumps(numbers) and "claims" not in numbers  # numbers only: the report judges

    analyze.run(analyze_config(tiny_ckpts[2], tmp_path / "b", "patching_nsamples=0"))
    assert "patching: skipped (patching_nsamples=0)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert not (tmp_path / "b" / "patching.csv").exists() and "patching" not in summary["mechanism"]


def test_patching_that_would_not_fit_in_memory_is_refused_before_anything_is_written(tmp_path, tiny_ckpts):
    huge = "patching_nsamples=100000000000"
    with pytest.raises(ConfigError, match=r"patching_nsamples=100000000000 document pairs per \(step, slot kind\) "
                                          r"need about [\d,.]+ GiB of memory, more than this machine's"):
        analyze.run(analyze_config(tiny_ckpts[2], tmp_path / "a", huge))
    assert not (tmp_path / "a").exists()
    analyze.run(analyze_config(tiny_ckpts[1], tmp_path / "b", huge))  # N = 1: patching is skipped, nothing to bound


def test_patching_numbers_are_strict_json():
    """A site with no gap to restore (restored nan) becomes null, so summary.json stays standard JSON."""
    rows = []
    for kind in ("identity", "function"):
        for positions in ("step", "all"):
            rows += [["blocks.0.hook_attn_out", "L0 attn", 0, "", "attn", positions, "all", kind, float("nan"), 1.0,
                      1.0, 4],
                     ["blocks.0.attn.hook_z", "L0 H0", 0, 0, "head", positions, "all", kind, 0.5, 1.0, 1.0, 4]]
    numbers = patching_numbers(rows)
    assert numbers["function"]["step"] == {"attn": [None], "mlp": [], "head": [[0.5]]}
    json.dumps(numbers, allow_nan=False)


def test_patching_is_skipped_for_one_function_per_level_and_for_direct_data(tmp_path, tiny_ckpts, capsys):
    summary = analyze.run(analyze_config(tiny_ckpts[1], tmp_path / "a", "patching_nsamples=3"))
    assert "patching: skipped (n_functions=1: a function slot has no other function" in capsys.readouterr().out
    assert "patching" not in summary["mechanism"] and "probes" in summary["mechanism"]
    assert not (tmp_path / "a" / "patching.csv").exists()
    c = parse(AnalyzeConfig, analyze_config(tiny_ckpts[2], tmp_path, "patching_nsamples=3"))
    assert skipped_parts(c, SPEC) == {"ablation": "ablation_nsamples=0"}
    direct = skipped_parts(c, replace(SPEC, direct=True))
    assert set(direct) == {"attention", "ablation", "patching"} and "direct documents" in direct["patching"]


# ---- the study's model and the paper_scale suite ----


def test_study_model_composes():
    cfg = compose_config("train", ["net=nanogpt_study"])
    assert (cfg.net.n_layer, cfg.net.n_head, cfg.net.n_embd, cfg.net.mlp) == (12, 1, 120, True)
    args = {**stage_config("train", ["net=nanogpt_study"])["net"], "vocab_size": 38}
    model = build_model(args)
    assert sum(p.numel() for p in model.parameters()) == 12 * 12 * 120 * 120 + (38 + 50) * 120 + 25 * 120


def test_paper_scale_suite_names_its_runs_and_keeps_them_under_runs_scale():
    suite = load(Suite, "paper_scale")
    profile = load(Profile, suite.profile)
    assert suite.paper and suite.report == "paper_scale"
    assert profile.report == []
    assert report_args(suite, suite.experiments, suite.profile) == ["kind=paper", "name=paper_scale"]
    experiments = [load(Experiment, name) for name in suite.experiments]
    assert {e.finding for e in experiments} == {1, 3, 5, 7}
    calls = Plan(experiments, profile, [], route([])).calls()  # composes every run's config: bad keys raise
    ckpt_tags = [tag for stage, overrides in calls if stage in ("inorder", "analyze")
                 for o in overrides if o.startswith("ckpt_tag=") for tag in o.split("=", 1)[1].split(",")]
    assert len(set(ckpt_tags)) == 42 and all("_n4" in t and "_nanogpt_study" in t for t in ckpt_tags)
    five = {"0", "1", "2", "3", "4"}  # finding 3: both formats at 100, 500 and 2,000, one recipe, five seeds
    replicates = {**{f"{form}_random{n}_n4": five for form in ("direct", "stepbystep") for n in (100, 500, 2000)},
                  "stepbystep_base25_n4": {"0", "1", "2"}, "stepbystep_random25_n4": {"0", "1", "2"}}  # finding 5
    for setting, expected in replicates.items():
        seeds = {t.split("_seed")[1][0] if "_seed" in t else "0" for t in ckpt_tags
                 if t.startswith((setting + "_", setting + "-"))}  # "-": a hash of settings off the defaults
        assert seeds == expected, setting
    analysed = [tag for stage, overrides in calls if stage == "analyze"
                for o in overrides if o.startswith("ckpt_tag=") for tag in o.split("=", 1)[1].split(",")]
    assert sorted(analysed) == sorted(f"stepbystep_random100_n4{seed}_nanogpt_study{heads}" for seed in
                                      ("", "_seed1", "_seed2") for heads in ("", "_h6"))  # finding 7: 1 and 6 heads
    for stage, overrides in calls:
        places = [o for o in overrides if o.startswith(("out_dir=", "data.path=", "ckpt_dir="))]
        assert places and all(o.split("=", 1)[1].startswith("runs/scale/") for o in places), stage


def test_the_six_head_study_model_is_trained_by_the_one_head_runs_recipe():
    """scale_mechanism_heads: scale_mechanism's datasets, seeds and recipe, 6 heads of 20 in place of 1 of 120 (the
    same weights), each seed trained, evaluated and analysed under runs/scale/."""
    plan = Plan([load(Experiment, "scale_mechanism"), load(Experiment, "scale_mechanism_heads")],
                load(Profile, "scale"), [], route([]))
    calls = plan.calls()  # composes every run's config: bad keys raise
    one, six = [overrides for stage, overrides in calls if stage == "train"]
    assert one[-2:] == ["net=nanogpt_study", six[-1]] and six[-2] == "net=nanogpt_study_h6"  # the same datasets
    first = six[-1].split(",")[0]  # seed 0's dataset
    configs = [composed("train", [*overrides[:-1], first]) for overrides in (one, six)]
    assert (configs[1]["net"]["n_layer"], configs[1]["net"]["n_head"], configs[1]["net"]["n_embd"]) == (12, 6, 120)
    for c in configs:
        c["net"].pop("n_head"), c["wandb"].pop("name")  # the wandb run's name is the tag
        c.pop("tag"), c.pop("out_dir")
    assert configs[0] == configs[1]  # every other setting: model, data, optimizer, schedule, length, logging
    models = [build_model({**stage_config("train", [f"net={net}"])["net"], "vocab_size": 38})
              for net in ("nanogpt_study", "nanogpt_study_h6")]
    assert [m.num_params() for m in models] == [models[0].num_params()] * 2
    (analyze_call,) = [overrides for stage, overrides in calls if stage == "analyze"]
    analysed = analyze_call[-1].split("=", 1)[1].split(",")
    assert analysed[3:] == [f"stepbystep_random100_n4{seed}_nanogpt_study_h6" for seed in ("", "_seed1", "_seed2")]
    for stage, overrides in calls:
        places = [o for o in overrides if o.startswith(("out_dir=", "data.path=", "ckpt_dir="))]
        assert places and all(o.split("=", 1)[1].startswith("runs/scale/") for o in places), stage


def test_both_formats_at_the_studys_scale_train_by_one_recipe():
    """Issue 21: scale_direct_vs_stepbystep trains direct and step-by-step by one recipe (model, optimizer, length):
    each direct run's config is its step-by-step twin's but for the dataset it reads, at every count and seed."""
    calls = Plan([load(Experiment, "scale_direct_vs_stepbystep")], load(Profile, "scale"), [], route([])).calls()
    (train,) = [overrides for stage, overrides in calls if stage == "train"]
    tags = train[-1].split("=", 1)[1].split(",")
    direct = [t for t in tags if t.startswith("direct_")]
    assert len(tags) == 30 and sorted(t.replace("direct_", "stepbystep_", 1) for t in direct) == sorted(
        t for t in tags if t not in direct)

    def recipe(tag: str) -> dict:
        c = composed("train", [*train[:-1], f"data.tag={tag}"])
        c["wandb"].pop("name"), c["data"].pop("tag"), c["data"].pop("path"), c.pop("tag"), c.pop("out_dir")
        return c

    twins = [(recipe(t), recipe(t.replace("direct_", "stepbystep_", 1))) for t in direct[:2]]
    assert all(a == b for a, b in twins)
    assert (twins[0][0]["net"]["n_layer"], twins[0][0]["optimizer"]["learning_rate"]) == (12, 1e-3)
