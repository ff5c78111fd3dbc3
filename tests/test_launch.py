"""How a job runs: `threads: auto` resolved from the launcher, each job's terminal output copied into its Hydra
log file, and an evaluation's table printed in one write (parallel jobs' tables do not interleave)."""

import re
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from core.config import parse
from core.errors import ConfigError
from pipeline import launch
from pipeline.cli import Tee, run_or_exit
from pipeline.evaluate import run_outorder
from pipeline.train import TrainConfig
from tests.conftest import ROOT, compose_config, stage_config
from tests.test_evaluate import SMALL, write_checkpoints


@pytest.fixture
def hydra_job(tmp_path):
    """hydra_job(launcher): this process becomes a Hydra job of that launcher, its output_dir tmp_path/job."""

    def _enter(launcher: str) -> None:
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "config" / "gen")):
            cfg = compose(config_name="conf", return_hydra_config=True)
        cfg.hydra.runtime.choices["hydra/launcher"] = launcher
        cfg.hydra.runtime.output_dir = str(tmp_path / "job")
        cfg.hydra.job.name = "job"
        (tmp_path / "job").mkdir(exist_ok=True)
        HydraConfig.instance().set_config(cfg)

    yield _enter
    HydraConfig.instance().cfg = None


def test_threads_auto_is_every_core_alone_and_one_per_parallel_job(hydra_job, monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(launch, "TORCH_THREADS", 4)  # torch's default: one per physical core
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert launch.resolve_threads("auto") == 4  # outside Hydra: one job
    assert [launch.resolve_threads(n) for n in (0, 1, 3)] == [4, 1, 3]
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert launch.resolve_threads("auto") == 2  # only the cores this process may run on (taskset, SLURM)
    hydra_job("basic")  # a sequential multirun: still one job at a time
    assert launch.resolve_threads("auto") == 2
    for launcher in ("joblib", "submitit_local", "ray"):
        hydra_job(launcher)
        assert launch.resolve_threads("auto") == 1 and launch.resolve_threads(0) == 4


def test_threads_auto_is_the_cpus_slurm_granted(hydra_job, monkeypatch):
    """config/sweep/launcher/slurm.yaml asks cpus_per_task=8 for each job: a job uses them, not one thread; a job
    of a launcher sharing the machine still takes one, whatever SLURM granted the whole allocation."""
    monkeypatch.setattr(launch, "TORCH_THREADS", 32)
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert launch.resolve_threads("auto") == 8  # a single job in an sbatch script
    hydra_job("submitit_slurm")
    assert launch.resolve_threads("auto") == 8 and launch.resolve_threads(2) == 2
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert launch.resolve_threads("auto") == 3  # fewer CPUs to run on than granted
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert launch.resolve_threads("auto") == 3  # SLURM says nothing: the CPUs it may run on
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    for launcher in ("joblib", "submitit_local", "ray"):
        hydra_job(launcher)
        assert launch.resolve_threads("auto") == 1


def test_threads_key_takes_auto_or_a_count():
    assert compose_config("train", []).threads == "auto" and compose_config("eval", []).threads == "auto"
    assert compose_config("sample", []).threads == "auto" and compose_config("analyze", []).threads == "auto"
    for value, parsed in [("auto", "auto"), ("0", 0), ("3", 3)]:
        assert parse(TrainConfig, stage_config("train", [f"threads={value}"])).threads == parsed
    for value, shown in [("many", "'many'"), ("-1", "-1"), ("true", "True"), ("1.5", "1.5")]:
        with pytest.raises(ConfigError, match=f"^threads={re.escape(shown)} must be auto or an integer >= 0$"):
            parse(TrainConfig, stage_config("train", [f"threads={value}"]))


def test_a_jobs_output_also_goes_to_its_log(hydra_job, tmp_path, capsys):
    def job() -> int:
        print("table\nrow")
        sys.stderr.write("\r 10%|#    |\r 50%|###  |\r100%|#####|")  # a progress bar, then its end
        sys.stderr.write("\n")
        sys.stdout.write("last line, unfinished")
        return 7

    assert run_or_exit(job) == 7  # outside a Hydra job: no log
    capsys.readouterr()
    assert not list(tmp_path.rglob("*.log"))
    hydra_job("basic")
    assert run_or_exit(job) == 7
    out, err = capsys.readouterr()
    assert out == "table\nrow\nlast line, unfinished" and err == "\r 10%|#    |\r 50%|###  |\r100%|#####|\n"
    log = tmp_path / "job" / "job.log"
    assert log.read_text() == "table\nrow\n100%|#####|\nlast line, unfinished\n"
    assert not isinstance(sys.stdout, Tee) and not isinstance(sys.stderr, Tee)

    def bad() -> None:
        raise ConfigError("x=1 must be 2")

    with pytest.raises(SystemExit) as exit_:
        run_or_exit(bad)
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: x=1 must be 2\n"
    assert log.read_text().endswith("unfinished\nerror: x=1 must be 2\n")


def test_evaluation_prints_its_table_in_one_write_and_sets_threads(tmp_path, make_dataset, monkeypatch):
    data, ckpts, out = make_dataset(*SMALL), tmp_path / "ckpts", tmp_path / "results"
    write_checkpoints(ckpts, data, [0, 10])
    writes = []

    class Terminal:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Terminal())
    before = torch.get_num_threads()
    try:
        run_outorder(stage_config("eval", [f"ckpt_dir={ckpts}", f"out_dir={out}", "nsamples=2", "min_group_samples=0",
                                           "max_per_pattern=1", "threads=2"]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    (text,) = [w for w in writes if w.strip()]
    assert text.startswith("out-of-order at step 10") and "failing samples at step 10:" in text
    assert text.endswith(f"wrote outorder.csv, summary.json and run.json to {out}")
