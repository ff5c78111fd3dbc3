"""What the training loop does at each step, watched through the optimizer: gradient clipping (grad_clip=0 off),
tokens/s without evaluation time, and the learning rate that net=lstm brings."""

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import net.train as net_train
from net.checkpoint import load_checkpoint
from net.run_log import load_metrics
from net.train import configure_optimizer
from pipeline import generate
from pipeline import train as train_stage
from tests.conftest import stage_config
from tests.test_train import TINY_TASK, train

SHORT = ["data.batch_size=128", "epochs=2"]  # 512 documents: 8 steps


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny"
    generate.run(stage_config("gen", ["ndocuments=512", "neval_documents=20", f"out_dir={out}", *TINY_TASK]))
    return out


def norm(tensors) -> float:
    return torch.linalg.vector_norm(torch.stack([t.double().norm() for t in tensors])).item()


def spy_on_steps(monkeypatch, on_step: Callable[[float, float], None]) -> None:
    """Before each optimizer step of the training stage, call on_step(norm of the gradients backward produced,
    norm of the gradients the optimizer is about to apply)."""

    def spied(model: torch.nn.Module, *args) -> torch.optim.Optimizer:
        optimizer = configure_optimizer(model, *args)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        produced = {}
        for p in params:  # fires once backward has summed a parameter's gradient, before any clipping
            p.register_post_accumulate_grad_hook(lambda p: produced.__setitem__(id(p), p.grad.detach().clone()))
        optimizer.register_step_pre_hook(
            lambda *_: on_step(norm(produced[id(p)] for p in params), norm(p.grad for p in params)))
        return optimizer

    monkeypatch.setattr(train_stage, "configure_optimizer", spied)


def test_gradient_clipping_and_grad_clip_zero(data, tmp_path, monkeypatch):
    steps = []
    spy_on_steps(monkeypatch, lambda produced, applied: steps.append((produced, applied)))
    train(data, tmp_path / "clipped", *SHORT, "optimizer.grad_clip=0.05")
    assert len(steps) == 8 and all(produced > 0.05 for produced, _ in steps)  # every step needs clipping
    assert all(applied == pytest.approx(0.05, rel=1e-4) for _, applied in steps)
    steps.clear()
    train(data, tmp_path / "unclipped", *SHORT, "optimizer.grad_clip=0")
    assert len(steps) == 8 and all(applied == produced for produced, applied in steps)  # untouched
    assert max(produced for produced, _ in steps) > 1.0  # so that clipping at the default (1.0) would show


def test_tokens_per_second_leave_out_evaluation_time(data, tmp_path, monkeypatch):
    """A fake clock in the loop: every training step takes 1 s, every evaluation 1000 s."""
    clock = [0.0]
    monkeypatch.setattr(net_train, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    metrics = net_train.teacher_forced_metrics

    def slow_metrics(*args, **kwargs) -> dict:
        clock[0] += 1000.0
        return metrics(*args, **kwargs)

    monkeypatch.setattr(net_train, "teacher_forced_metrics", slow_metrics)
    spy_on_steps(monkeypatch, lambda *_: clock.__setitem__(0, clock[0] + 1.0))
    train(data, tmp_path / "run", *SHORT, "log.eval_interval=3", "log.log_interval=2")
    records = load_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if r["event"] == "eval"] == [0, 3, 6, 8]  # evaluations between logs
    rates = [r["tokens_per_s"] for r in records if r["event"] == "train"]
    assert len(rates) == 4 and set(rates) == {128 * 7}  # 128 documents of 8 tokens (7 predicted) per second


def test_net_lstm_sets_its_own_learning_rate(data, tmp_path):
    assert stage_config("train", [])["optimizer"]["learning_rate"] == 3e-4
    assert stage_config("train", ["net=lstm"])["optimizer"]["learning_rate"] == 1e-2
    assert stage_config("train", ["net=lstm", "optimizer.learning_rate=5e-3"])["optimizer"]["learning_rate"] == 5e-3
    train(data, tmp_path / "lstm", *SHORT, "net=lstm", "optimizer.decay_lr=false", "log.log_interval=1")
    assert {r["lr"] for r in load_metrics(tmp_path / "lstm" / "metrics.jsonl") if r["event"] == "train"} == {1e-2}
    groups = load_checkpoint(tmp_path / "lstm" / "ckpt_8.pt")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [1e-2, 1e-2]
