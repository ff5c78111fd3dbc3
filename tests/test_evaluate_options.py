"""The evaluation stages' options, each watched where it acts: xlim and step= (refused in one line, nothing
written), direct= (the documents the model is run on), inputs without replacement, and the out-of-order
composition counts at the default and the reference sizes."""

import json
from math import comb
from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.evaluate
from core.errors import ConfigError, OutputError
from core.manifest import read_entry
from net.evaluate import COMPOSITION_STREAM, EvaluationError, input_rng
from pipeline.evaluate import run_inorder, run_outorder
from synthetic.compositions import displacement_of, n_functions_of, outorder_compositions
from tests.conftest import compose_config
from tests.test_evaluate import SMALL, eval_config, read_csv, write_checkpoints

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def runs(tmp_path, make_dataset):
    """make(*dataset overrides) -> (checkpoint folder of a tiny nanoGPT trained to step 30, results folder)."""

    def make(*overrides: str) -> tuple[Path, Path]:
        ckpts = tmp_path / f"ckpts{len(list(tmp_path.glob('ckpts*')))}"
        write_checkpoints(ckpts, make_dataset(*SMALL, *overrides), [0, 10, 20, 30])
        return ckpts, tmp_path / f"results_{ckpts.name}"

    return make


@pytest.fixture
def model_inputs(monkeypatch) -> list[torch.Tensor]:
    """Every batch the evaluated models' forward pass sees: the teacher-forced documents (B, doc_len - 1)."""
    seen = []
    load = pipeline.evaluate.load_model

    def recording(ckpt: dict, device) -> torch.nn.Module:
        model = load(ckpt, device)
        model.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
        return model

    monkeypatch.setattr(pipeline.evaluate, "load_model", recording)
    return seen


def test_xlim_and_step_are_refused_before_anything_is_written(runs):
    ckpts, out = runs()
    for xlim in ("[30,10]", "[0,10,20]"):
        with pytest.raises(ConfigError, match=r"xlim=\[.*\] must be \[first_step, last_step\]"):
            run_inorder(eval_config("i", ckpts, out, f"xlim={xlim}"))
    with pytest.raises(EvaluationError, match=r"xlim=\[40, None\] holds none of the checkpoint steps \(0..30\)"):
        run_inorder(eval_config("i", ckpts, out, "xlim=[40,null]"))
    with pytest.raises(EvaluationError, match=r"step=15 has no checkpoint in .*; available: \[0, 10, 20, 30\]"):
        run_outorder(eval_config("o", ckpts, out, "step=15", "max_per_pattern=1"))
    assert not out.exists()
    summary = run_inorder(eval_config("i", ckpts, out, "xlim=[10,20]", "nckpts=5", "nsamples=1"))
    assert [s["step"] for s in summary["steps"]] == [10, 20]
    assert run_outorder(eval_config("o", ckpts, out, "step=10", "max_per_pattern=1", "nsamples=1"))["step"] == 10


def test_direct_override_scores_direct_documents(runs, model_inputs):
    ckpts, out = runs()  # a step-by-step dataset: documents of 12 + 3 * 6 + 2 = 32 tokens, direct ones 18
    summary = run_inorder(eval_config("i", ckpts, out, "direct=true", "nckpts=1", "nsamples=2"))
    assert summary["direct"] is True and {x.size(1) for x in model_inputs} == {17}
    assert "y1_acc" not in read_csv(out / "inorder.csv")[0]
    model_inputs.clear()
    run_inorder(eval_config("i", ckpts, out, "nckpts=1", "nsamples=2", "overwrite=true"))
    assert {x.size(1) for x in model_inputs} == {31} and "y1_acc" in read_csv(out / "inorder.csv")[0]


def test_inputs_follow_the_datasets_with_replacement(runs, model_inputs):
    def repeats(*overrides: str) -> float:
        """Share of evaluated inputs x (positions 5..10 of a document) that repeat a token."""
        ckpts, out = runs(*overrides)
        model_inputs.clear()
        run_inorder(eval_config("i", ckpts, out, "nckpts=1", "nsamples=10"))
        x = torch.cat(model_inputs)[:, 5:11]
        return np.mean([len(set(row)) < 6 for row in x.tolist()])

    assert repeats("with_replacement=false") == 0.0
    assert repeats() > 0.5  # with replacement, 6 of 10 tokens repeat one 85% of the time


def pattern_counts(depth: int, n_functions: int, cap: int) -> tuple[int, int]:
    """(compositions, groups) of the out-of-order evaluation, counted by hand: a pattern picks the identity
    slots I and, among the others, the displaced slots D; it holds ((L-1)N)^|D| * N^(L-|I|-|D|) compositions,
    of which min(that, cap) are evaluated; a group is an (|I|, |D|) pair."""
    total = 0
    for i in range(depth + 1):
        for d in range(depth - i + 1):
            size = ((depth - 1) * n_functions) ** d * n_functions ** (depth - i - d)
            total += comb(depth, i) * comb(depth - i, d) * min(size, cap)
    groups = sum(1 for i in range(depth + 1) for _ in range(depth - i + 1))
    return total, groups


@pytest.mark.parametrize(("sizes", "expected"), [("cpu", 2_376), ("reference", 73_924)])
def test_outorder_counts_at_the_configured_sizes(sizes, expected):
    gen = compose_config("gen", [])
    depth, n_functions = gen.function.depth, gen.function.n_functions
    c = compose_config("eval", [f"sizes={sizes}"])
    comps = outorder_compositions(input_rng(c.seed, COMPOSITION_STREAM), depth, n_functions, c.max_per_pattern)
    groups = set(zip((depth - n_functions_of(comps)).tolist(), displacement_of(comps).tolist(), strict=True))
    assert (len(comps), len(groups)) == pattern_counts(depth, n_functions, c.max_per_pattern) == (expected, 21)
    assert len({comp.tobytes() for comp in comps}) == len(comps)  # no composition twice


def test_an_evaluation_records_its_precision_and_is_not_kept_across_a_change(runs):
    """The device that ran and the precision are recorded (the manifest entry's "ran", run.json's training
    precision); an evaluation of this config in another precision is not kept as this one (one line)."""
    ckpts, out = runs()
    args = ["nsamples=1", "device=cpu", "skip_complete=true"]
    run_inorder(eval_config("i", ckpts, out, *args))
    entry = read_entry(out, "inorder")
    assert entry.ran == {"device": "cpu", "precision": "float32"}
    assert entry.fingerprint["config"]["precision"] == "float32"
    assert json.loads((out / "run.json").read_text())["train"]["precision"] == "float32"
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["entries"]["inorder"]["fingerprint"]["config"]["precision"] = "bf16"  # as if evaluated on a GPU
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OutputError, match=r"holds an in-order evaluation of another config \(it differs in "
                                          r"config.precision: bf16 there, float32 here\), so this one is refused"):
        run_inorder(eval_config("i", ckpts, out, *args))
