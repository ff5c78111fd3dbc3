"""sample.py: a checkpoint's greedy generation next to the truth, decoded to text with the differing tokens marked;
the composition and input parsed from text, or drawn from the seed; bad text refused in one line."""

import re

import numpy as np
import pytest

from core.errors import PipelineError
from pipeline import generate, sample
from synthetic.dataset import load_dataset
from tests.conftest import TINY_DATA, run_script, stage_config
from tests.task_models import Oracle, WrongAt
from tests.test_evaluate import SMALL, write_checkpoints

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COMPOSITION, INPUT = "T0_1 T1_0 T2_2", "X3 X1 X4 X1 X5 X9"  # SMALL: 3 levels of 2 functions, inputs of 6 tokens


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """(dataset, checkpoint folder of a tiny nanoGPT trained to step 10)."""
    tmp = tmp_path_factory.mktemp("sample")
    data = tmp / "data"
    generate.run(stage_config("gen", [*TINY_DATA, *SMALL, f"out_dir={data}"]))
    write_checkpoints(tmp / "ckpts", data, [0, 10])
    return data, tmp / "ckpts"


def sample_config(ckpts, *overrides: str) -> dict:
    """The stand-in models are CPU modules: device=cpu, not auto (CUDA where there is a GPU)."""
    return stage_config("sample", [f"ckpt_dir={ckpts}", "device=cpu", *overrides])


def test_given_composition_and_input_against_the_function_tables(run_dirs, monkeypatch, capsys):
    data, ckpts = run_dirs
    ds = load_dataset(data)
    monkeypatch.setattr(sample, "load_model", lambda ckpt, device: Oracle(ds.spec, ds.functions))
    (s,) = sample.run(sample_config(ckpts, f"composition={COMPOSITION}", f"input={INPUT}"))
    assert s.composition.tolist() == [[0, 1], [1, 0], [2, 2]]
    x = np.array([[3, 1, 4, 1, 5, 9]])
    y1 = ds.functions.apply(np.array([0]), np.array([1]), x)
    y3 = ds.functions.apply(np.array([2]), np.array([2]), y1)  # slot 1 is the identity
    starts = ds.spec.step_starts
    assert s.truth[starts[0] : starts[0] + 6].tolist() == y1[0].tolist()
    assert s.truth[starts[1] : starts[1] + 6].tolist() == y1[0].tolist()
    assert s.truth[starts[2] : starts[2] + 6].tolist() == y3[0].tolist()
    assert np.array_equal(s.generated, s.truth)
    text = capsys.readouterr().out
    assert "ckpt_10.pt (step 10)" in text and f"composition  {COMPOSITION}   (in-order, 2 non-identity" in text
    assert f"input        {INPUT}" in text and "the model writes the truth" in text and "*" not in text


def test_differing_tokens_are_marked(run_dirs, monkeypatch, capsys):
    data, ckpts = run_dirs
    ds = load_dataset(data)
    spec = ds.spec
    wrong_at = spec.step_starts[1] + 2  # third token of y2
    monkeypatch.setattr(sample, "load_model", lambda ckpt, device: WrongAt(spec, ds.functions, [wrong_at]))
    (s,) = sample.run(sample_config(ckpts, f"composition={COMPOSITION}", f"input={INPUT}", "step=0"))
    assert np.flatnonzero(s.generated != s.truth).tolist() == [wrong_at]
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if re.match(r"  y\d ", line)}
    assert list(rows) == ["y1", "y2", "y3"]
    truth, model = rows["y2"][:6], rows["y2"][6:]
    assert [t for t in model if t.endswith("*")] == [model[2]] and model[2] != truth[2] + "*"
    assert not any("*" in t for t in rows["y1"] + rows["y3"])
    assert "ckpt_0.pt (step 0)" in text and f"1 of {spec.doc_len - spec.prompt_len} generated tokens differ" in text
    monkeypatch.setattr(sample, "load_model", lambda ckpt, device: WrongAt(spec, ds.functions, [wrong_at + 4]))
    sample.run(sample_config(ckpts, f"composition={COMPOSITION}", f"input={INPUT}"))
    assert "1 of them separators" in capsys.readouterr().out  # the separator after y2: no output token marked


def test_random_prompts_come_from_the_seed(run_dirs):
    _, ckpts = run_dirs
    first = sample.run(sample_config(ckpts, "nsamples=4"))
    again = sample.run(sample_config(ckpts, "nsamples=4"))
    other = sample.run(sample_config(ckpts, "nsamples=4", "seed=1"))
    assert len(first) == 4 and all(np.array_equal(a.truth, b.truth) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.truth, b.truth) for a, b in zip(first, other, strict=True))
    assert all((s.composition[:, 0] == [0, 1, 2]).all() for s in first)  # random compositions are in-order
    fixed = sample.run(sample_config(ckpts, "nsamples=3", f"composition={COMPOSITION}"))
    assert all(s.composition.tolist() == [[0, 1], [1, 0], [2, 2]] for s in fixed)
    assert len({tuple(s.truth) for s in fixed}) > 1  # the inputs are drawn anew


@pytest.mark.parametrize(("overrides", "message"), [
    (["composition=T0_1 T1_0"], "composition='T0_1 T1_0' has 2 task token(s); this model's compositions have 3, "
                                "e.g. composition=\"T0_0 T1_1 T2_2\", or composition=random"),
    (["composition=T0_1 T1_3 T2_2"], "composition: 'T1_3' is not a task token; allowed: T<level>_<function> with "
                                     "level 0..2 and function 0..2 (0 = identity)"),
    (["composition=T0_1 X1 T2_2"], "composition: 'X1' is not a task token"),
    (["composition=T0_1 T2_0 T2_2"], "composition: T2_0 in slot 1 is the identity of another level; the identity "
                                     "in slot 1 is T1_0"),
    (["input=X1 X2 X3 X4 X5 X10"], "input: 'X10' is not a data token; allowed: X0..X9"),
    (["input=X1 X2"], "input='X1 X2' has 2 data token(s); this model's inputs have 6"),
    (["step=5"], "step=5 has no checkpoint in"),
    ([f"composition={COMPOSITION}", f"input={INPUT}", "nsamples=2"], "nsamples=2 needs composition=random or "
                                                                     "input=random"),
    (["threads=many"], "threads='many' must be auto or an integer >= 0"),
])
def test_bad_text_is_one_line(run_dirs, overrides, message):
    _, ckpts = run_dirs
    with pytest.raises(PipelineError, match=re.escape(message)) as err:
        sample.run(sample_config(ckpts, *overrides))
    assert "\n" not in str(err.value)


def test_script_prints_and_logs_the_sample(run_dirs, tmp_path):
    _, ckpts = run_dirs
    result = run_script("sample.py", f"ckpt_dir={ckpts}", "composition=T0_1 T1_0 T2_2", "input=X3 X1 X4 X1 X5 X9",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sample 1 of 1" in result.stdout and "  y3  " in result.stdout
    assert (tmp_path / "logs" / "hydra" / "sample.log").read_text() == result.stdout  # the job's log: the same text
    bad = run_script("sample.py", f"ckpt_dir={ckpts}", "input=X3 Y1 X4 X1 X5 X9", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr == "error: input: 'Y1' is not a data token; allowed: X0..X9\n"
