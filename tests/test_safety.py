"""Nothing is lost, whatever is typed (issue 15), through the real command line: one test per class of problem.

Every case runs its numbered script(s) in a folder of its own (cases/<name>/, the script's working directory is
cases/<name>/work), and the case's whole folder is compared before and after: a refused command must leave it
byte-identical (no lock file either). The cases run as one batch of parallel subprocesses (module fixture), each
test then reads its own. Each command is its script run as `python SCRIPT ARGS...` would run it (its own process,
sys.argv, working directory, environment, exit status, stdout and stderr), forked from an interpreter that has
imported torch and the pipeline already (tests/fork_runner.py): a fresh interpreter per command spent most of the
batch importing them. Other tests (test_generate_cli.py, test_refusals.py, test_driver.py) start fresh ones.
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

import pytest
import torch

from core.manifest import read_entry
from net.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from net.run_log import load_metrics
from pipeline import evaluate, generate, train
from tests.conftest import ROOT, TINY_DATA, ForkRunner, snapshot, stage_config

TINY_TASK = ["n_alphabets=4", "seq_len=2", "function.depth=2", "function.n_functions=1",
             "function.split.n_compositions=2", "function.split.n_identity=0"]
TINY_NET = ["net.n_layer=1", "net.n_embd=16", "device=cpu"]
TINY_RUN = [*TINY_NET, "data.batch_size=100", "log.eval_interval=2"]  # 4 steps: checkpoints 0, 2, 4
HUGE = "1000000000000"
WORKERS = os.cpu_count() or 1  # commands run in parallel, each by a ForkRunner of its own


@dataclass(frozen=True)
class World:
    """A tiny dataset, a finished training run of it and that run's in-order evaluation (read-only)."""

    root: Path
    data: Path
    ckpts: Path
    results: Path  # holds tiny/


@dataclass
class Case:
    """Commands run one after the other in cases/<name>/work, after `setup(case folder)`."""

    commands: list[list[str]]
    setup: Callable[[Path], None] = lambda folder: None
    folder: Path = Path()
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    results: list[subprocess.CompletedProcess] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.folder / "work"

    @property
    def last(self) -> subprocess.CompletedProcess:
        return self.results[-1]


def script(name: str, *overrides: str, logs: Path | None) -> list[str]:
    """A numbered script's command line; Hydra's logs go to `logs`, outside every case folder (None: its default)."""
    return [sys.executable, str(ROOT / name), *overrides, *([f"hydra.run.dir={logs}"] if logs else [])]


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused command (exit status 2), without its 'error: ' prefix."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0].removeprefix("error: ")


def flip_weight(path: Path, where: str) -> None:
    """Change one value of a checkpoint, keeping its old checksum: what a flipped bit on disk does."""
    ckpt = torch.load(path, weights_only=True)
    if where == "model":
        tensor = next(v for k, v in ckpt["model"].items() if "wte" in k)
    else:
        tensor = next(iter(ckpt["optimizer"]["state"].values()))["exp_avg"]
    tensor.view(-1)[0] = 1.5e36
    torch.save(ckpt, path)


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("world")
    data, ckpts, results = root / "data", root / "ckpts", root / "results"
    generate.run(stage_config("gen", [*TINY_DATA, *TINY_TASK, f"out_dir={data}"]))
    train.run(stage_config("train", [f"data.path={data}", f"out_dir={ckpts}", *TINY_RUN]))
    evaluate.run_inorder(stage_config("eval", [f"ckpt_dir={ckpts}", f"out_dir={results / 'tiny'}", "tag=tiny",
                                               "nsamples=2", "min_group_samples=0", "device=cpu"]))
    return World(root, data, ckpts, results)


def all_cases(w: World) -> dict[str, Case]:
    def run(*args: str, logs: bool = True) -> list[str]:
        return script(*args, logs=w.root / "logs" if logs else None)

    def killed(when: str, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "tests" / "kill_at.py"), when, *run(*args)[1:]]

    no_wandb_login = ["env", "-u", "WANDB_API_KEY", f"HOME={w.root / 'home'}", f"WANDB_DIR={w.root / 'wandb'}"]
    gen = ["01_generate_data.py", *TINY_DATA, *TINY_TASK]
    tr = ["02_train.py", f"data.path={w.data}", *TINY_RUN]
    ev = ["03_evaluate_i.py", f"ckpt_dir={w.ckpts}", "nsamples=3", "min_group_samples=0", "device=cpu"]
    an = ["05_analyze.py", f"ckpt_dir={w.ckpts}", "nsamples=20", "ablation_nsamples=0", "device=cpu",
          "probe.max_iter=5"]
    rep = ["04_report.py", f"results_dir={w.results}", "reproduction_md=null"]

    def folder_of(**files: str) -> Callable[[Path], None]:
        def make(case: Path) -> None:
            for name, text in files.items():
                (case / "work" / name).parent.mkdir(parents=True, exist_ok=True)
                (case / "work" / name).write_text(text)
        return make

    def copy(src: Path, name: str, then: Callable[[Path], None] = lambda p: None) -> Callable[[Path], None]:
        def make(case: Path) -> None:
            shutil.copytree(src, case / "work" / name)
            then(case / "work" / name)
        return make

    def newest_corrupt(run: Path) -> None:
        flip_weight(list_checkpoints(run)[-1][1], "model")

    def unfinished_with_corrupt_optimizer(case: Path) -> None:
        run = case / "work" / "run"  # trained here: out_dir is part of a training run's config
        train.run(stage_config("train", [f"data.path={w.data}", f"out_dir={run}", *TINY_RUN]))
        list_checkpoints(run)[-1][1].unlink()
        flip_weight(list_checkpoints(run)[-1][1], "optimizer")

    def accuracy_above_one(results: Path) -> None:
        folder = results / "tiny"
        header, first, *rest = (folder / "inorder.csv").read_text().splitlines()
        cells = first.split(",")
        cells[header.split(",").index("token_acc")] = "7.5"
        section = json.loads((folder / "summary.json").read_text())["inorder"]
        entry = read_entry(folder, "inorder")
        files = {name: (folder / name).read_text() for name in entry.files}
        # written with the manifest vouching for it, as by an evaluation: only the range check can refuse it
        evaluate.write_section(folder, "inorder", section, {**files, "inorder.csv": "\n".join([header, ",".join(cells),
                                                                                             *rest]) + "\n"},
                               {"config": entry.config, "fingerprint": entry.fingerprint, "upstream": entry.upstream,
                                "ran": entry.ran})

    return {
        # 1. an out_dir that is not the stage's own output is never replaced, whatever the flags
        "gen_foreign": Case([run(*gen, "overwrite=true", "out_dir=notes")],
                            folder_of(**{"notes/a.csv": "1\n", "notes/b.png": "png"})),
        "gen_git": Case([run(*gen, "overwrite=true", "out_dir=repo")], folder_of(**{"repo/.git/HEAD": "ref"})),
        "gen_source": Case([run(*gen, "overwrite=true", "out_dir=src")], folder_of(**{"src/model.py": "x = 1\n"})),
        "gen_file": Case([run(*gen, "overwrite=true", "out_dir=README.md")], folder_of(**{"README.md": "mine"})),
        "gen_cwd": Case([run(*gen, "overwrite=true", "out_dir=.")], folder_of(**{"keep.txt": "mine"})),
        "gen_root": Case([run(*gen, "overwrite=true", f"out_dir={ROOT}")]),
        "gen_no_marker": Case([run(*gen, "overwrite=true", "out_dir=d")], folder_of(**{"d/train.npy": "x"})),
        "train_config": Case([run(*tr, "overwrite=true", f"out_dir={ROOT / 'config'}")]),
        "analyze_no_marker": Case([run(*an, "overwrite=true", "out_dir=notes")],
                                  folder_of(**{"notes/a.csv": "1\n", "notes/b.png": "png"})),
        "report_git": Case([run(*rep, "out_dir=rep")], folder_of(**{"rep/.git/HEAD": "ref"})),
        "report_file": Case([run(*rep, "out_dir=notes.txt")], folder_of(**{"notes.txt": "mine"})),
        "report_md": Case([run(*rep, "kind=paper", "out_dir=rep", "reproduction_md=README.md")],
                          folder_of(**{"README.md": "# my project\n"})),
        # 2. the whole config is validated before anything is created, moved or deleted
        "train_bad_overwrite": Case([run(*tr, "overwrite=true", "wandb.mode=foo", "out_dir=run")],
                                    copy(w.ckpts, "run")),
        "train_bad_new": Case([run(*tr, "net.n_head=7", "out_dir=new")]),
        "train_wandb_login": Case([[*no_wandb_login, *run(*tr, "overwrite=true", "wandb.mode=online", "out_dir=run")]],
                                  copy(w.ckpts, "run")),
        "gen_bad_present": Case([run(*gen, "n_alphabets=abc", "out_dir=data")], copy(w.data, "data")),
        # 3. resource bounds: one line instead of a crash
        "gen_ndocuments": Case([run(*gen, f"ndocuments={HUGE}")]),
        "gen_depth": Case([run(*gen, "function.depth=100")]),
        "gen_alphabet": Case([run(*gen, "n_alphabets=1000000000")]),
        "train_width": Case([run(*tr, "net.n_embd=1000000", "out_dir=new")]),
        "eval_nsamples": Case([run(*ev, f"nsamples={HUGE}", "out_dir=res")]),
        "analyze_ablation": Case([run(*an, f"ablation_nsamples={HUGE}", "out_dir=an")]),
        "sample_nsamples": Case([run("sample.py", f"ckpt_dir={w.ckpts}", "device=cpu", f"nsamples={HUGE}")]),
        # 4. malformed overrides and Hydra's own errors
        "unknown_key": Case([run(*gen, "foo=1")]),
        "bad_syntax": Case([run(*gen, "seed=[1,2")]),
        "no_key": Case([run(*gen, "=3")]),
        "bad_interpolation": Case([run(*gen, "seed=${nope}")]),
        "empty_group": Case([run(*tr, "net=")]),
        "delete_unknown": Case([run(*gen, "~foo")]),
        "delete_other_value": Case([run(*gen, "~seed=3")]),
        "sweep_without_m": Case([run(*gen, "seed=1,2")]),
        "hydra_group": Case([run(*gen, "hydra/launcher=foo")]),
        "hydra_key": Case([run(*gen, "hydra.foo=1")]),
        "hydra_run_dir": Case([run(*gen, "hydra.run.dir=../x", logs=False)]),
        "hydra_job_name": Case([run(*gen, "hydra.job.name=../../x", logs=False)]),
        # 5. a killed run leaves nothing that a rerun trusts, and its leftovers are cleared
        "kill_eval": Case([killed("replace:inorder.csv", *ev, "out_dir=res/tiny", "overwrite=true"),
                           run(*ev, "out_dir=res/tiny", "skip_complete=true")], copy(w.results, "res")),
        "kill_swap": Case([run(*gen, "out_dir=d"),
                           killed("replace-to:.d.old-", *gen, "out_dir=d", "overwrite=true", "seed=1"),
                           run(*gen, "out_dir=d", "skip_complete=true")]),
        "kill_staging": Case([killed("mkdir:.d.staging-", *gen, "out_dir=d"), run(*gen, "out_dir=d")]),
        # 6. checkpoints are verified, a diverging run stops, meta.json is cross-checked, results are checked
        "eval_corrupt": Case([run(*ev[:1], "ckpt_dir=run", *ev[2:], "out_dir=res")],
                             copy(w.ckpts, "run", newest_corrupt)),
        "resume_corrupt": Case([run(*tr, f"out_dir={w.root / 'cases' / 'resume_corrupt' / 'work' / 'run'}",
                                    "resume=true")], unfinished_with_corrupt_optimizer),
        "diverge": Case([run(*tr, "out_dir=run", "optimizer.learning_rate=1e30", "optimizer.warmup_iters=0",
                                "optimizer.decay_lr=false", "optimizer.grad_clip=0", "data.batch_size=10",
                                "log.log_interval=1", "log.eval_interval=20")]),
        "meta_direct": Case([run("02_train.py", "data.path=data", *TINY_RUN, "out_dir=run")],
                            copy(w.data, "data", lambda d: edit_json(d / "meta.json",
                                                                     lambda m: m["config"].update(direct=True)))),
        "report_split_evaluations": Case([run("03_evaluate_o.py", *ev[1:], "out_dir=res/tiny_outorder"),
                                          run(*rep[:1], "results_dir=res", "kind=paper", *rep[2:], "out_dir=rep")],
                                         copy(w.results, "res")),
        "report_accuracy": Case([run("04_report.py", "results_dir=res", "reproduction_md=null", "out_dir=rep")],
                                copy(w.results, "res", accuracy_above_one)),
    }


def run_case(case: Case, runner: ForkRunner) -> Case:
    for command in case.commands:
        case.results.append(runner.run(command, case.work))
    case.after = snapshot(case.folder)
    return case


@pytest.fixture(scope="module")
def runners(tmp_path_factory) -> Queue:
    """One fork runner per parallel case (started first: they import while the world is made)."""
    logs = tmp_path_factory.mktemp("runner_logs")
    found: Queue = Queue()
    for i in range(WORKERS):
        found.put(ForkRunner(logs / str(i)))
    yield found
    ForkRunner.close_all([found.get() for _ in range(WORKERS)])


@pytest.fixture(scope="module")
def cases(runners, world) -> dict[str, Case]:
    found = all_cases(world)
    for name, case in found.items():
        case.folder = world.root / "cases" / name
        case.work.mkdir(parents=True)
        case.setup(case.folder)
        case.before = snapshot(case.folder)

    def run(case: Case) -> Case:
        runner = runners.get()
        try:
            return run_case(case, runner)
        finally:
            runners.put(runner)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return {case.folder.name: case for case in pool.map(run, found.values())}


def refused_untouched(case: Case) -> str:
    """The one error line of a case whose folder the command left exactly as it was."""
    line = error_line(case.last)
    assert case.after == case.before, (line, sorted(set(case.after.items()) ^ set(case.before.items())))
    return line


@pytest.mark.parametrize(("name", "message"), [
    ("gen_foreign", "out_dir='notes' holds files that 01_generate_data.py did not write (a.csv, b.png)"),
    ("gen_git", "out_dir='repo' holds files that 01_generate_data.py did not write (.git)"),
    ("gen_source", "did not write (model.py)"),
    ("gen_file", "out_dir='README.md' is a file, not a folder"),
    ("gen_cwd", "out_dir='.' is the working directory or a folder above it"),
    ("gen_no_marker", "out_dir='d' holds files but no meta.json, so it is not a dataset"),
    ("analyze_no_marker", "out_dir='notes' holds files but no summary.json, so it is not an analysis"),
    ("report_git", "out_dir='rep' holds files that 04_report.py did not write (.git)"),
    ("report_file", "out_dir='notes.txt' is a file, not a folder"),
    ("report_md", "reproduction_md='README.md' is a file that 04_report.py did not write"),
])
def test_only_the_stages_own_output_is_ever_replaced(cases, name, message):
    assert message in refused_untouched(cases[name])


def test_the_project_is_never_an_output(cases):
    """Its root (by the guard) and its source folders (by the foreign-file check), without a lock beside either."""
    assert f"out_dir={str(ROOT)!r} is the project's root or a folder above it" in refused_untouched(cases["gen_root"])
    assert f"out_dir={str(ROOT / 'config')!r} holds files that 02_train.py did not write (analyze, " in (
        refused_untouched(cases["train_config"]))
    assert not (ROOT.parent / f".{ROOT.name}.lock").exists() and not (ROOT / ".config.lock").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("train_bad_overwrite", "wandb.mode='foo' is not allowed; allowed: disabled, offline, online"),
    ("train_bad_new", "net.n_head=7 must divide net.n_embd=16"),
    ("train_wandb_login", "wandb.mode=online could not start a wandb run (No API key configured"),
    ("gen_bad_present", "n_alphabets='abc' must be an integer"),
])
def test_the_config_is_validated_before_anything_is_touched(cases, name, message):
    assert message in refused_untouched(cases[name])


@pytest.mark.parametrize(("name", "message"), [
    ("gen_ndocuments", f"ndocuments={HUGE} and 2 x neval_documents=100 documents of 12 tokens"),
    ("gen_depth", "function.depth=100 with function.n_functions=1 gives 2^100 in-order compositions"),
    ("gen_alphabet", "over a vocabulary of 1,000,000,007 need about"),
    ("train_width", "net.n_layer=1, net.n_embd=1000000, net.context_size=50, net.vocab_size=11 (weights, gradients, "
                    "optimizer state) need about"),
    ("eval_nsamples", f"nsamples={HUGE} and min_group_samples=0 (4,000,000,000,000 sequences"),
    ("analyze_ablation", f"ablation_nsamples={HUGE} per in-order composition (4,000,000,000,000 sequences"),
    ("sample_nsamples", f"nsamples={HUGE} samples (drawn and decoded at once) need about"),
])
def test_resource_bounds_are_one_line(cases, name, message):
    line = refused_untouched(cases[name])
    assert message in line and ("of memory, more than this machine's" in line or "at most 10,000,000" in line), line


@pytest.mark.parametrize(("name", "message"), [
    ("unknown_key", "foo is not a key of config/gen/conf.yaml"),
    ("bad_syntax", "cannot read the override 'seed=[1,2': no viable alternative at input '[1,2'"),
    ("no_key", "cannot read the override '=3': it names no key before '='"),
    ("bad_interpolation", "Interpolation key 'nope' not found"),
    ("empty_group", "net='' is not an option; options: lstm, nanogpt"),
    ("delete_unknown", "Could not delete from config. 'foo' does not exist."),
    ("delete_other_value", "Could not delete from config. The value of 'seed' is 0 and not 3."),
    ("sweep_without_m", "'seed=1,2' gives several values: add -m (--multirun) to run one job per value"),
    ("hydra_group", "Could not find 'hydra/launcher/foo'"),
    ("hydra_key", "Could not override 'hydra.foo'. (Key 'foo' not in 'HydraConf')"),
    ("hydra_run_dir", "hydra.run.dir='../x' would let Hydra's output folders escape the project through '..'"),
    ("hydra_job_name", "hydra.job.name='../../x' would let Hydra's output folders escape"),
])
def test_malformed_overrides_and_hydras_own_errors_are_one_line(cases, name, message):
    assert message in refused_untouched(cases[name])


def test_a_killed_evaluation_is_not_trusted(cases):
    case = cases["kill_eval"]
    assert case.results[0].returncode == -9
    line = error_line(case.last)  # skip_complete does not keep a set whose files no longer match summary.json
    assert "holds an incomplete in-order evaluation of another config (it differs in config.nsamples" in line


def test_a_swap_killed_halfway_is_undone_and_leftovers_are_cleared(cases):
    case = cases["kill_swap"]  # killed after setting the old dataset aside, before moving the new one in
    assert [r.returncode for r in case.results] == [0, -9, 0], case.last.stderr
    assert "note: restored d from .d.old-" in case.last.stderr and "already holds this dataset" in case.last.stdout
    assert json.loads((case.work / "d" / "meta.json").read_text())["config"]["seed"] == 0
    staging = cases["kill_staging"]  # killed while writing its staged folder
    assert [r.returncode for r in staging.results] == [-9, 0], staging.last.stderr
    assert "note: removed .d.staging-" in staging.last.stderr
    for folder in (case.work, staging.work):
        assert sorted(p.name for p in folder.iterdir()) == [".d.lock", "d"]


def test_a_corrupt_checkpoint_is_refused_or_skipped(cases):
    assert "ckpt_4.pt is corrupt: its contents no longer match the checksum" in refused_untouched(
        cases["eval_corrupt"])
    case = cases["resume_corrupt"]  # newest (step 2 of 4) corrupt: resumes from step 0, its predecessor
    assert case.last.returncode == 0, case.last.stderr
    run = case.work / "run"
    assert f"warning: checkpoint {run}/ckpt_2.pt is corrupt" in case.last.stderr and "falling back" in case.last.stderr
    assert f"resuming from {run}/ckpt_0.pt (step 0 of 4)" in case.last.stdout
    assert [load_checkpoint(path)["step"] for _, path in list_checkpoints(run)] == [0, 2, 4]


def test_a_diverging_run_stops_without_saving_it(cases):
    case = cases["diverge"]
    assert case.last.returncode == 2
    line = case.last.stderr.strip().splitlines()[-1]  # after the progress bar, closed first
    assert line.startswith("error: training diverged at step ") and "the training loss is nan" in line
    assert "stopped without saving (the newest checkpoint is step 0)" in line
    run = case.work / "run"
    assert [step for step, _ in list_checkpoints(run)] == [0]
    assert all(json.dumps(r).count("NaN") == 0 for r in load_metrics(run / "metrics.jsonl"))


def test_a_run_evaluated_in_and_out_of_order_into_two_folders_is_reported(cases):
    """Replicates of one setting where the first holds in-order results only: figure 3 reads the other."""
    case = cases["report_split_evaluations"]
    assert [r.returncode for r in case.results] == [0, 0], case.last.stderr[-3000:]
    assert (case.work / "rep" / "fig3_outorder.csv").is_file()


def test_meta_json_is_cross_checked_and_results_are_range_checked(cases):
    assert "meta.json doc_len=12 disagrees with its config (9)" in refused_untouched(cases["meta_direct"])
    assert "inorder.csv line 2: token_acc='7.5' is not a number in [0, 1]" in refused_untouched(
        cases["report_accuracy"])


def test_checkpoint_checksum_covers_every_entry_and_old_checkpoints_load_unverified(world, tmp_path, capsys):
    _, path = list_checkpoints(world.ckpts)[-1]
    ckpt = load_checkpoint(path)
    for change in (lambda c: c["rng"]["python"]["internal"].__setitem__(0, 1),
                   lambda c: c["train_config"].update(seed=5), lambda c: c["metrics"].update(x=1.0)):
        edited = torch.load(path, weights_only=True)
        change(edited)
        torch.save(edited, tmp_path / "edited.pt")
        with pytest.raises(CheckpointError, match="no longer match the checksum"):
            load_checkpoint(tmp_path / "edited.pt")
    save_checkpoint(ckpt, tmp_path / "again.pt")  # re-saving what was loaded verifies
    load_checkpoint(tmp_path / "again.pt")
    legacy = {k: v for k, v in ckpt.items() if k != "checksum"} | {"format_version": 1}
    torch.save(legacy, tmp_path / "legacy.pt")
    for _ in range(2):
        assert load_checkpoint(tmp_path / "legacy.pt")["step"] == ckpt["step"]
    assert capsys.readouterr().err.count("has no checksum (format_version=1") == 1
