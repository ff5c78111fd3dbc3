"""Evaluation: metrics through the real code with stand-in models of known accuracy, the out-of-order groups,
checkpoint selection, the result files, checkpoints from another device, and one-line errors."""

import csv
import io
import itertools
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from net.checkpoint import FORMAT_VERSION, checkpoint_path, save_checkpoint
from net.evaluate import (
    EvaluationError,
    evaluate_compositions,
    in_train_mask,
    inorder_summary,
    outorder_summary,
    samples_per_composition,
    select_checkpoints,
)
from net.model import build_model
from pipeline.evaluate import run_inorder, run_outorder
from synthetic.compositions import (
    displacement_of,
    inorder_compositions,
    n_functions_of,
    outorder_compositions,
    training_compositions,
)
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec
from tests.conftest import compose_config, run_script, stage_config
from tests.task_models import Oracle, RandomData, TrainOnly

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["function.depth=3", "function.n_functions=2", "function.split.n_compositions=5"]  # 27 in-order


def small_task(direct: bool = False, permute: bool = False, depth: int = 3, n_functions: int = 2):
    spec = TaskSpec(n_alphabets=10, seq_len=6, depth=depth, n_functions=n_functions, direct=direct)
    functions = sample_functions(np.random.default_rng(0), spec, frozenset({0} if permute else ()), repeat=False)
    return spec, functions


def scores_of(model, spec, functions, comps, nsamples=8, seed=0, batch_size=64, **kw):
    return evaluate_compositions(model, spec, functions, comps, nsamples=nsamples, seed=seed,
                                 batch_size=batch_size, device=CPU, **kw)


# ---- metrics, through the real evaluation code ----


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("permute", [False, True])
def test_oracle_scores_one_on_every_metric(direct, permute):
    spec, functions = small_task(direct, permute)
    comps = inorder_compositions(spec.depth, spec.n_functions)
    in_train = np.arange(len(comps)) % 3 == 0
    scores = scores_of(Oracle(spec, functions), spec, functions, comps, n_failures=3)
    summary = inorder_summary(spec, scores, comps, in_train)
    groups = [summary["overall"], summary["train"], summary["unseen"], *summary["by_n_functions"]]
    names = ["token_acc", "seq_acc", "tf_acc"] + ([] if direct else ["y1_acc", "y2_acc", "y3_acc"])
    assert all(g[name] == 1.0 for g in groups for name in names)
    assert all(g["token_acc_se"] == 0.0 for g in groups)
    assert scores.failures == []
    out = outorder_compositions(np.random.default_rng(0), spec.depth, spec.n_functions, 5)
    out_summary = outorder_summary(spec, scores_of(Oracle(spec, functions), spec, functions, out), out)
    assert all(g["token_acc"] == g["seq_acc"] == g["tf_acc"] == 1.0 for g in out_summary["groups"])


def test_uniform_random_model_scores_chance():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    scores = scores_of(RandomData(spec), spec, functions, comps, nsamples=100, batch_size=1000, n_failures=2)
    overall = inorder_summary(spec, scores, comps, np.zeros(len(comps), dtype=bool))["overall"]
    # 27 * 100 samples * 6 tokens: a standard error of 0.004 around 1/A = 0.1
    assert abs(overall["token_acc"] - 0.1) < 0.02
    assert abs(overall["tf_acc"] - 0.1) < 0.02
    assert abs(overall["y1_acc"] - 0.1) < 0.02
    assert overall["seq_acc"] < 0.01
    assert 0.002 < overall["token_acc_se"] < 0.006
    assert len(scores.failures) == 2


def test_model_right_only_on_training_compositions():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    train = training_compositions(np.random.default_rng(1), spec.depth, spec.n_functions, "random", 5)
    in_train = in_train_mask(comps, train)
    assert in_train.sum() == 5
    scores = scores_of(TrainOnly(spec, functions, train), spec, functions, comps)
    summary = inorder_summary(spec, scores, comps, in_train)
    assert summary["train"]["token_acc"] == summary["train"]["seq_acc"] == summary["train"]["tf_acc"] == 1.0
    assert summary["unseen"]["token_acc"] == summary["unseen"]["tf_acc"] == 0.0
    assert summary["unseen"]["n_compositions"] == 22 and summary["train"]["n_samples"] == 5 * 8
    np.testing.assert_array_equal(scores.token_acc, in_train.astype(float))


def test_inputs_come_from_the_seed_alone():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    model = RandomData(spec)
    a = scores_of(model, spec, functions, comps, batch_size=7)
    b = scores_of(model, spec, functions, comps, batch_size=1000)
    c = scores_of(model, spec, functions, comps, seed=1)
    np.testing.assert_array_equal(a.token_acc, b.token_acc)
    np.testing.assert_array_equal(a.step_acc, b.step_acc)
    assert not np.array_equal(a.token_acc, c.token_acc)


def test_small_groups_get_more_samples():
    groups = np.array([0, 0, 0, 1, 2, 2])
    assert samples_per_composition(groups, 5, 12).tolist() == [5, 5, 5, 12, 6, 6]
    assert samples_per_composition(groups, 5, 0).tolist() == [5] * 6
    pairs = np.array([[0, 1], [0, 1], [1, 0]])
    assert samples_per_composition(pairs, 1, 10).tolist() == [5, 5, 10]


def test_unequal_samples_weigh_compositions_equally():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)[:4]
    train = comps[:1]
    n_samples = np.array([50, 2, 2, 2])
    scores = scores_of(TrainOnly(spec, functions, train), spec, functions, comps, nsamples=n_samples)
    summary = inorder_summary(spec, scores, comps, in_train_mask(comps, train))
    assert summary["overall"]["token_acc"] == 0.25 and summary["overall"]["n_samples"] == 56


# ---- out-of-order groups against hand-counted combinatorics (L=3, N=2) ----

# (#identities, displacement) -> compositions. A slot is the identity (1 way), its own level's function
# (N=2 ways) or another level's function ((L-1)*N = 4 ways): patterns x ways, e.g. (1, 1): 3*2 patterns x 2*4.
HAND_COUNTED = {(0, 0): 8, (0, 1): 48, (0, 2): 96, (0, 3): 64, (1, 0): 12, (1, 1): 48, (1, 2): 48,
                (2, 0): 6, (2, 1): 12, (3, 0): 1}
# with at most 3 per pattern: patterns x min(pattern size, 3)
HAND_COUNTED_CAP3 = {(0, 0): 3, (0, 1): 9, (0, 2): 9, (0, 3): 3, (1, 0): 9, (1, 1): 18, (1, 2): 9,
                     (2, 0): 6, (2, 1): 9, (3, 0): 1}


def brute_force_labels(comp) -> tuple[int, int]:
    """(#identities, displacement) of one composition, straight from the definitions."""
    return sum(i == 0 for _, i in comp), sum(d != k for k, (d, _) in enumerate(comp))


def test_outorder_groups_match_hand_counts():
    L, N = 3, 2
    comps = outorder_compositions(np.random.default_rng(0), L, N, max_per_pattern=10**6)
    every = [c for c in itertools.product(*[[(k, 0)] + [(d, i) for d in range(L) for i in range(1, N + 1)]
                                            for k in range(L)])]
    assert len(every) == 7**3 == sum(HAND_COUNTED.values())
    assert sorted(map(str, comps.tolist())) == sorted(str([list(s) for s in c]) for c in every)
    labels = [brute_force_labels(c) for c in comps.tolist()]
    assert Counter(labels) == HAND_COUNTED
    assert np.array_equal(L - n_functions_of(comps), [n for n, _ in labels])
    assert np.array_equal(displacement_of(comps), [d for _, d in labels])
    spec, functions = small_task()
    summary = outorder_summary(spec, scores_of(Oracle(spec, functions), spec, functions, comps, nsamples=1), comps)
    assert {(g["n_identity"], g["displacement"]): g["n_compositions"] for g in summary["groups"]} == HAND_COUNTED


def test_outorder_groups_with_a_cap_per_pattern():
    comps = outorder_compositions(np.random.default_rng(0), 3, 2, max_per_pattern=3)
    assert len({str(c) for c in comps.tolist()}) == len(comps)
    assert Counter(brute_force_labels(c) for c in comps.tolist()) == HAND_COUNTED_CAP3


# ---- checkpoint selection ----

STEPS = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1050]
CKPTS = [(s, Path(f"ckpt_{s}.pt")) for s in STEPS]


@pytest.mark.parametrize(("xlim", "nckpts", "expected"), [
    ((None, None), 3, [0, 600, 1050]),
    ((None, None), 2, [0, 1050]),
    ((None, None), 1, [1050]),
    ((None, None), 50, STEPS),
    ((200, 700), 2, [200, 700]),
    ((200, None), 4, [200, 500, 800, 1050]),
    ((None, 450), 3, [0, 200, 400]),
])
def test_select_checkpoints(xlim, nckpts, expected):
    assert [s for s, _ in select_checkpoints(CKPTS, xlim, nckpts)] == expected


def test_select_checkpoints_spreads_distinct_steps_with_both_ends():
    for n in range(1, 30):
        ckpts = [(10 * s, Path()) for s in range(n)]
        for k in range(2, n + 1):
            chosen = [s for s, _ in select_checkpoints(ckpts, (None, None), k)]
            assert len(set(chosen)) == k and chosen == sorted(chosen)
            assert chosen[0] == 0 and chosen[-1] == 10 * (n - 1)


def test_select_checkpoints_outside_xlim_is_an_error():
    with pytest.raises(EvaluationError, match=r"xlim=\[2000, None\] holds none of the checkpoint steps \(0..1050\)"):
        select_checkpoints(CKPTS, (2000, None), 3)


# ---- the stages end to end, on checkpoints of a tiny random nanoGPT ----

TINY_NET = {"kind": "nanogpt", "context_size": 32, "n_layer": 1, "n_head": 1, "n_embd": 16}


def write_checkpoints(ckpt_dir: Path, data_path: Path, steps: list[int]) -> None:
    meta = json.loads((data_path / "meta.json").read_text())
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for step in steps:
        torch.manual_seed(step)
        model = build_model({**TINY_NET, "vocab_size": meta["vocab_size"]})
        save_checkpoint({
            "format_version": FORMAT_VERSION, "step": step, "model_args": model.model_args,
            "model": model.state_dict(), "optimizer": {}, "data": {"path": str(data_path), "meta": meta},
            "train_config": {}, "rng": {}, "metrics": {},
        }, checkpoint_path(ckpt_dir, step))


def as_saved_on_cuda(path: Path) -> None:
    """Rewrite a CPU checkpoint so that its tensors say they live on cuda:0, as one written on a GPU does."""
    with zipfile.ZipFile(path) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    name = next(n for n in entries if n.endswith("/data.pkl"))
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"  # pickled location strings
    assert cpu in entries[name]
    entries[name] = entries[name].replace(cpu, cuda)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


@pytest.fixture
def run_dirs(tmp_path, make_dataset):
    data = make_dataset(*SMALL)
    ckpts = tmp_path / "ckpts"
    write_checkpoints(ckpts, data, [0, 10, 20, 30])
    return data, ckpts, tmp_path / "results"


def eval_config(stage: str, ckpts: Path, out: Path, *overrides: str) -> dict:
    return stage_config("eval", [f"ckpt_dir={ckpts}", f"out_dir={out}", "nsamples=4", "min_group_samples=0",
                                 *overrides])


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_both_stages_write_their_results(run_dirs, capsys):
    _, ckpts, out = run_dirs
    at_least = "min_group_samples=30"
    inorder = run_inorder(eval_config("i", ckpts, out, "nckpts=3", at_least))
    outorder = run_outorder(eval_config("o", ckpts, out, "max_per_pattern=3", at_least))
    rows = read_csv(out / "inorder.csv")
    assert list(rows[0]) == ["run", "step", "composition", "n_functions", "displacement", "in_train", "token_acc",
                             "seq_acc", "tf_acc", "n_samples", "y1_acc", "y2_acc", "y3_acc", "tf_y1_acc", "tf_y2_acc",
                             "tf_y3_acc"]
    assert len(rows) == 3 * 27 and [r["step"] for r in rows[::27]] == ["0", "20", "30"]
    assert rows[5]["composition"] == "T0_0 T1_1 T2_2" and rows[5]["n_functions"] == "2"
    assert sum(int(r["in_train"]) for r in rows) == 3 * 5 and all(r["displacement"] == "0" for r in rows)
    orows = read_csv(out / "outorder.csv")
    assert list(orows[0]) == ["run", "step", "composition", "n_identity", "displacement", "token_acc", "seq_acc",
                              "tf_acc", "in_train", "n_samples"]
    assert len(orows) == sum(HAND_COUNTED_CAP3.values()) and all(r["step"] == "30" for r in orows)
    summary = json.loads((out / "summary.json").read_text())
    written = {k: v for k, v in summary["inorder"].items() if k != "files"}
    assert written == json.loads(json.dumps(inorder)) and summary["outorder"]["step"] == 30
    assert {k: v for k, v in summary["outorder"].items() if k != "files"} == json.loads(json.dumps(outorder))
    assert [s["step"] for s in summary["inorder"]["steps"]] == [0, 20, 30]
    last = summary["inorder"]["steps"][-1]
    groups = [last["train"], last["unseen"], *last["by_n_functions"], *summary["outorder"]["groups"]]
    assert min(g["n_samples"] for g in groups) >= 30
    assert last["by_n_functions"][0]["n_samples"] == 30  # the all-identity composition alone: raised from 4
    assert sum(int(r["n_samples"]) for r in rows[:27]) == last["overall"]["n_samples"]
    run = json.loads((out / "run.json").read_text())  # for 04_report.py
    assert run["model"]["kind"] == "nanogpt" and run["data"]["function"]["depth"] == 3 and run["tag"]
    text = capsys.readouterr().out
    assert "in-order: 27 compositions" in text and "failing samples at step 30:" in text
    assert "out-of-order at step 30" in text and text.count("    generated  ") == 3 + 3
    assert not list(out.glob(".*tmp*"))  # nothing half-written left behind


def test_checkpoint_saved_on_another_device_evaluates_on_cpu(run_dirs):
    _, ckpts, out = run_dirs
    as_saved_on_cuda(checkpoint_path(ckpts, 30))
    if not torch.cuda.is_available():  # the rewrite really makes a GPU checkpoint
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(checkpoint_path(ckpts, 30), weights_only=True)
    config = eval_config("o", ckpts, out, "device=cpu", "max_per_pattern=3")
    summary = run_outorder(config)
    assert summary["step"] == 30 and summary["model"]["n_embd"] == 16
    assert summary["overall"]["n_compositions"] == sum(HAND_COUNTED_CAP3.values())


def test_reference_sizes_are_one_override_away():
    cpu, ref = compose_config("eval", []), compose_config("eval", ["sizes=reference"])
    assert (cpu.nckpts, cpu.nsamples, cpu.min_group_samples) == (6, 20, 420)
    assert (ref.nckpts, ref.nsamples, ref.min_group_samples) == (20, 100, 0)
    assert (cpu.max_per_pattern, ref.max_per_pattern) == (10, 500)


# ---- bad input fails in one line, through the real command line ----


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_input_fails_in_one_line(tmp_path, run_dirs, make_dataset):
    _, ckpts, out = run_dirs
    line = one_line_error(run_script("03_evaluate_i.py", "ckpt_tag=no_such_run", cwd=tmp_path))
    assert line == "error: ckpt_dir='ckpts/no_such_run' does not exist; check ckpt_tag or train with 02_train.py"
    (tmp_path / "ckpts" / "empty").mkdir()
    line = one_line_error(run_script("03_evaluate_o.py", "ckpt_tag=empty", cwd=tmp_path))
    assert line == "error: ckpt_dir='ckpts/empty' holds no checkpoints (ckpt_<step>.pt)"
    other = make_dataset(*SMALL, "seed=1")
    line = one_line_error(run_script("03_evaluate_i.py", f"ckpt_dir={ckpts}", f"data_path={other}", cwd=tmp_path))
    assert "was trained on dataset" in line and "functions.json differs" in line
    line = one_line_error(run_script("03_evaluate_o.py", f"ckpt_dir={ckpts}", "lstm=true", cwd=tmp_path))
    assert "lstm=true disagrees with checkpoint" in line
