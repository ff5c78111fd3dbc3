"""The sweep machinery: experiments expand into per-stage Hydra multiruns; tiny sweeps run end to end."""

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.manifest import write_entry
from pipeline.cli import run_or_exit
from pipeline.tags import DEFAULT_N_FUNCTIONS, data_tag, train_tag
from sweep import driver, experiments
from sweep.driver import (
    FAMILY,
    Plan,
    composed,
    earlier_invocations,
    expand,
    parse_args,
    report_args,
    resumed,
    route,
    suite_of,
    timing_record,
)
from sweep.experiments import EXPERIMENTS, Experiment, Launcher, Profile, Suite, load
from tests.conftest import ROOT, run_sh, snapshot


def test_tags_name_every_setting_that_distinguishes_runs():
    assert data_tag(False, "random", 50) == "stepbystep_random50"  # the reference's default tag
    assert data_tag(True, "base", 0, seed=2) == "direct_base0_seed2"
    assert data_tag(False, "random_biased", 20, n_identity=2) == "stepbystep_random_biased20_id2"
    assert data_tag(False, "randombase_combo", 9, n_compositions_inorder=4) == "stepbystep_randombase_combo9_in4"
    assert data_tag(False, "random", 50, seed=1, n_functions=4) == "stepbystep_random50_n4_seed1"
    assert train_tag("stepbystep_random50", "nanogpt") == "stepbystep_random50"
    assert train_tag("stepbystep_random50", "lstm") == "stepbystep_random50_lstm"


def test_the_implicit_n_of_the_tags_is_the_generators_default():
    gen = OmegaConf.load(ROOT / "config" / "gen" / "conf.yaml")
    assert OmegaConf.select(gen, "function.n_functions") == DEFAULT_N_FUNCTIONS


def plan(names: list[str], user: list[str], profile: Profile | None = None) -> Plan:
    return Plan([load(Experiment, n) for n in names], profile or Profile(), [], route(user))


def test_every_experiment_and_suite_loads_with_distinct_run_tags():
    cpu = load(Profile, "cpu")
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        p = plan([path.stem], [], cpu)
        tags = [t for g in p.experiments[0].groups for net in g.net for t in p.train_tags(g, net)]
        assert len(tags) == len(set(tags)), path.name
    for name in ("paper", "paper_full"):  # the quick check and the decisive suite: every finding
        assert {load(Experiment, n).finding for n in load(Suite, name).experiments} == set(range(1, 8))


def test_stage_calls_share_runs_between_experiments_and_follow_seed_sweeps():
    calls = plan(["mechanism", "out_of_order"], ["seed=0,1"]).calls()
    (train,) = [o for stage, o in calls if stage == "train"]  # one model, one multirun: random 50 is shared
    assert "seed=0,1" not in train  # a dataset key: training follows the datasets' tags
    assert train[-1] == ("data.tag=stepbystep_random50,stepbystep_random50_seed1,"
                         "stepbystep_base_combo34,stepbystep_base_combo34_seed1")
    outorder = [o for stage, o in calls if stage == "outorder"]
    assert outorder == [["ckpt_tag=stepbystep_random50,stepbystep_random50_seed1,stepbystep_base_combo34,"
                         "stepbystep_base_combo34_seed1"]]
    assert ("analyze", ["ckpt_tag=stepbystep_random50,stepbystep_random50_seed1"]) in calls
    n4 = plan(["lstm_vs_transformer"], ["function.n_functions=4"]).calls()
    lstm = plan(["lstm_vs_transformer"], ["function.n_functions=4"]).train_tags(n4_group(), "lstm")
    assert [t.split("-")[0] for t in lstm] == [f"stepbystep_random{n}_n4_lstm" for n in (25, 50, 100, 512)]
    assert all(t.count("-") == 1 for t in lstm)  # epochs=6, off the default: a hashed LSTM run
    assert ("inorder", ["ckpt_tag=" + ",".join([f"stepbystep_random{n}_n4" for n in (25, 50, 100, 512)] + lstm)]) in n4


def n4_group():
    return load(Experiment, "lstm_vs_transformer").groups[1]


def planned(suite: Suite) -> tuple[Plan, list[tuple[str, list[str]]], dict[str, dict], list[dict]]:
    """A suite's plan, dry: the plan, its stage calls, its datasets (tag -> 01_generate_data.py's config) and its
    training runs (02_train.py's configs)."""
    p = plan(suite.experiments, [], load(Profile, suite.profile))
    calls = p.calls()
    data = {c["tag"]: c for stage, o in calls if stage == "gen" for c in (composed("gen", job) for job in expand(o))}
    return p, calls, data, [composed("train", job) for stage, o in calls if stage == "train" for job in expand(o)]


def test_the_decisive_suite_plans_five_seeds_and_at_least_the_reference_length_for_every_judged_run():
    """Issue 20, dry: paper_full trains every run at least the reference's 6,250 steps, one length per format and
    model (compared runs: counts, seeds), five seeds of every dataset but the one-seed controls an experiment pins
    (`seed:` in its group: training_dynamics' exposure controls, judged by no verdict), and its report gates on five."""
    suite = load(Suite, "paper_full")
    p, calls, data, trains = planned(suite)
    steps = {t["tag"]: t["epochs"] * (data[t["data"]["tag"]]["ndocuments"] // t["data"]["batch_size"])
             for t in trains}  # as 02_train.py counts them
    reference = OmegaConf.load(ROOT / "config" / "report" / "conf.yaml").reference.steps
    assert min(steps.values()) >= reference == 6250
    lengths: dict[tuple, set[int]] = {}
    for t in trains:
        lengths.setdefault((data[t["data"]["tag"]]["direct"], t["net"]["kind"]), set()).add(steps[t["tag"]])
    assert lengths == {(False, "nanogpt"): {6250}, (True, "nanogpt"): {32000}, (False, "lstm"): {12500}}
    pinned = {tag for g in p.experiments for group in g.groups if "seed" in group.data for tag in p.data_tags(group)}
    seeds: dict[str, set[int]] = {}
    for tag, c in data.items():
        if tag not in pinned:
            setting = json.dumps({k: v for k, v in c.items() if k not in ("seed", "tag", "out_dir")}, sort_keys=True)
            seeds.setdefault(setting, set()).add(c["seed"])
    assert len(seeds) > 10 and all(s == {0, 1, 2, 3, 4} for s in seeds.values())
    assert {t["data"]["tag"] for t in trains} == set(data)  # every dataset is trained on
    report = p.report(calls, report_args(suite, suite.experiments, suite.profile))
    assert composed("report", report)["criteria"]["min_seeds"] == 5
    dense = {t["data"]["tag"] for t in trains if t["log"]["dense_interval"] == 25 and t["log"]["dense_until"] >= 1500}
    assert {data[d]["seed"] for d in dense} == {0, 1, 2, 3, 4}  # finding 5's learning window, every seed
    assert {data[d]["function"]["split"]["strategy"] for d in dense} == {"base", "random"}


def test_finding_5_has_dense_checkpoints_and_three_seeds_at_the_studys_scale():
    """Issue 21, dry: paper_scale's finding-5 runs checkpoint every 25 steps in the learning window, three seeds."""
    _, _, data, trains = planned(load(Suite, "paper_scale"))
    dense = [t for t in trains if t["log"]["dense_interval"] == 25]
    assert {(data[t["data"]["tag"]]["function"]["split"]["strategy"], data[t["data"]["tag"]]["seed"]) for t in dense} \
        == {(s, seed) for s in ("base", "random") for seed in (0, 1, 2)}
    assert all(t["log"]["dense_until"] == 2000 for t in dense)


@pytest.mark.parametrize("name", ["paper", "paper_full"])
def test_the_controls_train_nothing_of_their_own_but_the_lstm_at_every_transformer_count(name):
    """Finding 2's controls (random 16, 25, 50) are few_compositions' runs; finding 6's LSTM trains on exactly the
    datasets of the Transformer beside it (every count, every seed)."""
    suite = load(Suite, name)
    p, *_ = planned(suite)
    groups = {e: load(Experiment, e).groups for e in suite.experiments}
    few, alone = groups["few_compositions"][0], groups["base_alone"][1]
    assert set(p.train_tags(alone, "nanogpt")) <= set(p.train_tags(few, "nanogpt"))
    transformer, lstm = groups[next(e for e in suite.experiments if e.endswith("lstm_vs_transformer"))]
    seeds = next(o for o in load(Profile, suite.profile).gen if o.startswith("seed="))
    assert len(set(p.data_tags(lstm))) == 4 * len(seeds.split(","))  # 25, 50, 100, 512
    assert p.data_tags(transformer) == p.data_tags(lstm)


def test_driver_options_and_bad_names():
    options, overrides = parse_args(["few_compositions", "profile=full", "launcher=joblib", "seed=0,1"])
    assert options == {"experiments": ["few_compositions"], "profile": "full", "launcher": "joblib"}
    assert overrides == ["seed=0,1"]
    with pytest.raises(ConfigError, match="experiment='nope' is unknown"):
        load(Experiment, "nope")
    with pytest.raises(ConfigError, match="launcher='nope' is unknown; known: joblib, ray, slurm, submitit_local"):
        load(Launcher, "nope")
    paper = load(Suite, "paper")  # a report of other experiments or another profile goes to a folder of its own
    assert report_args(paper, paper.experiments, "cpu") == ["kind=paper", "reproduction_md=REPRODUCTION.md",
                                                             "name=paper"]
    assert report_args(paper, paper.experiments, "full") == ["kind=paper", "name=paper_profile_full"]  # no record
    assert report_args(paper, ["base_alone"], "cpu") == ["kind=paper", "name=paper_base_alone"]  # no record
    assert report_args(suite_of("mechanism"), ["mechanism"], "tiny") == ["kind=general", "name=mechanism_profile_tiny"]


BAD_EXPERIMENTS = {  # file text -> the one-line refusal
    "finding: 1\ngrups:\n  - data: {seed: [0]}\n":
        "grups is not a key of this config; allowed here: finding, title, groups",
    "finding: 1\ngroups:\n  - data: {seed: [0]}\n    nets: [lstm]\n":
        "groups[0].nets is not a key of this config; allowed here: data, net, evaluate, train, eval, analyze",
    "finding: one\ngroups:\n  - data: {seed: [0]}\n": "finding='one' must be an integer",
    "groups:\n  - net: lstm\n": "groups[0].net='lstm' must be a list",
    "groups:\n  - data: {seed: [0]}\n    evaluate: [outorderr]\n":
        "groups[0].evaluate[0]='outorderr' is not allowed; allowed: inorder, outorder, analyze",
    "title: no groups\n": "groups=[] must list at least one group (data, net, evaluate, ...)",
}


@pytest.mark.parametrize(("text", "error"), BAD_EXPERIMENTS.items(), ids=range(len(BAD_EXPERIMENTS)))
def test_a_misspelled_or_mistyped_key_of_an_experiment_is_refused_in_one_line(tmp_path, monkeypatch, text, error):
    folder = tmp_path / "config" / "sweep"
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "mine.yaml").write_text(text)
    monkeypatch.setattr(experiments, "SWEEP_CONFIG", folder)
    with pytest.raises(ConfigError) as refused:
        load(Experiment, "mine")
    assert str(refused.value) == f"config/sweep/experiment/mine.yaml: {error}"


def test_a_misspelled_key_of_a_suite_or_profile_is_refused_in_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "config" / "sweep"
    for kind, text in (("suite", "experiments: [tiny]\nprofile: tiny\npaper: yes please\n"),
                       ("profile", "gen: [ndocuments=10]\nevaluate: [nsamples=1]\n")):
        (folder / kind).mkdir(parents=True)
        (folder / kind / "mine.yaml").write_text(text)
    monkeypatch.setattr(experiments, "SWEEP_CONFIG", folder)
    with pytest.raises(ConfigError, match=r"^config/sweep/suite/mine.yaml: paper='yes please' must be true or false$"):
        load(Suite, "mine")
    with pytest.raises(ConfigError, match=r"^config/sweep/profile/mine.yaml: evaluate is not a key of this config; "
                                          "allowed here: gen, train, eval, analyze, report$"):
        load(Profile, "mine")


def sweep(workdir: Path, *args: str, via_run_sh: bool = False) -> subprocess.CompletedProcess:
    if via_run_sh:
        return run_sh("tiny", f"workdir={workdir}", *args)
    return subprocess.run([sys.executable, "-m", "sweep", "tiny", f"workdir={workdir}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def assert_complete(workdir: Path) -> dict[str, dict]:
    """Both tiny runs have every stage's output, the analysis is there for one, and the report judged them;
    returns a snapshot of their results (each file's sha256, inode and mtime)."""
    stamps = {}
    runs = workdir / "runs" / "tiny" / "results"
    for tag, n in (("stepbystep_random5", 5), ("stepbystep_random10", 10)):
        (results,) = (p for p in runs.glob(f"{tag}-*") if (p / "run.json").is_file())  # -<hash>: the tiny sizes
        for name in ("inorder.csv", "outorder.csv", "summary.json", "run.json"):
            assert (results / name).is_file(), results / name
            stamps[f"{tag}/{name}"] = snapshot(results / name, identity=True)
        assert json.loads((results / "run.json").read_text())["data"]["function"]["split"]["n_compositions"] == n
    (analysis,) = runs.glob("*/analysis/summary.json")  # 05_analyze.py ran on one run (and only there) ...
    summary = json.loads(analysis.read_text())
    assert "mechanism" in summary and "/stepbystep_random10-" in summary["checkpoint"]  # ... the 10-composition one
    stamps["analysis"] = snapshot(analysis.parent, identity=True)
    report = json.loads((workdir / "reports" / "tiny" / "findings.json").read_text())
    assert [r.split("-")[0] for r in sorted(report["runs"])] == ["stepbystep_random10", "stepbystep_random5"]
    verdicts = {f["number"]: f["verdict"] for f in report["findings"]}
    assert verdicts[1] != "not run" and verdicts[7] != "not run", verdicts  # judged from the runs and the analysis
    assert (workdir / "reports" / "tiny" / "findings.md").is_file()
    return stamps


def test_run_sh_tiny_sweep_completes_then_skips_everything_under_either_launcher(tmp_path):
    """One tiny sweep through run.sh on the submitit launcher (into a workdir it creates), then the same sweep on
    joblib: every job of the second finds its stage's output and skips, so both launchers ran every stage with the
    same configs (and the user's nsamples, not the profile's)."""
    workdir = tmp_path / "new" / "workdir"
    first = sweep(workdir, "launcher=submitit_local", "nsamples=2", via_run_sh=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "hydra/launcher=submitit_local" in first.stdout
    stamps = assert_complete(workdir)
    timing = json.loads((workdir / "reports" / "tiny" / "timing.json").read_text())
    assert set(timing["stage_seconds"]) == {"generate", "train", "evaluate", "analyze", "report"}
    assert all(s > 0 for s in timing["stage_seconds"].values())
    assert timing["invocations"] == [] and timing["finished"] is True
    assert timing["total_seconds"] == pytest.approx(sum(timing["stage_seconds"].values()))
    for summary in (workdir / "runs" / "tiny" / "results").glob("*/summary.json"):
        sections = json.loads(summary.read_text())
        assert sections["inorder"]["nsamples"] == sections["outorder"]["nsamples"] == 2
    second = sweep(workdir, "launcher=joblib", "nsamples=2", via_run_sh=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "hydra/launcher=joblib" in second.stdout
    assert assert_complete(workdir) == stamps
    assert second.stdout.count("already holds this dataset: skipping") == 2
    assert second.stdout.count("final checkpoint (step 25): skipping") == 2
    assert second.stdout.count("already holds this in-order evaluation: skipping") == 2
    assert second.stdout.count("already holds this out-of-order evaluation: skipping") == 2
    assert second.stdout.count("already holds this analysis of") == 1


LAUNCHER_CLASS = {"joblib": "JoblibLauncher", "submitit_local": "LocalLauncher", "slurm": "SlurmLauncher",
                  "ray": "RayLauncher"}  # config/sweep/launcher/<name>.yaml -> the Hydra launcher it must select


def hydra_config(folder: str, name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "config" / folder)):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("launcher", LAUNCHER_CLASS)
def test_launcher_overrides_compose_with_every_stage(launcher):
    """Each launcher's overrides, as the driver adds them to every stage (and a user's hydra.launcher.* key), give
    that stage the launcher and the values asked for, on keys the launcher defines. Composing needs the launcher's
    Hydra plugin: without it (Ray's, under requirements.txt) the overrides are parsed, then the test skips
    (docs/reference.md, Tests)."""
    overrides = load(Launcher, launcher).overrides
    parsed = OverridesParser.create().parse_overrides(overrides)
    if launcher == "ray" and find_spec("hydra_plugins.hydra_ray_launcher") is None:
        pytest.skip("the Ray launcher plugin (requirements-cluster.txt) is not installed: its overrides were parsed, "
                    "not composed with the stages' configs")
    extra = ["hydra.launcher.partition=gpu"] if launcher == "slurm" else []
    choice = [o for o in overrides if o.startswith("hydra/launcher=")]
    values = [o for o in parsed + OverridesParser.create().parse_overrides(extra) if o.key_or_group != "hydra/launcher"]
    defined = hydra_config("gen", "conf", choice)  # the launcher's own keys (Ray's "+" keys go to ray.init())
    assert all((launcher == "ray" and o.is_add()) or OmegaConf.select(defined, o.key_or_group, default=KeyError)
               is not KeyError for o in values), "an override names a key the launcher does not have"
    for folder in FAMILY.values():
        cfg = hydra_config(folder, "conf", [*overrides, *extra])
        assert cfg.hydra.launcher._target_.endswith("." + LAUNCHER_CLASS[launcher]), folder
        for o in values:
            assert OmegaConf.select(cfg, o.key_or_group) == o.value(), (folder, o.key_or_group)


def test_unknown_experiment_is_one_line(tmp_path):
    result = sweep(tmp_path, "few_compositions")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: experiment 'few_compositions' is not in suite 'tiny'; it has: tiny; run "
                                     "it on its own with ./run.sh few_compositions")


def test_jobs_run_in_the_directory_they_were_launched_from(tmp_path, monkeypatch):
    """A Ray worker starts a job in its own directory: the job still reads and writes under the launch dir."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "config" / "gen")):
        cfg = compose(config_name="conf", return_hydra_config=True)
    launch_dir, worker_dir = tmp_path / "launch", tmp_path / "worker"
    launch_dir.mkdir()
    worker_dir.mkdir()
    cfg.hydra.runtime.cwd = str(launch_dir)
    monkeypatch.chdir(worker_dir)
    HydraConfig.instance().set_config(cfg)
    try:
        assert run_or_exit(os.getcwd) == str(launch_dir)
    finally:
        HydraConfig.instance().cfg = None
    monkeypatch.chdir(worker_dir)
    assert run_or_exit(os.getcwd) == str(worker_dir)  # outside a Hydra job: stays put


def test_timing_sums_every_invocation_of_the_same_command(tmp_path):
    """A resumed sweep's timing.json adds the earlier invocations of its command (not another command's) to the
    totals and the per-stage shares, each marked whether it ran to its report."""
    path = tmp_path / "timing.json"
    first = timing_record("./run.sh paper", "cpu", ["a"], [], {"generate": 10.0, "train": 20.0}, False)
    path.write_text(json.dumps(first))
    assert earlier_invocations(path, "./run.sh tiny") == []
    earlier = earlier_invocations(path, "./run.sh paper")
    second = timing_record("./run.sh paper", "cpu", ["a"], earlier, {"generate": 0.0, "train": 6.0, "report": 2.0},
                           True)
    assert second["invocations"] == [{"wall_seconds": 30.0, "stage_seconds": first["stage_seconds"],
                                      "finished": False}]
    assert second["wall_seconds"] == 6.0  # its stages', not its report's
    assert second["total_stage_seconds"] == {"generate": 10.0, "train": 26.0, "report": 2.0}
    assert second["total_seconds"] == 38.0 and second["stage_shares"]["train"] == pytest.approx(26 / 38)
    path.write_text(json.dumps(second))  # a third invocation keeps both
    assert [i["finished"] for i in earlier_invocations(path, "./run.sh paper")] == [False, True]


def test_a_running_stage_beats_so_a_killed_sweep_keeps_its_time_and_a_stop_is_not_counted(tmp_path, monkeypatch):
    """While a stage runs, the driver is called back every BEAT seconds (it rewrites timing.json then), so a sweep
    killed midway has recorded its time to its last beat; a gap between two beats longer than 2 * BEAT (the sweep
    was stopped: Ctrl-Z, SIGSTOP) counts as 2 * BEAT."""
    monkeypatch.setattr(driver, "BEAT", 0.05)
    stage = tmp_path / "stage.py"
    stage.write_text("import time\ntime.sleep(1)\n")
    clock, beats = driver.Clock(), []
    clock.start("train")
    assert driver.launch([str(stage)], tmp_path, beat=lambda: beats.append(clock.tick()["train"]))
    assert len(beats) >= 5 and beats == sorted(beats) and 0 < beats[-1] < 1.5
    now = iter([100.0, 100.0, 100.08, 1100.08])  # made, started, two ticks
    monkeypatch.setattr(driver, "time", SimpleNamespace(monotonic=lambda: next(now)))
    stopped = driver.Clock()
    stopped.start("evaluate")
    assert stopped.tick()["evaluate"] == pytest.approx(0.08)
    assert stopped.tick()["evaluate"] == pytest.approx(0.08 + 2 * 0.05)  # stopped 1,000 s between two beats


def test_the_record_is_rewritten_at_each_beat_of_a_stage_but_not_while_the_report_swaps_its_folder(tmp_path,
                                                                                                   monkeypatch):
    """The tiny suite's plan with a stand-in for launching the scripts, each beating once: every stage's beat
    rewrites timing.json, the report's does not (04_report.py replaces its whole folder, carrying timing.json over:
    a write then could land in the folder it swaps out), and the last record is the finished invocation's."""
    timing, seen = tmp_path / "reports" / "tiny" / "timing.json", []

    def launch(args: list[str], workdir: Path, beat=lambda: None) -> bool:
        before = timing.read_bytes() if timing.exists() else None
        beat()
        seen.append((args[0], (timing.read_bytes() if timing.exists() else None) != before))
        return True

    monkeypatch.setattr(driver, "launch", launch)
    assert driver.main(["tiny", f"workdir={tmp_path}"]) == 0
    assert seen[-1] == ("04_report.py", False) and all(wrote for _, wrote in seen[:-1]), seen
    record = json.loads(timing.read_text())
    assert record["finished"] is True and len(record["stages"]) == len(seen) - 1
    assert set(record["stage_seconds"]) == {"generate", "train", "evaluate", "analyze", "report"}


def test_status_says_what_the_workdir_holds_of_the_plan_and_runs_nothing(tmp_path, monkeypatch, capsys):
    """`./run.sh SUITE status=true`: each stage's planned outputs (a run shared by experiments once), counted done or
    started by their folders' manifests; nothing is launched or made. Every sweep prints that line first."""
    monkeypatch.setattr(driver, "launch", lambda *args, **kwargs: pytest.fail(f"status=true launched {args[0]}"))
    _, _, data, trains = planned(load(Suite, "tiny"))
    workdir = tmp_path / "work"
    assert driver.main(["tiny", "status=true", f"workdir={workdir}"]) == 0
    assert capsys.readouterr().out == (f"tiny in {workdir}: gen 0 of 2 done, train 0 of 2 done, inorder 0 of 2 done, "
                                       "outorder 0 of 2 done, analyze 0 of 1 done\n")
    assert not workdir.exists()
    for c, stage, complete in ((next(iter(data.values())), "gen", True), (trains[0], "train", False)):
        (workdir / c["out_dir"]).mkdir(parents=True)
        write_entry(workdir / c["out_dir"], stage, config={}, fingerprint={}, files=[], complete=complete)
    assert driver.main(["tiny", "status=true", f"workdir={workdir}"]) == 0
    assert "gen 1 of 2 done, train 0 of 2 done (1 started), inorder 0 of 2 done" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="status='yes' must be true"):
        driver.main(["tiny", "status=yes"])


def test_only_a_resumed_sweep_sums_earlier_invocations(tmp_path):
    """A sweep whose datasets were all absent made every run itself: a timing.json of the same command already in
    its report folder (a committed copy, another machine's record) is not one of its invocations."""
    calls = [("gen", ["function.split.n_compositions=5,10"]), ("train", ["data.tag=x"])]
    assert not resumed(calls, tmp_path)
    (folder,) = {tmp_path / composed("gen", ["function.split.n_compositions=10"])["out_dir"]}
    folder.mkdir(parents=True)
    assert not resumed(calls, tmp_path)  # a folder without its meta.json holds no dataset
    (folder / "meta.json").write_text("{}")
    assert resumed(calls, tmp_path)


def test_the_direct_depth_search_changes_only_the_model_of_the_longest_cpu_recipe():
    """Issue 21, dry: direct_depth_search trains direct_recipe_search's datasets by its longest recipe with 4 blocks
    (1 head) and 12 blocks (1, 4 and 12 heads); every other setting of each run is that recipe's."""
    p = plan(["direct_recipe_search", "direct_depth_search"], [], load(Profile, "cpu"))
    trains = [composed("train", job) for stage, o in p.calls() if stage == "train" for job in expand(o)]

    def recipe(c: dict) -> str:  # a run's settings but its model's depth and heads and the names it is given
        c = json.loads(json.dumps(c))
        c["net"].pop("n_layer"), c["net"].pop("n_head"), c["wandb"].pop("name"), c.pop("tag"), c.pop("out_dir")
        return json.dumps(c, sort_keys=True)

    longest = {recipe(c) for c in trains if c["epochs"] == 32 and c["net"]["n_layer"] == 2}
    deeper = [c for c in trains if c["net"]["n_layer"] > 2]
    assert len(longest) == 9 and {recipe(c) for c in deeper} == longest  # the same 9 datasets and recipe
    models = sorted((c["net"]["n_layer"], c["net"]["n_head"]) for c in deeper)
    assert models == sorted([(4, 1), (12, 1), (12, 4), (12, 12)] * 9)
