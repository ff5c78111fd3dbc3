"""04_report.py on runs made by the real stages (tests/report_runs.py): the paper report's verdicts (fit gate, seeds,
intervals, fair controls), each criterion at its boundary on in-memory variants of those runs, and the general
report."""

import csv
import dataclasses
import json
import math
import statistics
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from pipeline import report
from pipeline.errors import ConfigError
from report import findings, tables
from report.figures import value_axis
from report.measures import first_crossing, group_runs, spearman
from report.runs import DEFAULT_DEPTH, ReportError, flatten, load_runs
from report.verdicts import FRAGILE_VERDICT, INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS
from tests.conftest import ROOT, run_script, stage_config
from tests.report_runs import BASE_SET, make_results, variant

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAPER_FIGURES = ["fig1_compositions", "fig2_base_vs_random", "fig3_outorder", "fig4_dynamics",
                 "fig5_lstm_vs_transformer", "fig6_training_curves"]
T_975_2 = 4.302652729911275  # Student-t quantile 0.975 with 2 degrees of freedom (printed tables)
LAST = 30  # the real runs' last checkpoint


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return make_results(tmp_path_factory.mktemp("report_runs"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real(results) -> dict:
    runs, _ = load_runs(str(results), ["*"], [])
    return {r.tag: r for r in runs}


@pytest.fixture(scope="session")
def criteria() -> dict:
    return stage_config("report", ["kind=paper"])["criteria"]


def judge(number: int, runs: list, criteria: dict, **changes) -> findings.Finding:
    """Finding `number` on `runs` with the config's criteria, `changes` merged in (f1={...}, min_seeds=2, ...)."""
    c = {k: {**v, **changes.get(k, {})} if isinstance(v, dict) else changes.get(k, v) for k, v in criteria.items()}
    study = tables.make_study(runs, "token_acc", None, 0.95)
    built = [tables.compositions_table(study), tables.base_table(study), tables.outorder_table(study),
             tables.dynamics_table(study), tables.lstm_table(study), tables.curves_table(study)]
    return findings.FINDINGS[number - 1](findings.Context(study, {t.name: t for t in built}, c))


def seeds(run, name: str, values: list[float] | None = None, n: int = 3, **kw) -> list:
    """n replicates of `run` (seeds 0..n-1), named <name>_s<seed>; `values`: each one's unseen accuracy."""
    return [variant(run, f"{name}_s{s}", seed=s, **({"unseen": values[s]} if values else {}), **kw) for s in range(n)]


def unseen_at(results: Path, tag: str, step: int) -> float:
    """A run's mean token accuracy on its unseen in-order compositions at `step`, read from its inorder.csv."""
    with open(results / tag / "inorder.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) == step and r["in_train"] == "0"]
    return statistics.fmean(float(r["token_acc"]) for r in rows)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# ---- the paper report on real runs ----


def test_paper_report_of_real_runs_averages_seeds_and_gates_on_fit(results, tmp_path):
    out = tmp_path / "reports" / "paper"
    out.mkdir(parents=True)
    (out / "timing.json").write_text(json.dumps({"command": "./run.sh paper", "machine": "2-core CPU",
                                                 "wall_seconds": 3061}))
    done = run_script("04_report.py", "kind=paper", f"results_dir={results}", f"out_dir={out}",
                      f"reproduction_md={tmp_path / 'REPRODUCTION.md'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for stem in PAPER_FIGURES:
        assert (out / f"{stem}.png").read_bytes().startswith(PNG_SIGNATURE), stem
        rows = read_csv(out / f"{stem}.csv")
        assert rows and {"accuracy_train", "ci_low", "ci_high", "n_runs"} <= set(rows[0]), stem
    runs_csv = read_csv(out / "runs.csv")
    assert len(runs_csv) == 9 and {"run", "data.direct", "data.function.split.strategy", "model.kind",
                                   "accuracy_train"} <= set(runs_csv[0])
    assert "data.n_alphabets" not in runs_csv[0]  # the same for every run
    # three seeds of `random 9` with distinct accuracies: the report shows their mean and Student-t interval
    values = [unseen_at(results, t, LAST) for t in ("random9", "random9_seed1", "random9_seed2")]
    assert len(set(values)) > 1, f"the real runs need distinct accuracies for this test: {values}"
    mean, half = statistics.fmean(values), T_975_2 * statistics.stdev(values) / math.sqrt(3)
    assert all(abs(mean - v) > 1e-3 for v in values)  # averaging is not picking one run
    row, = [r for r in read_csv(out / "fig1_compositions.csv") if r["format"] == "step-by-step"
            and r["n_train"] == "9" and r["compositions"] == "unseen"]
    assert (int(row["step"]), int(row["n_runs"])) == (LAST, 3)
    assert float(row["accuracy"]) == pytest.approx(mean, abs=1e-6)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((mean - half, mean + half), abs=1e-6)
    record = json.loads((out / "findings.json").read_text())
    assert [f["number"] for f in record["findings"]] == list(range(1, 8))
    assert {f["verdict"] for f in record["findings"]} <= set(VERDICTS)
    f1 = record["findings"][0]
    assert f1["checks"][0]["mean"] == pytest.approx(mean) and f1["checks"][0]["n_runs"] == 3
    assert f1["checks"][0]["ci_low"] == pytest.approx(mean - half)
    # 30 steps do not fit a task: the fit gate makes finding 1 inconclusive and names the runs
    assert max(float(r["accuracy_train"]) for r in runs_csv if r["run"].startswith("random9")) < 0.95
    assert f1["verdict"] == INCONCLUSIVE and "did not fit" in f1["reason"] and "random9_seed1 (" in f1["reason"]
    assert f1["runs"] == ["random9", "random9_seed1", "random9_seed2"]
    text = (out / "findings.md").read_text()
    for key, value in flatten(record["criteria"]).items():
        assert f"`{key}` = {value}" in text, key
    assert "Student-t" in text and "inconclusive (fragile)" in text and "(did not fit)" in text
    assert all("\n" not in f["reason"] for f in record["findings"])
    repro = (tmp_path / "REPRODUCTION.md").read_text()
    assert "./run.sh paper" in repro and "2-core CPU" in repro and "51 min 01 s" in repro
    assert all(f"](reports/paper/{stem}.png)" in repro for stem in PAPER_FIGURES)


def test_replicates_are_read_at_the_step_they_all_have(real):
    runs = seeds(real["random9"], "r")
    runs[2] = variant(real["random9"], "r_s2", seed=2, last_step=20)  # evaluated up to step 20 only
    (group,) = group_runs(runs)
    point = group.inorder_point("token_acc", 0.95)
    assert (point.step, point.n) == (20, 3)
    assert group.inorder_point("token_acc", 0.95, LAST).n == 2


# ---- each criterion at its boundary (in-memory variants of the real runs, seeds with equal values) ----


def _f2_multi(real, x):  # base: 2-function compositions at x (max_multi 0.5)
    return seeds(real["base0"], "b", by_k={2: x, 3: 0.1}) + seeds(real["random7"], "r", unseen=1.0)


def _f2_margin(real, x):  # random - base on unseen 2- and 3-function compositions: x - 0.3 (random_margin 0.2)
    return seeds(real["base0"], "b", by_k={2: 0.3, 3: 0.3}) + seeds(real["random7"], "r", unseen=x)


def _f4_drop(real, x):  # in-order training: displacement 0 minus 3 = 0.95 - x (min_drop 0.3)
    return (seeds(real["random9"], "i", by_disp={0: 0.95, 1: 0.8, 2: 0.8, 3: x})
            + seeds(real["base_combo2"], "c", by_disp=dict.fromkeys(range(4), 1.0)))


def _f4_gain(real, x):  # out-of-order minus in-order training over displacement >= 1: x - 0.3 (min_gain 0.2)
    return (seeds(real["random9"], "i", by_disp={0: 1.0, 1: 0.3, 2: 0.3, 3: 0.3})
            + seeds(real["base_combo2"], "c", by_disp=dict.fromkeys(range(4), x)))


BOUNDARIES = [  # (finding, runs at the value x, the threshold x crosses, criteria changes)
    (1, lambda real, x: seeds(real["random9"], "r", unseen=x), 0.9, {}),
    (2, lambda real, x: seeds(real["base0"], "b", train=x, by_k={2: 0.1, 3: 0.1})
     + seeds(real["random7"], "r", unseen=1.0, train=1.0), 0.9, {"fit_min": 0.5}),  # min_single (k=1: the base set)
    (2, _f2_multi, -0.5, {}),
    (2, _f2_margin, 0.5, {}),
    (3, lambda real, x: seeds(real["random9"], "s", unseen=0.9) + seeds(real["direct_random9"], "d", unseen=x),
     -0.7, {}),
    (4, _f4_drop, -0.65, {}),
    (4, _f4_gain, 0.5, {}),
    (6, lambda real, x: seeds(real["random9"], "t", unseen=x) + seeds(real["random9_lstm"], "l", unseen=0.2),
     0.9, {}),
    (6, lambda real, x: seeds(real["random9"], "t", unseen=0.95) + seeds(real["random9_lstm"], "l", unseen=x),
     -0.5, {}),
]


@pytest.mark.parametrize(("number", "runs", "threshold", "changes"), BOUNDARIES)
def test_each_criterion_holds_just_past_its_threshold_and_fails_just_short(real, criteria, number, runs, threshold,
                                                                        changes):
    """threshold > 0: the criterion wants x >= threshold; < 0: x <= -threshold."""
    x = abs(threshold)
    sign = 1 if threshold > 0 else -1
    passing = judge(number, runs(real, x + sign * 0.01), criteria, **changes)
    failing = judge(number, runs(real, x - sign * 0.01), criteria, **changes)
    assert (passing.verdict, failing.verdict) == (REPRODUCED, NOT_REPRODUCED), (passing.reason, failing.reason)


def test_training_dynamics_verdict_follows_the_order_of_learning(real, criteria):
    """Finding 5 as before (Spearman of k and the step k-function compositions reach the level), on seed means."""

    def order(step: int, k: int, fewer_first: bool) -> float:
        mid = {1: 0.9, 2: 0.6, 3: 0.3} if fewer_first else {1: 0.3, 2: 0.6, 3: 0.9}
        return {0: 0.1, 20: mid.get(k, 1.0)}.get(step, 1.0)

    def runs(claimed: bool) -> list:
        return (seeds(real["base2"], "b", curve=lambda s, k: order(s, k, claimed))
                + seeds(real["random9"], "r", curve=lambda s, k: order(s, k, not claimed)))

    assert judge(5, runs(True), criteria).verdict == REPRODUCED
    reversed_ = judge(5, runs(False), criteria)
    assert reversed_.verdict == NOT_REPRODUCED and "rho base + random -1.000" in reversed_.reason
    assert judge(5, runs(True)[:2] + runs(True)[3:], criteria).verdict == INCONCLUSIVE  # 2 seeds of base + 2


# ---- fit gate, seeds, intervals ----


def test_a_run_that_did_not_fit_makes_the_verdict_inconclusive_and_is_named(real, criteria):
    runs = seeds(real["random9"], "r", unseen=0.95)
    assert judge(1, runs, criteria).verdict == REPRODUCED
    runs[1] = variant(real["random9"], "r_s1", seed=1, unseen=0.95, train=0.9)
    f = judge(1, runs, criteria)
    assert f.verdict == INCONCLUSIVE and "did not fit" in f.reason and "r_s1 (0.900)" in f.reason
    assert "r_s0" not in f.reason


@pytest.mark.parametrize(("values", "verdict"), [
    ([0.85, 0.9, 0.98], FRAGILE_VERDICT),  # the mean passes 0.9, the interval's low end does not
    ([0.82, 0.88, 0.95], FRAGILE_VERDICT),  # the mean fails, the interval's high end passes
    ([0.5, 0.52, 0.51], NOT_REPRODUCED),  # the whole interval is short of 0.9
    ([0.93, 0.94, 0.95], REPRODUCED),  # the whole interval clears 0.9
])
def test_verdict_at_the_intervals_ends_matches_a_hand_computed_interval(real, criteria, values, verdict):
    f = judge(1, seeds(real["random9"], "r", values), criteria)
    mean, half = statistics.fmean(values), T_975_2 * statistics.stdev(values) / math.sqrt(3)
    check = f.checks[0]
    assert (check["mean"], check["ci_low"], check["ci_high"], check["n_runs"]) == pytest.approx(
        (mean, mean - half, mean + half, 3))
    assert f.verdict == verdict, f.reason


def test_fewer_seeds_than_min_seeds_is_inconclusive(real, criteria):
    runs = seeds(real["random9"], "r", unseen=0.95, n=2)
    f = judge(1, runs, criteria)
    assert f.verdict == INCONCLUSIVE and "fewer than min_seeds 3" in f.reason and "(2 runs)" in f.reason
    assert judge(1, runs, criteria, min_seeds=2).verdict == REPRODUCED


# ---- fair controls ----


def test_base_set_is_judged_per_number_of_functions_against_a_random_run_of_equal_size(real, criteria):
    f = judge(2, seeds(real["base0"], "b", by_k={2: 0.6, 3: 0.1}) + seeds(real["random7"], "r", unseen=1.0),
              criteria)
    assert f.verdict == NOT_REPRODUCED and "base, 2 functions 0.600" in f.reason and "3 functions" not in f.reason
    assert any(line.startswith("| 3 (unseen) | 0.100") for line in f.details)  # each k on its own, seq too
    assert "random: seq_acc" in f.details[0]
    unseen_only = judge(2, seeds(real["base0"], "b", by_k={2: 0.3, 3: 0.3}) + seeds(real["random7"], "r", unseen=0.45),
                        criteria)  # random's own (training) 2-function compositions at 1.0 do not count
    assert unseen_only.verdict == NOT_REPRODUCED and "random minus base, 2 functions 0.150" in unseen_only.reason
    larger = judge(2, seeds(real["base0"], "b", by_k={2: 0.1, 3: 0.1}) + seeds(real["random9"], "r"), criteria)
    assert larger.verdict == NOT_RUN and f"{BASE_SET} training compositions (the base set's count)" in larger.reason


def test_direct_vs_step_by_step_is_judged_where_both_formats_fit_with_the_same_model(real, criteria):
    sbs = [*seeds(real["random9"], "s7", split={"n_compositions": 7}), *seeds(real["random9"], "s9")]
    direct7 = seeds(real["direct_random9"], "d7", split={"n_compositions": 7}, unseen=0.3)
    direct9 = seeds(real["direct_random9"], "d9", unseen=0.3, train=0.5)  # did not fit at 9 compositions
    f = judge(3, sbs + direct7 + direct9, criteria)
    assert f.verdict == REPRODUCED and "7 compositions" in f.checks[0]["name"]
    assert f.reason.startswith("passed over 9 compositions (nanogpt L1 d16): did not fit")
    assert "d9_s0 (0.500)" in f.reason
    never = judge(3, sbs + direct9, criteria)
    assert never.verdict == INCONCLUSIVE and "d9_s2 (0.500)" in never.reason
    wider = [dataclasses.replace(r, info={**r.info, "model": {**r.model, "n_embd": 32}}) for r in direct7]
    assert judge(3, sbs + wider, criteria).verdict == NOT_RUN  # another model: no comparison


def test_out_of_order_training_is_paired_with_in_order_training_by_count(real, criteria):
    inorder = seeds(real["random9"], "i", by_disp={0: 1.0, 1: 0.2, 2: 0.1, 3: 0.1})
    combo = seeds(real["base_combo2"], "c", by_disp=dict.fromkeys(range(4), 0.95))  # base set 7 + 2 = 9
    assert judge(4, inorder + combo, criteria).verdict == REPRODUCED
    bigger = seeds(real["base_combo2"], "c", split={"n_compositions": 3}, by_disp=dict.fromkeys(range(4), 0.95))
    f = judge(4, inorder + bigger, criteria)
    assert f.verdict == NOT_RUN and "in-order: 9; out-of-order: 10" in f.reason


def test_lstm_is_judged_at_the_fewest_compositions_the_transformer_needs(real, criteria):
    transformer, lstm = [], []
    for n, t_unseen, l_unseen in ((7, 0.8, 0.3), (9, 0.95, 0.3), (11, 0.95, 0.6)):  # the LSTM catches up at 11
        transformer += seeds(real["random9"], f"t{n}", split={"n_compositions": n}, unseen=t_unseen)
        lstm += seeds(real["random9_lstm"], f"l{n}", split={"n_compositions": n}, unseen=l_unseen)
    f = judge(6, transformer + lstm, criteria)
    assert f.verdict == REPRODUCED and f.checks[1]["name"] == "LSTM unseen, 9 compositions"
    assert any("Transformer 9, LSTM more than 11" in line for line in f.details)
    assert judge(6, transformer[:3] + lstm[:3], criteria).verdict == NOT_REPRODUCED  # 0.8 never reaches 0.9


def test_mechanism_finding_needs_a_fitted_run_and_judges_its_claims(real, criteria):
    assert judge(7, [real["random9"]], criteria).verdict == INCONCLUSIVE  # 30 steps: did not fit
    numbers = {"attention": {"ratio": 12.0, "best_share_current_task": 0.48, "uniform_current_task": 0.04,
                             "per_layer": [{"layer": 1, "share_current_task": 0.48}]}, "checkpoint": "c", "step": LAST}
    fitted = variant(real["random9"], "shallow")
    deep = variant(real["random9"], "deep")
    deep = dataclasses.replace(deep, info={**deep.info, "model": {**deep.model, "n_layer": 8}},
                               mechanism=numbers)
    fitted = dataclasses.replace(fitted, mechanism={**numbers, "attention": {**numbers["attention"], "ratio": 1.0}})
    f = judge(7, [fitted, deep], criteria)
    assert "deep" in f.criterion and f.verdict == NOT_REPRODUCED  # one claim measured: not all hold
    assert f.reason.startswith("attention selects holds; answer late not measured")
    assert judge(7, [fitted, deep], criteria, f7={"attention_ratio": 12.5}).reason.startswith("attention selects fails")


def test_findings_without_their_runs_are_not_run(real, criteria):
    direct = seeds(real["direct_random9"], "d")
    assert [judge(n, direct, criteria).verdict for n in range(1, 7)] == [NOT_RUN] * 6


# ---- the general report ----


def test_general_report_compares_selected_runs_and_judges_nothing(results, real, tmp_path):
    out = tmp_path / "reports" / "mine"
    repro = tmp_path / "REPRODUCTION.md"
    base = [f"results_dir={results}", f"out_dir={out}", f"reproduction_md={repro}"]
    report.run(stage_config("report", [*base, "kind=paper", "reproduction_md=null"]))
    assert (out / "findings.md").is_file()
    summary = report.run(stage_config("report", base))  # kind=general by default, into the paper report's folder
    assert summary["figure"] == "fig_token_acc_vs_n_compositions" and not repro.exists()
    assert not (out / "findings.md").exists() and not (out / "fig1_compositions.png").exists()  # stale: gone
    assert (out / "fig_token_acc_vs_n_compositions.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (out / "runs.csv").is_file() and "judges nothing" in (out / "report.md").read_text()
    rows = read_csv(out / "fig_token_acc_vs_n_compositions.csv")
    point, = [r for r in rows if r["line"] == "direct=False, strategy=random, kind=nanogpt"
              and r["data.function.split.n_compositions"] == "9"]
    values = [unseen_at(results, t, LAST) for t in ("random9", "random9_seed1", "random9_seed2")]
    assert int(point["n_runs"]) == 3 and float(point["accuracy"]) == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert point["runs"] == "random9 random9_seed1 random9_seed2"
    curves = report.run(stage_config("report", [*base, "general.x=step", "include=[random9*]", "exclude=[*lstm]",
                                                "general.compositions=all"]))
    assert curves["runs"] == ["random9", "random9_seed1", "random9_seed2"]
    rows = read_csv(out / "fig_token_acc_vs_step.csv")
    assert [(r["line"], int(r["step"])) for r in rows] == [("", 0), ("", 20), ("", LAST)]
    with pytest.raises(ReportError, match="differ in data.function.split.strategy; add it to general.group_by"):
        report.run(stage_config("report", [*base, "general.group_by=[direct]"]))
    with pytest.raises(ReportError, match="general.x='nope' names no single config key"):
        report.run(stage_config("report", [*base, "general.x=nope"]))


def test_count_axes_are_logarithmic_only_over_a_wide_range():
    def scale(values: list) -> str:
        ax = Figure().subplots()
        value_axis(ax, values, "x")
        return ax.get_xscale()

    assert [scale([9]), scale([5, 50]), scale([5, 10, 20]), scale([5, 50, 500]), scale([True, False])] == \
        ["linear", "linear", "linear", "log", "linear"]


# ---- bad input ----


@pytest.mark.parametrize(("overrides", "error", "message"), [
    (["criteria.f1.min_unseen=2"], ConfigError, "criteria.f1.min_unseen=2.0 must be in [0, 1]"),
    (["kind=paper", "metric=y1_acc"], ConfigError,
     "metric='y1_acc' is not allowed with kind=paper; allowed: token_acc, seq_acc, tf_acc"),
    (["include=[]"], ConfigError, "include=[] must list non-empty globs"),
    (["include=nothing*"], ReportError, "holds no run matching include=['nothing*']"),
    (["metric=y9_acc"], ReportError, "metric='y9_acc' is not a column of"),
])
def test_bad_input_is_one_line(results, tmp_path, overrides, error, message):
    with pytest.raises(error, match=None) as raised:
        report.run(stage_config("report", [f"results_dir={results}", f"out_dir={tmp_path / 'r'}", *overrides]))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_runs_with_equal_settings_and_seed_are_noted(real):
    twins = [variant(real["random9"], "a"), variant(real["random9"], "b"), variant(real["random9"], "c", seed=1)]
    assert report.replicate_notes(twins) == ["a and b have the same settings and seed in run.json; they are averaged "
                                             "as replicates although something else (a training setting) may tell "
                                             "them apart"]


def test_a_paper_report_refuses_runs_of_several_tasks(real):
    other = variant(real["random9"], "a5")
    other = dataclasses.replace(other, info={**other.info, "data": {**other.data, "n_alphabets": 5}})
    with pytest.raises(ReportError, match=r"differ in data.n_alphabets \(4, 5\); select one task"):
        tables.check_one_task([real["random9"], other])


def test_bad_results_column_is_one_line(results, tmp_path):
    broken = tmp_path / "results" / "broken"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text((results / "random7" / "run.json").read_text())
    (broken / "inorder.csv").write_text((results / "random7" / "inorder.csv").read_text().replace("token_acc", "tok"))
    with pytest.raises(ReportError, match="inorder.csv lacks the columns token_acc"):
        load_runs(str(tmp_path / "results"), ["*"], [])


# ---- small pieces ----


def test_crossing_step_and_rank_correlation():
    assert first_crossing([0, 100, 200], [0.1, 0.3, 0.7], 0.5) == 150
    assert first_crossing([0, 100], [0.6, 0.9], 0.5) == 0
    assert first_crossing([0, 100], [0.1, 0.2], 0.5) == math.inf
    assert spearman([1, 2, 3], [10, 20, math.inf]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_labels_name_a_non_default_number_of_functions_and_depth(real):
    assert real["base2"].split_label == "base + 2 (N=2, depth=3)"
    default = variant(real["random9"], "d")
    default = dataclasses.replace(default, info={**default.info, "data": {
        **default.data, "function": {**default.data["function"], "n_functions": 3, "depth": DEFAULT_DEPTH}}})
    assert default.split_label == "random 9"
    gen = OmegaConf.load(ROOT / "config" / "gen" / "conf.yaml")
    assert gen.function.depth == DEFAULT_DEPTH  # the implicit depth is the generator's default


def test_an_analysis_named_by_its_own_settings_is_attached_to_its_run(results, tmp_path):
    """An analysis and an evaluation of one training run can sit in different results/ folders (each is named by
    its own settings): the analysis is matched to the run by the checkpoint folder it analysed."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / "random9-a1b2c3").mkdir()
    shutil.move(copy / "random9" / "analysis", copy / "random9-a1b2c3" / "analysis")
    runs, notes = load_runs(str(copy), ["*"], [])
    by_tag = {r.tag: r for r in runs}
    assert by_tag["random9"].mechanism is not None and by_tag["random9"].mechanism["step"] > 0
    assert by_tag["random9_seed1"].mechanism is None and not notes  # not another run's, and no "skipped" note


def test_a_results_file_that_no_longer_matches_its_manifest_is_refused(results, tmp_path):
    """A kill between an evaluation's CSV and its summary.json (written last) leaves a CSV the manifest does not
    vouch for: the report refuses it in one line instead of mixing two evaluations."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    path = copy / "random9" / "inorder.csv"
    path.write_text(path.read_text().replace(",1,", ",0,", 1))
    with pytest.raises(ReportError, match="inorder.csv does not match the sha256 that summary.json records"):
        load_runs(str(copy), ["random9"], [])
    load_runs(str(copy), ["random7"], [])  # the other runs still read
