"""net/train.py, pipeline/train.py and 02_train.py: learning, schedule, optimizer groups, checkpoints, exact
resume, metrics, wandb, one-line config errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from net.checkpoint import list_checkpoints, load_checkpoint, load_model, save_checkpoint
from net.device import autocast_context, resolve_device
from net.model import build_model
from net.run_log import load_metrics
from net.train import Schedule, configure_optimizer, teacher_forced_metrics
from pipeline import generate
from pipeline import train as train_stage
from pipeline.config import parse
from pipeline.errors import ConfigError, OutputError
from synthetic.dataset import load_dataset
from tests.conftest import ROOT, stage_config

# A task small enough to learn in seconds: one level, one bijection of 8 tokens, inputs of 2 (8-token documents).
TINY_TASK = ["n_alphabets=8", "seq_len=2", "function.depth=1", "function.n_functions=1",
             "function.split.n_compositions=2", "function.split.n_identity=0"]
TINY_NET = ["net.n_layer=1", "net.n_head=2", "net.n_embd=16", "net.context_size=16"]
TINY_LSTM = ["net=lstm", "net.n_layer=1", "net.n_embd=16", "net.context_size=16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny"
    overrides = ["ndocuments=1024", "neval_documents=100", f"out_dir={out}", *TINY_TASK]
    generate.run(stage_config("gen", overrides))
    return out


def train(data: Path, out_dir: Path, *overrides: str) -> dict:
    net = TINY_LSTM if "net=lstm" in overrides else TINY_NET
    return train_stage.run(stage_config("train", [f"data.path={data}", f"out_dir={out_dir}", *net, *overrides]))


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


def test_checkpoints_metrics_and_refusals(data, tmp_path):
    out = tmp_path / "run"
    final = train(data, out, "epochs=1", "data.batch_size=32", "log.eval_interval=10", "log.log_interval=4")
    assert [step for step, _ in list_checkpoints(out)] == [0, 10, 20, 30, 32]
    ds = load_dataset(data)
    docs = torch.from_numpy(ds.eval_all.astype("int64"))
    for step, path in list_checkpoints(out):
        raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickle needed
        assert raw["step"] == step and raw["model_args"]["kind"] == "nanogpt" and raw["model_args"]["vocab_size"] == 13
        assert raw["data"]["path"] == str(data) and raw["data"]["meta"] == ds.meta
        assert raw["train_config"]["out_dir"] == str(out) and bool(raw["optimizer"]["state"]) == (step > 0)
        model = load_model(load_checkpoint(path), "cpu")
        assert not model.training
        scores = teacher_forced_metrics(model, docs, ds.spec.output_start, batch_size=64)
        assert scores["tf_acc"] == raw["metrics"]["eval_all/tf_acc"]  # the rebuilt model scores identically
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
    with pytest.raises(OutputError, match="holds a training run of another config .it differs in epochs., so this "
                       "one is refused; write it elsewhere with another tag="):
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


def test_resume_after_sigkill_is_bit_identical(data, tmp_path):
    args = [f"data.path={data}", *TINY_NET, "epochs=10", "data.batch_size=16", "log.eval_interval=100",
            "log.log_interval=25"]  # 640 steps
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "02_train.py"), *args, f"out_dir={killed}", f"hydra.run.dir={tmp_path / 'logs'}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (killed / "ckpt_100.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.02)  # land between checkpoints, in the middle of training steps
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [step for step, _ in list_checkpoints(killed)]
    assert 100 in done and 640 not in done, done  # killed mid-run

    train_stage.run(stage_config("train", [*args, f"out_dir={killed}", "resume=true"]))
    whole = tmp_path / "whole"
    train_stage.run(stage_config("train", [*args, f"out_dir={whole}"]))
    a, b = load_checkpoint(killed / "ckpt_640.pt"), load_checkpoint(whole / "ckpt_640.pt")
    assert state_equal(a["model"], b["model"]) and state_equal(a["optimizer"], b["optimizer"])
    assert a["metrics"] == b["metrics"]
    records = load_metrics(killed / "metrics.jsonl")  # complete, no duplicates from the killed part
    assert [r["step"] for r in records if r["event"] == "eval"] == list(range(0, 640, 100)) + [640]
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(25, 640, 25)) + [640]


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


def test_bf16_on_cpu_when_asked(data, tmp_path):
    metrics = train(data, tmp_path / "run", "data.batch_size=256", "bf16_cpu=true")
    assert 0.0 <= metrics["eval_all/tf_acc"] <= 1.0


def test_device_and_autocast():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device=tpu is not auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cuda but CUDA is not available"):
            resolve_device("cuda")
    with autocast_context(torch.device("cpu"), True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_context(torch.device("cpu"), False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_checkpoint_save_is_atomic(tmp_path):
    save_checkpoint({"step": 1}, tmp_path / "ckpt_1.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_1.pt"]


def test_bad_configs_fail_with_one_line(data, tmp_path):
    cases = {
        "missing": (["data.path=/nonexistent/data"], "'/nonexistent/data' is not a dataset folder"),
        "vocab": (["net.vocab_size=5"], "net.vocab_size=5 is smaller than the dataset's vocabulary of 13 tokens"),
        "context": (["net.context_size=4"], "net.context_size=4 is shorter than a training input of 7 tokens"),
        "heads": (["net.n_head=3"], "net.n_head=3 must divide net.n_embd=16"),
        "net": (["net=transformer"], "net='transformer' is not an option; options: lstm, nanogpt"),  # every net/*
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "02_train.py"), f"data.path={data}", *TINY_NET, *overrides,
             f"out_dir={tmp_path / name}", f"hydra.run.dir={tmp_path / 'logs'}"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (overrides, _) in cases.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert cases[name][1] in lines[0], (name, lines[0])
        assert not (tmp_path / name).exists()


def test_metrics_lines_are_json(data, tmp_path):
    train(data, tmp_path / "run", "data.batch_size=256")
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line)["step"], int)


def test_skip_complete_keeps_a_finished_run_and_resumes_an_unfinished_one(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["epochs=1", "data.batch_size=32", "log.eval_interval=10", "skip_complete=true"]
    train(data, out, *args)
    reference = load_checkpoint(out / "ckpt_32.pt")
    stamp = (out / "ckpt_32.pt").stat().st_mtime_ns
    capsys.readouterr()
    train(data, out, *args)
    assert "final checkpoint (step 32): skipping" in capsys.readouterr().out
    assert (out / "ckpt_32.pt").stat().st_mtime_ns == stamp
    for step in (20, 30, 32):  # as if the sweep had been killed after step 10
        (out / f"ckpt_{step}.pt").unlink()
    train(data, out, *args)
    assert "resuming from" in capsys.readouterr().out
    assert state_equal(load_checkpoint(out / "ckpt_32.pt")["model"], reference["model"])
    with pytest.raises(OutputError, match="another config"):  # another run's folder is still refused
        train(data, out, "epochs=2", "data.batch_size=32", "log.eval_interval=10")
    with pytest.raises(OutputError, match="another config .it differs in epochs.*overwrite=true deletes 5 checkpoint"):
        train(data, out, *args, "epochs=2")  # never resumed from, never kept as if complete


def test_seed_null_trains_with_the_datasets_seed(data, tmp_path):
    a = train(data, tmp_path / "a", "epochs=1", "data.batch_size=64", "seed=null")
    b = train(data, tmp_path / "b", "epochs=1", "data.batch_size=64", "seed=0")  # the dataset's seed is 0
    c = train(data, tmp_path / "c", "epochs=1", "data.batch_size=64", "seed=5")
    assert a == b and a != c
