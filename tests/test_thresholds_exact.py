"""Finding 7's mechanism criteria and finding 5's learning window, effect, literal order and null-model fit, each
exactly AT its threshold in config/report/conf.yaml (issue 13): the documented comparison (>= or <=) holds at
equality, and the next float beyond fails, so a `>=` turned `>` (or `<=` turned `<`) is caught, not only a threshold
moved by 0.01.

The numbers are chosen so that the code's own arithmetic lands exactly on the threshold (asserted first)."""

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from analysis.patching import patching_numbers
from analysis.probes import residual_sites
from core.config import parse
from report import learning_order as lo
from report.mechanism import NOT_TESTABLE, first_readable, judge_mechanism, judge_patched, site_layer
from report.stats import FAILS, HOLDS
from report.verdicts import Criteria
from tests.conftest import ROOT
from tests.test_patching import summary_rows

CRITERIA = parse(Criteria, OmegaConf.to_container(OmegaConf.load(ROOT / "config" / "report" / "conf.yaml").criteria),
                 "criteria")
F5, F7 = CRITERIA.f5, CRITERIA.f7
CHANCE = 0.25  # 4 tokens: chance + margins below are exact in binary


def beyond(value: float, op: str) -> float:
    """The next float on the failing side of `value` for a criterion `x op threshold`."""
    return math.nextafter(value, -math.inf if op == ">=" else math.inf)


# ---- finding 7: report.mechanism.judge_mechanism ----


def probes(embed: float, final: float, n_layer: int = F7.min_layers, first: int | None = None) -> dict:
    """The residual sites of an n_layer model (residual_sites; min_layers blocks: the shallowest judged), at chance
    between the embedding and the last site, so that both readouts first read the answer at the last site (an MLP
    output, in the last half) when `final` reaches late_accuracy; or, `first` given, from block `first`'s MLP on."""
    sites = [{"site": site, "index": i} for i, site in enumerate(residual_sites(n_layer))]
    for s in sites:
        readable = first is not None and s["site"].endswith("resid_post") and site_layer(s["site"]) >= first
        s["probe_acc"] = s["logit_lens_acc"] = embed if s["index"] == 0 else 1.0 if readable else CHANCE
    sites[-1].update(probe_acc=final, logit_lens_acc=final)
    return {"chance": CHANCE, "sites": sites, "embed": sites[0], "final": sites[-1]}


def ablation(baseline: float, worst: float = CHANCE) -> dict:
    """Clean accuracy `baseline`; the worst attention and the worst MLP ablation both leave `worst`."""
    return {"baseline": baseline, "chance": CHANCE, "worst_mean_ablation_attn": worst, "worst_mean_ablation_mlp": worst}


def test_attention_ratio_holds_at_equality():
    ratio = F7.attention_ratio  # attention_selects: best head's share >= attention_ratio x uniform
    assert judge_mechanism({"attention": {"ratio": ratio}}, F7)["attention_selects"] is True
    assert judge_mechanism({"attention": {"ratio": beyond(ratio, ">=")}}, F7)["attention_selects"] is False


def test_early_margin_holds_at_equality():
    at = CHANCE + F7.early_margin  # answer_late: the embedding's logit lens and probe <= chance + early_margin
    assert judge_mechanism({"probes": probes(at, 1.0)}, F7)["answer_late"] is True
    assert judge_mechanism({"probes": probes(beyond(at, "<="), 1.0)}, F7)["answer_late"] is False


def test_late_accuracy_holds_at_equality():
    at = F7.late_accuracy  # answer_late: the last site >= late_accuracy; mlp_executes: the probe first reaching
    claims = judge_mechanism({"probes": probes(CHANCE, at)}, F7)  # it (first_readable, >=) is an MLP output
    assert first_readable(probes(CHANCE, at), at)["index"] == 2 * F7.min_layers
    assert claims["answer_late"] is True and claims["mlp_executes"] is True
    claims = judge_mechanism({"probes": probes(CHANCE, beyond(at, ">="))}, F7)
    assert claims["answer_late"] is False and claims["mlp_executes"] is False


def test_late_fraction_holds_at_equality():
    n_layer = 12  # answer_late: the readout first reaches late_accuracy in a block >= late_fraction x n_layer
    at = math.ceil(F7.late_fraction * n_layer)
    assert judge_mechanism({"probes": probes(CHANCE, 1.0, n_layer, first=at)}, F7)["answer_late"] is True
    assert judge_mechanism({"probes": probes(CHANCE, 1.0, n_layer, first=at - 1)}, F7)["answer_late"] is False


def test_min_layers_holds_at_equality():
    at = F7.min_layers  # answer_late is judged in models of >= min_layers blocks, else not testable at this depth
    assert judge_mechanism({"probes": probes(CHANCE, 1.0, at)}, F7)["answer_late"] is True
    assert judge_mechanism({"probes": probes(CHANCE, 1.0, at - 1)}, F7)["answer_late"] == NOT_TESTABLE


def test_min_margin_holds_at_equality():
    at = CHANCE + F7.min_margin  # both_necessary: clean accuracy - chance >= min_margin
    assert at - CHANCE == F7.min_margin and beyond(at, ">=") - CHANCE < F7.min_margin
    assert judge_mechanism({"ablation": ablation(at)}, F7)["both_necessary"] is True
    assert judge_mechanism({"ablation": ablation(beyond(at, ">="))}, F7)["both_necessary"] is False


def test_ablation_share_holds_at_equality():
    baseline = 1.0  # both_necessary: each worst ablation <= baseline - ablation_share x (baseline - chance)
    at = baseline - F7.ablation_share * (baseline - CHANCE)
    assert judge_mechanism({"ablation": ablation(baseline, at)}, F7)["both_necessary"] is True
    for part in ("worst_mean_ablation_attn", "worst_mean_ablation_mlp"):
        short = {**ablation(baseline, at), part: beyond(at, "<=")}
        assert judge_mechanism({"ablation": short}, F7)["both_necessary"] is False


# ---- finding 7: activation patching, report.mechanism.judge_patched ----


def patching(attn: dict, mlp: dict) -> dict:
    """05_analyze.py's patching numbers: restored fractions by layer (attn/mlp {kind: [...]}), gaps of 5 nats."""
    return patching_numbers(summary_rows(attn, mlp, gap={"function": 5.0, "identity": 5.0}))


def patched(numbers: dict) -> dict[str, bool | None]:
    return judge_patched({"patching": numbers}, F7)


def test_min_restored_holds_at_equality():
    at, short = F7.min_restored, beyond(F7.min_restored, ">=")  # each claim: restored >= min_restored
    attn, mlp = {"function": [0.0, at], "identity": [0.0, at]}, {"function": [0.0, at], "identity": [0.0, 0.0]}
    assert patched(patching(attn, mlp)) == {"patched_attention_selects": True, "patched_mlp_executes": True,
                                            "patched_identity_alike": True}
    assert patched(patching({**attn, "identity": [0.0, short]}, mlp))["patched_identity_alike"] is False
    assert patched(patching(attn, {**mlp, "function": [0.0, short]}))["patched_mlp_executes"] is False
    assert patched(patching({**attn, "function": [0.0, short]}, mlp))["patched_attention_selects"] is False


def test_min_gap_holds_at_equality():
    at = F7.min_gap  # judged only where the clean-minus-corrupted gap >= min_gap, at both kinds of step
    restored = {"function": [0.0, 1.0], "identity": [0.0, 1.0]}
    for gaps, judged in [({"function": at, "identity": at}, {True}), ({"function": beyond(at, ">="), "identity": at},
                         {None}), ({"function": at, "identity": beyond(at, ">=")}, {None})]:
        numbers = patching(restored, restored)
        for kind, gap in gaps.items():
            numbers[kind]["gap"] = gap  # (summary.json keeps it to 6 decimals: set here to the float)
        assert set(patched(numbers).values()) == judged, gaps


# ---- finding 5: report.learning_order ----

A = 16  # the window is on chance-corrected accuracy, any A: with 16 tokens both its ends are reachable exactly


def accuracy_at(q: float) -> float:
    """A token accuracy whose chance-corrected value (learning_order.chance_corrected) is exactly q."""
    acc = 1 / A + (1 - 1 / A) * q
    for _ in range(64):
        found = lo.chance_corrected(np.array([acc]), A)[0]
        if found == q:
            return acc
        acc = math.nextafter(acc, math.inf if found < q else -math.inf)
    raise AssertionError(f"no accuracy maps exactly to q={q}")


def window_evals(accuracies: list[float]) -> lo.Evals:
    """One seed, a checkpoint per accuracy (steps 0, 1, ...), two compositions (k = 1, 2) both at that accuracy."""
    n = len(accuracies)
    token = np.repeat(accuracies, 2)
    return lo.Evals(seed=np.zeros(2 * n, dtype=int), step=np.repeat(np.arange(n), 2),
                    functions=np.tile([[True, False], [True, True]], (n, 1)), in_train=np.ones(2 * n, dtype=bool),
                    token_acc=token, seq_acc=token, tf_steps=np.ones((2 * n, 2)))


def test_learning_window_includes_both_ends():
    low, high = F5.window_low, F5.window_high  # the window: low <= a checkpoint's mean q <= high
    at_low, at_high = accuracy_at(low), accuracy_at(high)
    below, above = math.nextafter(at_low, -math.inf), math.nextafter(at_high, math.inf)
    q = lo.chance_corrected(np.array([below, above]), A)
    assert q[0] < low and q[1] > high
    ev = window_evals([below, at_low, accuracy_at(0.5), at_high, above])
    (window,) = lo.learning_windows(ev, A, low, high).values()
    assert window == [1, 2, 3]
    (stat,) = lo.seed_statistics(ev, A, low=low, high=high, fit_level=0.0, level=F5.order_level)
    assert stat.window == (1, 2, 3)


@pytest.mark.parametrize("direction", [lo.MORE_FIRST, lo.FEWER_FIRST])
def test_min_effect_holds_at_equality(direction):
    effect = F5.min_effect  # slope >= +min_effect (more first) or <= -min_effect (fewer first), conservative end

    def state(slope: float) -> str:
        stats = [lo.SeedStat(seed, (0,), 1.0, True, {}, {}, {}, slope) for seed in range(2)]  # interval [s, s]
        return lo.slope_check(stats, direction, effect, 0.95, "slope").state

    assert state(direction * effect) == HOLDS
    assert state(beyond(direction * effect, ">=" if direction == lo.MORE_FIRST else "<=")) == FAILS


def seed_stats(**values: float) -> list[lo.SeedStat]:
    """Two seeds with the same values (SeedStat fields): a zero-width interval at exactly that value."""
    return [lo.SeedStat(seed, (0,), 1.0, True, {}, {}, {}, math.nan, **values) for seed in range(2)]


@pytest.mark.parametrize("direction", [lo.MORE_FIRST, lo.FEWER_FIRST])
def test_min_order_holds_at_equality(direction):
    at = -direction * F5.min_order  # Spearman(k, t_k) >= +min_order (fewer first) or <= -min_order (more first)
    check = lo.order_check(seed_stats(order=at), direction, F5.min_order, 0.95, "order")
    assert check.value.ends == (at, at) and check.state == HOLDS
    short = beyond(at, ">=" if direction == lo.FEWER_FIRST else "<=")
    assert lo.order_check(seed_stats(order=short), direction, F5.min_order, 0.95, "order").state == FAILS


def test_null_fit_max_holds_at_equality():
    at = F5.null_fit_max  # the largest |residual| over k after training <= null_fit_max
    assert lo.fit_check(seed_stats(misfit=at), at, 0.95, "fit").state == HOLDS
    assert lo.fit_check(seed_stats(misfit=beyond(at, "<=")), at, 0.95, "fit").state == FAILS
