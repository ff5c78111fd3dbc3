"""net/train.py, pipeline/train.py and 02_train.py: learning, schedule, optimizer groups, checkpoints, exact
resume, metrics, wandb, one-line config errors."""

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import parse
from core.errors import ConfigError, OutputError
from core.manifest import read_entry
from net.checkpoint import list_checkpoints, load_checkpoint, load_model, save_checkpoint
from net.device import autocast_context, resolve_device
from net.model import build_model
from net.run_log import load_metrics
from net.train import Schedule, configure_optimizer, teacher_forced_metrics
from pipeline import generate
from pipeline import train as train_stage
from synthetic.compositions import inorder_compositions
from synthetic.dataset import load_dataset
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec
from tests.conftest import ROOT, ForkRunner, snapshot, stage_config
from tests.task_models import NoisyOracle, Oracle

# A task small enough to learn in seconds: one level, one bijection of 8 tokens, inputs of 2 (8-token documents).
TINY_TASK = ["n_alphabets=8", "seq_len=2", "function.depth=1", "function.n_functions=1",
             "function.split.n_compositions=2", "function.split.n_identity=0"]
TINY_NET = ["net.n_layer=1", "net.n_head=2", "net.n_embd=16", "net.context_size=16"]
TINY_LSTM = ["net=lstm", "net.n_layer=1", "net.n_embd=16", "net.context_size=16"]
# These tests assert CPU float32 training (exact resume, float32 recomputations, bf16 only with bf16_cpu=true):
# device=auto would train on CUDA in bf16 on a machine with a GPU.
CPU = ["device=cpu"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny"
    overrides = ["ndocuments=1024", "neval_documents=100", f"out_dir={out}", *TINY_TASK]
    generate.run(stage_config("gen", overrides))
    return out


def train(data: Path, out_dir: Path, *overrides: str) -> dict:
    net = TINY_LSTM if "net=lstm" in overrides else TINY_NET
    return train_stage.run(stage_config("train", [f"data.path={data}", f"out_dir={out_dir}", *CPU, *net,
                                                  *overrides]))


def settings(*overrides: str) -> train_stage.TrainConfig:
    return parse(train_stage.TrainConfig, stage_config("train", list(overrides)))


def state_equal(a: dict, b: dict) -> bool:
    """Bit-for-bit equality of two nested state dicts (tensors, numbers, lists, dicts)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(state_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(state_equal, a, b))
    return a == b


@pytest.mark.parametrize(
    "overrides",
    [
        ["net.n_embd=64", "epochs=20"],  # 640 steps
        ["net=lstm", "net.n_embd=64", "epochs=10", "optimizer.learning_rate=1e-2"],  # 320 steps
    ],
    ids=["nanogpt", "lstm"],
)
def test_learns_a_tiny_dataset(data, tmp_path, overrides):
    common = ["data.batch_size=32", "optimizer.learning_rate=3e-3", "optimizer.decay_lr=false",
              "log.eval_interval=1000"]
    metrics = train(data, tmp_path / "run", *common, *overrides)
    assert metrics["eval_train/tf_acc"] == 1.0 and metrics["eval_all/tf_acc"] == 1.0, metrics


def schedule(max_steps: int, *overrides: str) -> Schedule:
    o = settings(*overrides).optimizer
    return Schedule(o.learning_rate, o.min_lr, o.warmup_iters, o.decay_lr, max_steps)


def test_learning_rate_schedule():
    s = schedule(110, "optimizer.warmup_iters=10", "optimizer.learning_rate=1e-3", "optimizer.min_lr=1e-4")
    lr = [s.lr(step) for step in range(111)]
    assert lr[0] == pytest.approx(1e-3 / 11) and lr[9] == pytest.approx(1e-3 * 10 / 11)  # linear warmup
    assert lr[10] == pytest.approx(1e-3) and max(lr) == lr[10]  # peak right after warmup
    assert lr[60] == pytest.approx((1e-3 + 1e-4) / 2)  # the cosine's midpoint
    assert lr[110] == pytest.approx(1e-4) and min(lr[10:]) == lr[110]  # min_lr at the end
    assert all(a >= b for a, b in zip(lr[10:], lr[11:], strict=False))
    flat = schedule(100, "optimizer.decay_lr=false")
    assert {flat.lr(step) for step in (0, 50, 100)} == {3e-4}


@pytest.mark.parametrize("args", [{"kind": "nanogpt", "bias": True}, {"kind": "lstm"}], ids=["nanogpt", "lstm"])
def test_weight_decay_groups(args):
    model = build_model({**args, "vocab_size": 33})
    o = settings().optimizer
    optimizer = configure_optimizer(model, o.learning_rate, o.weight_decay, (o.beta1, o.beta2), torch.device("cpu"))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed == {name for name, p in model.named_parameters() if p.dim() >= 2}
    assert {names[id(p)] for p in no_decay["params"]} == {name for name, p in model.named_parameters() if p.dim() == 1}
    assert "wte.weight" in decayed and not any("bias" in name or "ln_" in name for name in decayed)
    assert decay["fused"]


def independent_tf_metrics(model: torch.nn.Module, docs: torch.Tensor, m: int) -> dict[str, float]:
    """The teacher-forced scores from their definitions (docs/reference.md, Training): `loss` over every next
    token of the documents, `tf_*` over y_L, the last m tokens, each predicted from the true tokens before it."""
    n, T = docs.shape
    with torch.no_grad():
        logp = torch.log_softmax(model(docs[:, :-1]).double(), dim=-1)  # (n, T-1, V): row t predicts token t+1
    nll = -logp.gather(-1, docs[:, 1:, None]).squeeze(-1)  # (n, T-1)
    final = range(T - m, T)  # the positions of y_L
    right = torch.stack([logp[:, t - 1].argmax(-1) == docs[:, t] for t in final], dim=1)  # (n, m)
    return {"loss": nll.mean().item(), "tf_loss": torch.stack([nll[:, t - 1] for t in final], 1).mean().item(),
            "tf_acc": right.double().mean().item(), "tf_seq_acc": right.all(dim=1).double().mean().item()}


class WrongOnFinalOutput(Oracle):
    """The oracle, except that every token of y_L it predicts is wrong (the intermediate steps stay right)."""

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        nxt = super().next_tokens(idx)
        final = torch.arange(idx.size(1)) >= self.spec.output_start - 1  # columns that predict y_L
        return torch.where(final, (nxt + 1) % self.spec.n_alphabets, nxt)


def test_teacher_forced_metrics_score_the_final_output(one_torch_thread):
    spec = TaskSpec(n_alphabets=10, seq_len=3, depth=3, n_functions=2)
    functions = sample_functions(np.random.default_rng(0), spec, frozenset(), repeat=False)
    comps = inorder_compositions(spec.depth, spec.n_functions)
    x = sample_inputs(np.random.default_rng(1), len(comps) * 4, spec)
    docs = torch.from_numpy(make_documents(spec, functions, np.repeat(comps, 4, axis=0), x))  # (108, 21)
    wrong_last = teacher_forced_metrics(WrongOnFinalOutput(spec, functions), docs, spec.output_start, batch_size=50)
    assert wrong_last["tf_acc"] == wrong_last["tf_seq_acc"] == 0.0  # although most other columns are right
    noisy = NoisyOracle(spec, functions, one_in=3)
    got = teacher_forced_metrics(noisy, docs, spec.output_start, batch_size=50)
    expected = independent_tf_metrics(noisy, docs, spec.seq_len)
    assert 0.3 < expected["tf_acc"] < 0.9 and 0.0 < expected["tf_seq_acc"] < expected["tf_acc"]
    assert got == pytest.approx(expected, rel=1e-6)


def test_checkpoints_metrics_and_refusals(data, tmp_path):
    out = tmp_path / "run"
    final = train(data, out, "epochs=1", "data.batch_size=32", "log.eval_interval=10", "log.log_interval=4")
    assert [step for step, _ in list_checkpoints(out)] == [0, 10, 20, 30, 32]
    ds = load_dataset(data)
    for step, path in list_checkpoints(out):
        raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickle needed
        assert raw["step"] == step and raw["model_args"]["kind"] == "nanogpt" and raw["model_args"]["vocab_size"] == 13
        assert raw["data"]["path"] == str(data) and raw["data"]["meta"] == ds.meta
        assert raw["train_config"]["out_dir"] == str(out) and bool(raw["optimizer"]["state"]) == (step > 0)
        model = load_model(load_checkpoint(path), "cpu")
        assert not model.training
        for corpus in ("eval_train", "eval_all"):  # the stored scores, recomputed from their definitions
            expected = independent_tf_metrics(model, torch.from_numpy(getattr(ds, corpus).astype("int64")),
                                              ds.config["seq_len"])
            for name, value in expected.items():
                assert raw["metrics"][f"{corpus}/{name}"] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, name)
    records = load_metrics(out / "metrics.jsonl")
    evals = [r for r in records if r["event"] == "eval"]
    trains = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in evals] == [0, 10, 20, 30, 32]
    assert [r["step"] for r in trains] == [4, 8, 12, 16, 20, 24, 28, 32]
    assert all({"lr", "loss", "tokens_per_s"} <= set(r) for r in trains)
    assert all(f"{c}/{k}" in r for r in evals for c in ("eval_train", "eval_all")
               for k in ("loss", "tf_loss", "tf_acc", "tf_seq_acc"))
    assert final == {k: v for k, v in evals[-1].items() if k != "event"}

    with pytest.raises(OutputError, match="already holds this very training run; pass skip_complete=true.*tag=.*"
                       "overwrite=true deletes 5 checkpoint"):
        train(data, out, "epochs=1", "data.batch_size=32", "log.eval_interval=10", "log.log_interval=4")
    with pytest.raises(OutputError, match="holds a training run of another config .it differs in epochs: 1 there, 2 "
                       "here., so this one is refused; write it elsewhere with another tag="):
        train(data, out, "epochs=2", "data.batch_size=32", "log.eval_interval=10", "log.log_interval=4")
    train(data, out, "epochs=1", "data.batch_size=512", "overwrite=true")
    assert [step for step, _ in list_checkpoints(out)] == [0, 2]
    assert [r["step"] for r in load_metrics(out / "metrics.jsonl") if r["event"] == "eval"] == [0, 2]


def test_corrupt_newest_checkpoint_is_reported_and_resume_is_exact(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["epochs=1", "data.batch_size=32", "log.eval_interval=10", "net.dropout=0.1"]  # dropout draws RNG
    train(data, out, *args)
    reference = load_checkpoint(out / "ckpt_32.pt")
    (out / "ckpt_32.pt").write_bytes((out / "ckpt_32.pt").read_bytes()[:5000])  # a truncated newest checkpoint
    (out / "ckpt_30.pt").write_bytes(b"garbage")
    capsys.readouterr()
    train(data, out, *args, "resume=true")
    err = capsys.readouterr().err
    assert "ckpt_32.pt is corrupt or truncated" in err and "ckpt_30.pt is corrupt or truncated" in err
    resumed = load_checkpoint(out / "ckpt_32.pt")
    assert state_equal(resumed["model"], reference["model"])
    assert state_equal(resumed["optimizer"], reference["optimizer"])
    assert [r["step"] for r in load_metrics(out / "metrics.jsonl") if r["event"] == "eval"] == [0, 10, 20, 30, 32]


def test_kill_while_writing_a_checkpoint_then_resume_is_bit_identical(data, tmp_path):
    """SIGKILL at a known point: half of ckpt_75.pt written under its temporary name, after training steps and
    metrics past ckpt_50. The older checkpoint stays usable, resume cleans up and ends where an unbroken run does."""
    args = [f"data.path={data}", *CPU, *TINY_NET, "epochs=3", "data.batch_size=32", "log.eval_interval=25",
            "log.log_interval=10", "net.dropout=0.1"]  # 96 steps; dropout draws from the RNG a resume restores
    killed = tmp_path / "killed"
    died = subprocess.run([sys.executable, str(ROOT / "tests" / "killed_stage.py"), "train", "ckpt_75.pt", *args,
                           f"out_dir={killed}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]  # killed there, not finished
    assert [step for step, _ in list_checkpoints(killed)] == [0, 25, 50]
    assert len(list(killed.glob(".ckpt_75.pt.tmp-*"))) == 1  # the half-written checkpoint
    assert load_checkpoint(killed / "ckpt_50.pt")["step"] == 50  # the previous one is whole
    logged = load_metrics(killed / "metrics.jsonl")  # past ckpt_50: to be dropped and logged again
    assert [r["step"] for r in logged if r["event"] == "eval"] == [0, 25, 50, 75] and logged[-1]["step"] == 75

    train_stage.run(stage_config("train", [*args, f"out_dir={killed}", "resume=true"]))
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".")]  # the temporary file is gone
    whole = tmp_path / "whole"
    train_stage.run(stage_config("train", [*args, f"out_dir={whole}"]))
    a, b = load_checkpoint(killed / "ckpt_96.pt"), load_checkpoint(whole / "ckpt_96.pt")
    assert state_equal(a["model"], b["model"]) and state_equal(a["optimizer"], b["optimizer"])
    assert a["metrics"] == b["metrics"]
    records = load_metrics(killed / "metrics.jsonl")  # complete, no duplicates from the killed part
    assert [r["step"] for r in records if r["event"] == "eval"] == [0, 25, 50, 75, 96]
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(10, 96, 10)) + [96]


def test_resume_refuses_another_net_another_dataset_and_overwrite(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"

    def generate_data(*overrides: str) -> None:
        generate.run(stage_config("gen", ["ndocuments=256", "neval_documents=20", f"out_dir={data}", *TINY_TASK,
                                          "overwrite=true", *overrides]))

    generate_data()
    args = ["data.batch_size=128", "log.eval_interval=1"]  # 2 steps, a checkpoint at each
    train(data, out, *args)
    (out / "ckpt_2.pt").unlink()  # unfinished: resume=true would continue it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match=r"another config \(it differs in net.n_embd: 16 there, 32 here\), so this "
                                          r"one cannot resume"):
        train(data, out, *args, "resume=true", "net.n_embd=32")
    with pytest.raises(ConfigError, match="resume=true and overwrite=true exclude each other"):
        train(data, out, *args, "resume=true", "overwrite=true")
    with pytest.raises(ConfigError, match="^skip_complete=true and overwrite=true exclude each other; pick one$"):
        train(data, out, *args, "skip_complete=true", "overwrite=true")  # as every other stage refuses the pair
    generate_data("seed=1")  # the same folder and keys, other functions and documents
    with pytest.raises(ConfigError, match=f"out_dir='{out}' was trained on another dataset"):
        train(data, out, *args, "resume=true")
    generate_data("n_alphabets=9")  # a larger vocabulary: net.vocab_size=null makes this another net
    with pytest.raises(ConfigError, match=f"out_dir='{out}' holds a run of another net"):
        train(data, out, *args, "resume=true")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # every refusal left the run as it was


def test_wandb_offline_writes_files_and_disabled_writes_none(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb_off"))
    train(data, tmp_path / "off", "data.batch_size=256", "wandb.mode=offline")
    runs = list((tmp_path / "wb_off" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    import wandb

    assert wandb.run is None  # finished
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb_none"))
    monkeypatch.setenv("WANDB_MODE", "offline")  # the config's `disabled` wins: nothing is started
    train(data, tmp_path / "none", "data.batch_size=256")
    assert not (tmp_path / "wb_none").exists() and not (tmp_path / "wandb").exists()
    assert load_metrics(tmp_path / "none" / "metrics.jsonl")
    wandb.teardown()  # the process's wandb service keeps this test's WANDB_DIR for the next test otherwise


def test_wandb_run_is_finished_when_training_fails(data, tmp_path, monkeypatch):
    finished = []

    class FakeRun:
        id = "fake"

        def log(self, data, step):
            pass

        def finish(self, exit_code=0):
            finished.append(exit_code)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pipeline.train.start_wandb", lambda *args: FakeRun())
    monkeypatch.setattr("pipeline.train.save_checkpoint", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train(data, tmp_path / "run", "data.batch_size=256")
    assert finished == [1]


@pytest.mark.parametrize(("device", "bf16", "fp32"), [
    ("cpu", ["bf16_cpu=true"], ["bf16=true"]),
    pytest.param("cuda", ["bf16=true"], ["bf16=false", "bf16_cpu=true"], marks=CUDA),
], ids=["cpu", "cuda"])
def test_bf16_only_when_asked(data, tmp_path, monkeypatch, device, bf16, fp32):
    """A run trains and evaluates under bf16 autocast when its device's switch asks for it (bf16_cpu on the CPU,
    bf16 on CUDA), and in float32 otherwise, whatever the other device's switch says."""
    seen = set()  # (training?, dtype of the head's output)

    def spied_model(args: dict) -> torch.nn.Module:
        model = build_model(args)
        model.lm_head.register_forward_hook(lambda module, _, out: seen.add((module.training, out.dtype)))
        return model

    monkeypatch.setattr(train_stage, "build_model", spied_model)
    for name, overrides, dtype in (("bf16", bf16, torch.bfloat16), ("fp32", fp32, torch.float32)):
        seen.clear()
        train(data, tmp_path / name, f"device={device}", "data.batch_size=256", "log.eval_interval=2", *overrides)
        assert seen == {(True, dtype), (False, dtype)}, name


def test_device_and_autocast():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device=tpu is not auto, cpu, cuda"):
        resolve_device("tpu")
    with autocast_context(torch.device("cpu"), True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_context(torch.device("cpu"), False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here, so device=cuda is not refused")
def test_device_cuda_is_refused_without_a_gpu():
    with pytest.raises(ConfigError, match="device=cuda but CUDA is not available"):
        resolve_device("cuda")


@CUDA
def test_device_cuda_is_the_gpu():
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match=f"only {torch.cuda.device_count()} CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt_1.pt"
    save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)
    before = path.read_bytes()
    real_save = torch.save

    def fails_halfway(obj: dict, f) -> None:  # writes half the bytes, then the disk fills up
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fails_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 1, "weights": torch.zeros(1000)}, path)
    assert path.read_bytes() == before and torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(1000))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_1.pt"]  # no temporary file left behind


def test_bad_configs_fail_with_one_line(data, tmp_path):
    cases = {
        "missing": (["data.path=/nonexistent/data"], "'/nonexistent/data' is not a dataset folder"),
        "vocab": (["net.vocab_size=5"], "net.vocab_size=5 is smaller than the dataset's vocabulary of 13 tokens"),
        "context": (["net.context_size=4"], "net.context_size=4 is shorter than a training input of 7 tokens"),
        "heads": (["net.n_head=3"], "net.n_head=3 must divide net.n_embd=16"),
        "net": (["net=transformer"], "net='transformer' is not an option; options: lstm, nanogpt"),  # every net/*
    }
    runner = ForkRunner(tmp_path / "runner")  # each command as `python 02_train.py ...`, without torch's import each
    try:
        for name, (overrides, _) in cases.items():
            proc = runner.run([sys.executable, str(ROOT / "02_train.py"), f"data.path={data}", *TINY_NET, *overrides,
                               f"out_dir={tmp_path / name}", f"hydra.run.dir={tmp_path / 'logs'}"], tmp_path)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, proc.stderr)
            assert cases[name][1] in lines[0], (name, lines[0])
            assert not (tmp_path / name).exists()
    finally:
        ForkRunner.close_all([runner])


def test_metrics_lines_are_json(data, tmp_path):
    train(data, tmp_path / "run", "data.batch_size=256")
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line)["step"], int)


def test_skip_complete_keeps_a_finished_run_and_resumes_an_unfinished_one(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["epochs=1", "data.batch_size=32", "log.eval_interval=10", "skip_complete=true"]
    train(data, out, *args)
    reference = load_checkpoint(out / "ckpt_32.pt")
    before = snapshot(out, identity=True)
    capsys.readouterr()
    train(data, out, *args)
    assert snapshot(out, identity=True) == before
    assert "final checkpoint (step 32): skipping" in capsys.readouterr().out
    for step in (20, 30, 32):  # as if the sweep had been killed after step 10
        (out / f"ckpt_{step}.pt").unlink()
    train(data, out, *args)
    assert "resuming from" in capsys.readouterr().out
    assert state_equal(load_checkpoint(out / "ckpt_32.pt")["model"], reference["model"])
    with pytest.raises(OutputError, match="another config"):  # another run's folder is still refused
        train(data, out, "epochs=2", "data.batch_size=32", "log.eval_interval=10")
    with pytest.raises(OutputError, match="another config .it differs in epochs.*overwrite=true deletes 5 checkpoint"):
        train(data, out, *args, "epochs=2")  # never resumed from, never kept as if complete


def test_precision_and_compile_are_part_of_a_runs_identity(data, tmp_path):
    """A run records the device that ran and the precision it computed in. The same config in another precision (a
    GPU's bf16 for device=auto) or with compile=true is another run: keeping or resuming across the change is refused
    in one line, the run untouched."""
    out = tmp_path / "run"
    args = ["data.batch_size=256", "log.eval_interval=2", "skip_complete=true"]  # 4 steps: checkpoints 0, 2, 4
    train(data, out, *args)
    assert load_checkpoint(out / "ckpt_4.pt")["ran"] == {"device": "cpu", "precision": "float32"}
    entry = read_entry(out, "train")
    assert entry.ran == {"device": "cpu", "precision": "float32"} and entry.fingerprint["precision"] == "float32"
    with pytest.raises(OutputError, match=r"another config \(it differs in compile: False there, True here\)"):
        train(data, out, *args, "compile=true")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["entries"]["train"]["fingerprint"]["precision"] = "bf16"  # this very config, as if run on a GPU
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(out, identity=True)
    with pytest.raises(OutputError, match=r"^out_dir='[^']*' holds a training run of another config \(it differs in "
                                          r"precision: bf16 there, float32 here\), so this one is refused; [^\n]*$"):
        train(data, out, *args)
    (out / "ckpt_4.pt").unlink()  # unfinished: resume would continue it
    with pytest.raises(OutputError, match=r"precision: bf16 there, float32 here\), so this one cannot resume it"):
        train(data, out, *args, "resume=true")
    del before["ckpt_4.pt"]
    assert snapshot(out, identity=True) == before


def test_a_learning_window_gets_dense_checkpoints_and_older_runs_keep_their_identity(data, tmp_path, capsys):
    """log.dense_interval / log.dense_until add checkpoints in a learning window; set alone, either is refused in one
    line. The keys came with a null default: a run recorded before them is still this config's run."""
    out = tmp_path / "run"
    args = ["data.batch_size=32", "log.eval_interval=10", "skip_complete=true"]  # 32 steps
    train(data, out, *args, "log.dense_interval=2", "log.dense_until=6")
    assert [step for step, _ in list_checkpoints(out)] == [0, 2, 4, 6, 10, 20, 30, 32]
    for alone in ("log.dense_interval=2", "log.dense_until=6"):
        with pytest.raises(ConfigError, match="^log.dense_interval=.* and log.dense_until=.* go together: set both"):
            settings(alone)
    plain = tmp_path / "plain"
    train(data, plain, *args)
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["entries"]["train"]["fingerprint"]["log"]["dense_interval"]  # as recorded before the keys existed
    del manifest["entries"]["train"]["fingerprint"]["log"]["dense_until"]
    (plain / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    train(data, plain, *args)
    assert "final checkpoint (step 32): skipping" in capsys.readouterr().out


def test_seed_null_trains_with_the_datasets_seed(data, tmp_path):
    a = train(data, tmp_path / "a", "epochs=1", "data.batch_size=64", "seed=null")
    b = train(data, tmp_path / "b", "epochs=1", "data.batch_size=64", "seed=0")  # the dataset's seed is 0
    c = train(data, tmp_path / "c", "epochs=1", "data.batch_size=64", "seed=5")
    assert a == b and a != c
