"""Run identity (pipeline/tags.py name_run) and the sweep driver running exactly what was typed: no two runs of a
sweep share a folder, a second writer of one folder is refused, every override reaches its stage or stops the
driver."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.config import fingerprint, neutral_keys
from core.errors import ConfigError
from core.io import OutputLock
from pipeline.tags import schema_of
from sweep.driver import Plan, composed, main, route, suite_of
from sweep.experiments import Experiment, Profile, Suite, load
from tests.conftest import ROOT, TINY_DATA, run_script, snapshot, stage_config

TINY_NET = ["net.n_embd=16", "data.batch_size=100", "log.eval_interval=1000"]


def test_tags_name_the_settings_that_differ_and_only_those():
    assert stage_config("gen", [])["tag"] == "stepbystep_random50"  # defaults: the readable tag alone
    a, b = (stage_config("gen", [f"ndocuments={n}"])["tag"] for n in (400, 500))
    assert a.startswith("stepbystep_random50-") and b.startswith("stepbystep_random50-") and a != b
    assert stage_config("gen", ["ndocuments=400", "out_dir=elsewhere"])["tag"] == a  # where it goes: not identity
    assert stage_config("train", ["threads=2", "out_dir=x", "data.path=y"])["tag"] == "stepbystep_random50"
    assert stage_config("train", ["net=lstm"])["tag"] == "stepbystep_random50_lstm"  # the net's own defaults
    assert stage_config("train", ["net=lstm", "optimizer.learning_rate=3e-4"])["tag"].startswith(
        "stepbystep_random50_lstm-")
    deep = stage_config("train", ["net=nanogpt_deep"])["tag"]
    assert deep == "stepbystep_random50_nanogpt_deep"
    evals = {stage_config("eval", [f"nsamples={n}"])["tag"] for n in (2, 4, 20)}
    assert len(evals) == 3 and "stepbystep_random50" in evals  # nsamples=20 is the default


NEUTRAL = {  # stage -> the keys its typed config marks as not changing its output
    "gen": {"out_dir", "overwrite", "skip_complete"},
    "train": {"device", "threads", "resume", "skip_complete", "overwrite", "wandb"},
    "inorder": {"batch_size", "device", "threads", "nfailures", "skip_complete", "overwrite", "wandb"},
    "analyze": {"device", "threads", "batch_size", "out_dir", "skip_complete", "overwrite"},
}


@pytest.mark.parametrize("stage", NEUTRAL)
def test_the_keys_that_leave_a_run_its_identity_are_marked_on_the_typed_configs_fields(stage):
    """NEUTRAL on a schema's field leaves it out of the fingerprint (and so of the tag); every other key is in."""
    schema = schema_of(stage)
    assert neutral_keys(schema) == NEUTRAL[stage]
    config = stage_config({"inorder": "eval"}.get(stage, stage), [])
    for key in config:
        kept = fingerprint(schema, {**config, key: "changed"}) == fingerprint(schema, config)
        assert kept == (key in NEUTRAL[stage]), key


def test_a_changed_yaml_default_keeps_existing_runs_findable_or_refuses_in_one_line(tmp_path):
    """Change a default in a copy of the project: a run made under the old default keeps its folder name, and the
    new default's run is refused there in one line that names the key, both values and how to use the old run; the
    old run is untouched, and found again with the value it was made with and its tag."""
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(".*", "tests", "runs", "data", "ckpts", "results",
                                                                 "reports", "outputs", "wandb", "__pycache__"))
    work = tmp_path / "work"
    work.mkdir()

    def generate(*overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(project / "01_generate_data.py"), *TINY_DATA, "skip_complete=true",
                               *overrides, f"hydra.run.dir={work / 'logs'}"], cwd=work, capture_output=True,
                              text=True, timeout=120)

    def datasets() -> list[Path]:
        return [p for p in (work / "data").iterdir() if not p.name.startswith(".")]  # not the folders' locks

    assert generate().returncode == 0
    (folder,) = datasets()
    before = snapshot(folder, identity=True)
    conf = project / "config" / "gen" / "conf.yaml"
    conf.write_text(conf.read_text().replace("n_alphabets: 10 ", "n_alphabets: 12 "))  # a default changes
    changed = generate()
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert (f"out_dir='data/{folder.name}' holds a dataset of another config (it differs in n_alphabets: 10 there, "
            f"12 here), so this one is refused") in changed.stderr
    assert f"pass the values it was made with and tag={folder.name}" in changed.stderr
    assert datasets() == [folder] and snapshot(folder, identity=True) == before
    kept = generate("n_alphabets=10", f"tag={folder.name}")
    assert kept.returncode == 0 and "already holds this dataset: skipping" in kept.stdout, kept.stderr
    assert snapshot(folder, identity=True) == before


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("identity")
    result = run_script("01_generate_data.py", *TINY_DATA, "function.split.n_compositions=5", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def multirun(script: str, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), "-m", "hydra/launcher=joblib",
                           "hydra.launcher.n_jobs=2", *overrides, f"hydra.sweep.dir={cwd / 'logs'}"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_parallel_sweep_gives_every_run_its_own_folder(data):
    data_tag = next((data / "data").iterdir()).name
    done = multirun("02_train.py", data, f"data.tag={data_tag}", *TINY_NET, "net.n_layer=1,2", "seed=1,2")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(p for p in (data / "ckpts").iterdir() if p.is_dir())
    assert len(runs) == 4, [r.name for r in runs]
    seen = set()
    for run in runs:
        ckpt = torch.load(run / "ckpt_4.pt", weights_only=True)
        cfg = ckpt["train_config"]
        assert cfg["tag"] == run.name and ckpt["model_args"]["n_layer"] == cfg["net"]["n_layer"]
        seen.add((cfg["net"]["n_layer"], cfg["seed"]))
    assert seen == {(1, 1), (1, 2), (2, 1), (2, 2)}  # each folder holds the run its name says
    ckpt_tag = runs[0].name
    done = multirun("03_evaluate_i.py", data, f"ckpt_tag={ckpt_tag}", "nckpts=1", "min_group_samples=0",
                    "nsamples=1,2")
    assert done.returncode == 0, done.stderr[-2000:]
    results = sorted(p for p in (data / "results").iterdir() if p.is_dir())
    assert len(results) == 2
    assert {json.loads((r / "summary.json").read_text())["inorder"]["nsamples"] for r in results} == {1, 2}
    # a report compares the two evaluations of one model by the evaluation key: not averaged as replicates
    report = run_script("04_report.py", "name=by_nsamples", "general.x=nsamples",
                        f"include=[{results[0].name},{results[1].name}]", "exclude=[none*]", cwd=data)
    assert report.returncode == 0, report.stderr
    out = data / "reports" / "by_nsamples"
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert sorted(r["eval.nsamples"] for r in rows) == ["1", "2"] and {r["run"] for r in rows} == {
        r.name for r in results}
    assert (out / "fig_token_acc_vs_nsamples.png").is_file() and not (out / "findings.md").exists()


def test_a_second_writer_of_one_folder_is_refused_and_the_first_is_intact(data, tmp_path):
    data_tag = next((data / "data").iterdir()).name
    out = tmp_path / "run"
    with OutputLock(out):  # a first writer, still at work
        out.mkdir()
        (out / "metrics.jsonl").write_text("{}\n")
        second = run_script("02_train.py", f"data.path={data / 'data' / data_tag}", f"out_dir={out}", *TINY_NET,
                            cwd=tmp_path)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
        assert f"out_dir='{out}' is being written by pid" in second.stderr
        assert [p.name for p in out.iterdir()] == ["metrics.jsonl"]  # untouched
        assert (out / "metrics.jsonl").read_text() == "{}\n"


def test_the_driver_passes_every_override_to_its_stage_and_refuses_unknown_ones(tmp_path):
    tiny = load(Profile, "tiny")
    user = ["nsamples=2", "max_per_pattern=3", "ndocuments=300", "net.n_embd=24"]
    routed = route(user)
    assert routed["gen"] == ["ndocuments=300"] and routed["train"] == ["net.n_embd=24"]
    assert routed["eval"] == ["nsamples=2", "max_per_pattern=3"] and routed["analyze"] == ["nsamples=2"]
    calls = Plan([load(Experiment, "tiny")], tiny, [], routed).calls()
    inorder = next(o for stage, o in calls if stage == "inorder")
    assert inorder.index("nsamples=2") > inorder.index("nsamples=1")  # after the profile's: the user's wins
    job = [o for o in inorder if not o.startswith("ckpt_tag=")]
    cfg = stage_config("eval", [*job, "ckpt_tag=x"])
    assert (cfg["nsamples"], cfg["max_per_pattern"], cfg["nckpts"]) == (2, 3, 2)
    gen = next(o for stage, o in calls if stage == "gen")
    assert composed("gen", [o.replace("5,10", "5") for o in gen])["tag"].endswith(
        stage_config("gen", ["ndocuments=300", "neval_documents=100", "function.split.n_compositions=5",
                             "function.split.strategy=random", "out_dir=runs/tiny/data/x"])["tag"][-7:])
    workdir = tmp_path / "never"
    bad = subprocess.run([sys.executable, "-m", "sweep", "tiny", "ndocumets=5", f"workdir={workdir}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "'ndocumets=5': no stage's config has this key" in bad.stderr and not workdir.exists()


def test_a_bad_value_stops_the_driver_before_anything_runs(tmp_path):
    """Every planned job's config is validated as its stage validates it at entry, each value of a sweep too."""
    tiny = load(Profile, "tiny")
    with pytest.raises(ConfigError, match=r"^03_evaluate_i.py: nsamples=0 must be in \[1, "):
        Plan([load(Experiment, "tiny")], tiny, [], route(["nsamples=2,0"])).calls()
    with pytest.raises(ConfigError, match=r"^02_train.py: optimizer.beta1=1.5 must be < 1$"):
        Plan([load(Experiment, "tiny")], tiny, [], route(["optimizer.beta1=1.5"])).calls()
    workdir = tmp_path / "never"
    bad = subprocess.run([str(ROOT / "run.sh"), "tiny", "nsamples=0", f"workdir={workdir}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2, bad.stdout[-2000:]
    assert bad.stderr.strip().splitlines() == ["error: 03_evaluate_i.py: nsamples=0 must be in [1, 1e+12]"]
    assert bad.stdout == "" and not workdir.exists()  # no stage ran: nothing generated, trained or created


def test_one_experiment_runs_as_its_own_suite():
    suite = suite_of("few_compositions")
    assert suite == Suite(experiments=["few_compositions"], profile="cpu", report="few_compositions", paper=False)
    assert suite_of("paper").experiments[0] == "few_compositions"  # a suite name is a suite
    with pytest.raises(ConfigError, match="not in suite 'tiny'.*; run it on its own with ./run.sh few_compositions$"):
        main(["tiny", "few_compositions"])
