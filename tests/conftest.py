"""Shared fixtures: compose the real Hydra configs and write tiny datasets into tmp_path."""

import os

# Before torch is imported: torch's default thread count, hence `threads: auto`, is one in the tests and in the
# scripts they run (tiny tensors; two threads stall on a shared CPU).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib
import json
import subprocess
import sys
from itertools import count
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import settings
from omegaconf import DictConfig, OmegaConf

import pipeline.cli  # noqa: F401 (registers Hydra's shared settings, as every script does)
from pipeline.tags import name_run

ROOT = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run and machine (a seed from each test's own code), so that CI is
# reproducible; no example database either, which would replay a past failure on one machine only.
settings.register_profile("reproducible", derandomize=True, database=None)
settings.load_profile("reproducible")


def compose_config(stage: str, overrides: list[str], config_name: str = "conf") -> DictConfig:
    """The config a numbered script would get from `python 0X_script.py <overrides>`."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "config" / stage)):
        return compose(config_name=config_name, overrides=overrides)


def stage_config(stage: str, overrides: list[str], config_name: str = "conf") -> dict:
    """The resolved plain dict a stage function takes, as `run_stage` hands it in a job: composed with Hydra's
    own node (whose config-group choices the tags read), which is then left out."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "config" / stage)):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    if "tag" in cfg:
        name_run({"eval": "inorder"}.get(stage, stage), cfg)
    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items() if k != "hydra"}


def run_script(script: str, *overrides: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a numbered script as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides, "hydra.run.dir=" + str(cwd / "logs" / "hydra")],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


def run_sh(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """./run.sh as a user types it, from the project root, capturing its output."""
    return subprocess.run([str(ROOT / "run.sh"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def snapshot(path: Path, identity: bool = False) -> dict[str, object]:
    """Every entry under a folder (hidden ones too), or the file `path` itself: relative path -> sha256 of a file's
    bytes, or 'dir'. identity=True adds each file's inode and mtime: "not rewritten" compares that, since a stage
    that rewrote a file with the very same bytes would leave its hash as it was."""
    entries = [path] if path.is_file() else sorted(path.rglob("*"))
    out: dict[str, object] = {}
    for entry in entries:
        key = str(entry.relative_to(path)) if entry != path else entry.name
        if entry.is_dir():
            out[key] = "dir"
            continue
        digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        stat = entry.stat()
        out[key] = (digest, stat.st_ino, stat.st_mtime_ns) if identity else digest
    return out


class ForkRunner:
    """tests/fork_runner.py: runs each command as `python SCRIPT ARGS...` would, in a process forked from one that
    has imported the libraries already: a fresh interpreter per command spends seconds importing torch. One command
    at a time; close_all ends them."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.count = logs, count()
        logs.mkdir(parents=True)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.fork_runner"], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
        """subprocess.run(command, cwd=cwd, capture_output=True, text=True), for `[env [-u NAME]... NAME=VALUE...]
        python SCRIPT ARGS...`."""
        env, argv = dict(os.environ), list(command)
        if argv[0] == "env":
            argv.pop(0)
            while argv[0] != sys.executable:
                if argv[0] == "-u":
                    env.pop(argv[1], None)
                    del argv[:2]
                else:
                    name, _, value = argv.pop(0).partition("=")
                    env[name] = value
        assert argv[0] == sys.executable, command
        n = next(self.count)
        out, err = self.logs / f"{n}.out", self.logs / f"{n}.err"
        request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "tests/fork_runner.py died"
        return subprocess.CompletedProcess(command, json.loads(answer)["returncode"], out.read_text(),
                                           err.read_text())

    @staticmethod
    def close_all(runners: list["ForkRunner"]) -> None:
        for runner in runners:
            runner.process.stdin.close()
        for runner in runners:
            runner.process.wait(timeout=60)


TINY_DATA = ["ndocuments=400", "neval_documents=100"]


@pytest.fixture
def make_dataset(tmp_path):
    """make_dataset(*overrides) -> path of a freshly generated tiny dataset."""
    from pipeline import generate

    counter = iter(range(1000))

    def _make(*overrides: str) -> Path:
        out = tmp_path / f"data{next(counter)}"
        generate.run(stage_config("gen", [*TINY_DATA, f"out_dir={out}", *overrides]))
        return out

    return _make


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids stalled OpenMP threads on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
