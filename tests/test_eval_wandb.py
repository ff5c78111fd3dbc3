"""Evaluation results in wandb, offline: the summary numbers go to the training run's own wandb run (the
checkpoints' wandb_id), each section on its own step axis; disabled writes nothing; a run trained without wandb is
refused in one line before anything is evaluated."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.errors import ConfigError
from net.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from pipeline.evaluate import run_inorder, run_outorder
from synthetic.dataset import load_dataset
from tests.conftest import snapshot
from tests.task_models import NoisyOracle
from tests.test_evaluate import SMALL, eval_config, write_checkpoints
from tests.test_safety import error_line, script

pytestmark = pytest.mark.usefixtures("one_torch_thread", "fresh_wandb")
RUN_ID = "trainrun1"
BLOCK = 32768  # the .wandb file is a LevelDB-style log of 32 KiB blocks, after a 7-byte file header


def wandb_records(path: Path) -> tuple[list[dict], dict[str, str]]:
    """What an offline run's .wandb file holds: the history records (what run.log sent) as {key: value}, and the
    metrics defined (define_metric) as {name or glob: its step metric}."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk, history, metrics = path.read_bytes(), 7, b"", [], {}
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a record header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]  # header: crc, length, type
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            if record.HasField("history"):
                history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.history.item})
            if record.HasField("metric"):
                metrics[record.metric.glob_name or record.metric.name] = record.metric.step_metric
    return history, metrics


@pytest.fixture
def fresh_wandb():
    """This process's wandb service torn down before and after: it keeps the settings (WANDB_DIR) of the first run
    it started, whichever test of this worker that was (e.g. test_train's, if it failed before its teardown)."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


CPU = "device=cpu"  # not auto (CUDA where there is a GPU): the stand-in models are CPU modules


@pytest.fixture
def checkpoints(tmp_path, make_dataset):
    """Checkpoints at steps 0, 10, 20 of a run trained with wandb (its id in every checkpoint): the real trainer's,
    with wandb's id and settings written in as an offline wandb run would leave them (no wandb run in the trainer)."""
    ckpts = tmp_path / "ckpts"
    write_checkpoints(ckpts, make_dataset(*SMALL), [0, 10, 20])
    for _, path in list_checkpoints(ckpts):
        ckpt = load_checkpoint(path)
        ckpt["wandb_id"] = RUN_ID
        ckpt["train_config"] = {**ckpt["train_config"],
                                "wandb": {"mode": "offline", "project": "compositional", "name": "tiny"}}
        save_checkpoint(ckpt, path)
    return ckpts


def test_results_go_to_the_training_run_offline(checkpoints, tmp_path, monkeypatch, capsys):
    ds = load_dataset(load_checkpoint(list_checkpoints(checkpoints)[0][1])["data"]["path"])
    noisy = NoisyOracle(ds.spec, ds.functions, one_in=4)  # accuracies that differ from group to group
    monkeypatch.setattr("pipeline.evaluate.load_model", lambda ckpt, device: noisy)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing reaches the network
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    out = tmp_path / "results"
    inorder = run_inorder(eval_config("i", checkpoints, out, CPU, "wandb.mode=offline"))
    outorder = run_outorder(eval_config("o", checkpoints, out, CPU, "max_per_pattern=2", "wandb.mode=offline"))
    import wandb

    assert wandb.run is None  # finished
    wandb.teardown()  # the wandb service writes a finished run's file in the background; a script's exit waits too
    # the training run, resumed once per evaluation: offline-run-<second>-<id>, plus -1 when both began in one second
    runs = [wandb_records(path) for path in (tmp_path / "wb" / "wandb").glob(f"offline-run-*-{RUN_ID}*/*.wandb")]
    assert len(runs) == 2
    for logged, axes in runs:  # each run logged one section, on that section's step axis
        (section,) = {key.split("/")[0] for record in logged for key in record if not key.startswith("_")}
        assert axes == {f"{section}/*": f"{section}/step"}  # not wandb's own step, which training advanced
    assert sorted(section for logged, axes in runs for section in axes) == ["eval_inorder/*", "eval_outorder/*"]
    logged = [record for history, _ in runs for record in history]
    steps = [r for r in logged if "eval_inorder/step" in r]
    assert [r["eval_inorder/step"] for r in steps] == [0, 10, 20]
    for record, expected in zip(steps, inorder["steps"], strict=True):
        for group in ("overall", "train", "unseen"):
            assert record[f"eval_inorder/{group}_token_acc"] == pytest.approx(expected[group]["token_acc"])
    (record,) = [r for r in logged if "eval_outorder/step" in r]
    assert record["eval_outorder/step"] == 20
    assert record["eval_outorder/overall_token_acc"] == pytest.approx(outorder["overall"]["token_acc"])
    groups = {k: v for k, v in record.items() if k.startswith("eval_outorder/id")}
    assert groups == pytest.approx({f"eval_outorder/id{g['n_identity']}_disp{g['displacement']}_token_acc":
                                    g["token_acc"] for g in outorder["groups"]})
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb_none"))
    capsys.readouterr()
    run_inorder(eval_config("i", checkpoints, out, CPU, "skip_complete=true"))  # wandb.mode=disabled by default
    assert "already holds this in-order evaluation: skipping" in capsys.readouterr().out  # wandb: not in fingerprint
    assert not (tmp_path / "wb_none").exists() and not (tmp_path / "wandb").exists()


def test_a_run_trained_without_wandb_is_refused_first(tmp_path, make_dataset):
    ckpts, out = tmp_path / "ckpts", tmp_path / "results"
    write_checkpoints(ckpts, make_dataset(*SMALL), [0, 10])
    with pytest.raises(ConfigError, match=r"^wandb.mode=offline but checkpoint .*ckpt_10.pt has no wandb_id \(it was "
                                          r"trained with wandb.mode=disabled\), so there is no wandb run to log to; "
                                          r"set wandb.mode=disabled$"):
        run_outorder(eval_config("o", ckpts, out, CPU, "wandb.mode=offline"))
    assert not out.exists()
    with pytest.raises(ConfigError, match="wandb.mode='cloud' is not allowed; allowed: disabled, offline, online"):
        run_outorder(eval_config("o", ckpts, out, CPU, "wandb.mode=cloud"))


def test_a_wandb_that_cannot_start_is_one_line_before_anything_is_written(checkpoints, tmp_path):
    """wandb.mode=online without a login (WANDB_MODE unset, no API key, no network), through the real command line:
    one line, exit status 2, the existing results (and their lock file) byte-identical and no new folder or lock."""
    results = tmp_path / "results"
    run_inorder(eval_config("i", checkpoints, results / "tiny", CPU))  # wandb.mode=disabled
    before = snapshot(results)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(tmp_path / "home"), "WANDB_DIR": str(tmp_path / "wb"), "WANDB_BASE_URL": "http://127.0.0.1:9"}
    common = [f"ckpt_dir={checkpoints}", "nsamples=4", "min_group_samples=0", "device=cpu", "wandb.mode=online"]
    for command in (["03_evaluate_i.py", *common, "out_dir=results/tiny", "overwrite=true"],
                    ["03_evaluate_o.py", *common, "out_dir=results/new"]):
        result = subprocess.run(script(*command, logs=tmp_path / "logs"), cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
        assert error_line(result).startswith("wandb.mode=online could not start a wandb run (No API key configured")
        assert snapshot(results) == before
