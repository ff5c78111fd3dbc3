"""The driver runs exactly what was typed (issue 22), through ./run.sh as a user types it: a typed value wins over
an experiment's, or the clash is refused naming both; every override (Hydra's launcher keys and the report's
included) is checked before anything runs; `./run.sh key=value` is the default pipeline, each key routed to the
stages that have it; killing the driver kills the stage it runs."""

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_sh

REFUSALS = {  # typed after the suite or experiment -> the one line, exit status 2, before anything runs
    ("lstm_vs_transformer", "profile=tiny", "net=lstm"):
        "net=lstm clashes with experiment lstm_vs_transformer, which crosses net over nanogpt, lstm; to run other "
        "values, copy config/sweep/experiment/lstm_vs_transformer.yaml to a new name and set net there, or leave "
        "net=lstm out",
    ("tiny", "launcher=joblib", "hydra.launcher.n_jobs=abc"):
        "01_generate_data.py: Error merging override hydra.launcher.n_jobs=abc (Value 'abc' of type 'str' could not "
        "be converted to Integer)",
    ("tiny", "confidence=2"): "04_report.py: confidence=2.0 must be in [0.5, 0.999]",
}


@pytest.mark.parametrize(("args", "error"), REFUSALS.items(), ids=[a[-1] for a in REFUSALS])
def test_a_clash_or_a_bad_launcher_or_report_value_is_refused_before_anything_runs(tmp_path, args, error):
    workdir = tmp_path / "never"
    result = run_sh(*args, f"workdir={workdir}", timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"error: {error}\n", "")
    assert not workdir.exists()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`./run.sh device=cpu net=lstm profile=tiny`: the default pipeline (one run) at the tiny sizes."""
    workdir = tmp_path_factory.mktemp("default")
    return workdir, run_sh("device=cpu", "net=lstm", "profile=tiny", f"workdir={workdir}")


def test_key_value_runs_the_default_pipeline_routed_and_the_typed_net_wins(default_run):
    """device= reaches training and evaluation only (01_generate_data.py has no device), and net=lstm wins over
    the default experiment's nanogpt."""
    workdir, result = default_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (data,) = folders(workdir / "runs" / "tiny" / "data")
    (run,) = folders(workdir / "runs" / "tiny" / "ckpts")
    assert run.name.startswith(f"{data.name}_lstm")
    ckpt = torch.load(next(run.glob("ckpt_*.pt")), weights_only=True)
    assert ckpt["train_config"]["net"]["kind"] == "lstm" and ckpt["train_config"]["device"] == "cpu"
    (results,) = folders(workdir / "runs" / "tiny" / "results")
    assert {"inorder.csv", "outorder.csv", "summary.json"} <= {p.name for p in results.iterdir()}
    assert not (workdir / "reports").exists()  # the default pipeline writes no report


def test_an_experiments_report_reads_its_own_runs_under_its_own_name(default_run):
    """One experiment on the tiny profile in a workdir holding other runs of that profile (the default run's
    LSTM): its report holds its own run alone (the LSTM's dataset is shared, its results are not read), in
    reports/mechanism_profile_tiny, not in the tiny suite's reports/tiny; a report key typed (metric=) reaches it."""
    workdir, _ = default_run
    result = run_sh("mechanism", "profile=tiny", "metric=seq_acc", f"workdir={workdir}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [p.name for p in folders(workdir / "reports")] == ["mechanism_profile_tiny"]
    assert (workdir / "reports" / "mechanism_profile_tiny" / "fig_seq_acc_vs_n_compositions.png").is_file()  # metric=
    runs = [row["run"] for row in csv.DictReader((workdir / "reports" / "mechanism_profile_tiny" / "runs.csv").open())]
    assert len(runs) == 1 and "_lstm" not in runs[0], runs


def folders(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.is_dir()]  # not the lock files beside them


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid` and their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="PR_SET_PDEATHSIG: Linux only")
@pytest.mark.parametrize("launcher", [[], ["launcher=joblib"]])
def test_killing_the_driver_kills_the_stage_and_the_job_it_runs(default_run, launcher):
    """kill -9 of the driver while 02_train.py trains (1000 epochs of the default run's dataset): the stage and the
    process training in it (under joblib a worker, the pid in the run folder's lock) die within seconds, instead of
    training on holding the lock. (An idle joblib worker holds nothing, and leaves after loky's idle timeout.)"""
    workdir, _ = default_run
    ckpts = workdir / "runs" / "tiny" / "ckpts"
    driver = subprocess.Popen([str(ROOT / "run.sh"), "profile=tiny", "epochs=1000", *launcher, f"workdir={workdir}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stage = job = None
    try:
        deadline = time.time() + 120
        while (stage is None or job is None) and time.time() < deadline and driver.poll() is None:
            stage = next((pid for pid, cmd in children(driver.pid).items() if "02_train.py" in cmd), None)
            locks = [lock.read_text() for lock in ckpts.glob(".*.lock")] if ckpts.is_dir() else []
            job = next((int(text.split()[1]) for text in locks if text.startswith("pid ") and alive(
                int(text.split()[1]))), None)
            time.sleep(0.2)
        assert stage is not None and job is not None, "02_train.py never started training"
        assert (job != stage) == bool(launcher)  # joblib trains in a worker, the basic launcher in the stage
        time.sleep(1)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.time() + 10
        while (alive(stage) or alive(job)) and time.time() < deadline:
            time.sleep(0.1)
        assert not alive(stage), "the stage outlived the driver"
        assert not alive(job), "the job training in it outlived the driver"
    finally:
        driver.kill()
        for pid in (stage, job):
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)
