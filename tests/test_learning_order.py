"""Finding 5's measures (report/learning_order.py): the literal order (t_k against k), the null model and what
compounding does not explain, and the seed intervals (report/stats.py), on synthetic per-step accuracies whose y_L
follows the independence model exactly, or departs from it by design."""

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from report import learning_order as lo
from report.runs import ReportError
from report.stats import FAILS, FRAGILE, HOLDS, MISSING, mean_ci

A = 10  # data tokens: chance 1/A
L, N = 4, 2  # 81 in-order compositions, k = 0..4 functions
FNS = np.array(list(itertools.product(range(N + 1), repeat=L)))  # (C, L) function per slot, 0 = identity
FUNCTIONS = FNS > 0  # (C, L)
K = FUNCTIONS.sum(axis=1)  # (C,)
IN_TRAIN = (K <= 1) | (np.arange(len(FNS)) % 7 == 0)
STEPS = list(range(0, 1001, 50))
WINDOW = dict(low=0.1, high=0.9, fit_level=0.9, level=0.5)  # window on chance-corrected y_L accuracy q
T_975 = {1: 12.706204736174707, 2: 4.302652729911275, 3: 3.182446305284263}  # Student-t 97.5% quantiles by df


def acc(q: np.ndarray) -> np.ndarray:
    """The accuracy whose chance-corrected value is q."""
    return 1 / A + (1 - 1 / A) * q


def learned(step: int, delay: float, width: float) -> float:
    return 1 / (1 + math.exp(-(step - delay) / width))


def synthetic(seeds=(0, 1, 2), effect=lambda k: 0.0, skill=lambda k, in_train: 1.0) -> lo.Evals:
    """Per-step q per (slot, kind) that rise over training (identities first), scaled per composition by
    skill(k, in_train); y_L's q is the product of the composition's own step q plus effect(k)."""
    cols: dict[str, list] = {f: [] for f in lo.Evals.__dataclass_fields__}
    for seed, step in itertools.product(seeds, STEPS):
        q_id = np.array([learned(step, 150 + 20 * s + 9 * seed, 60) for s in range(L)])  # (L,)
        q_fn = np.array([learned(step, 350 + 40 * s + 13 * seed, 90) for s in range(L)])  # (L,)
        scale = np.array([skill(k, t) for k, t in zip(K, IN_TRAIN, strict=True)])  # (C,)
        q = np.where(FUNCTIONS, q_fn * scale[:, None], q_id)  # (C, L)
        y = acc(q.prod(axis=1) + np.array([effect(k) for k in K]))  # (C,)
        for name, value in [("seed", np.full(len(FNS), seed)), ("step", np.full(len(FNS), step)),
                            ("functions", FUNCTIONS), ("in_train", IN_TRAIN), ("token_acc", y),
                            ("seq_acc", y ** 6), ("tf_steps", acc(q))]:
            cols[name].append(value)
    return lo.Evals(*(np.concatenate(cols[f]) for f in lo.Evals.__dataclass_fields__))


def test_mean_ci_by_hand():
    mean, low, high, n = mean_ci([1, 2, 3, 4])
    half = T_975[3] * math.sqrt(5 / 3) / 2  # s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3
    assert (mean, n) == (2.5, 4)
    assert low == pytest.approx(2.5 - half, abs=1e-12) and high == pytest.approx(2.5 + half, abs=1e-12)
    assert mean_ci([1, math.nan, 3]) == pytest.approx((2, 2 - T_975[1], 2 + T_975[1], 2))  # s = √2, n = 2
    assert mean_ci([0.7]) == (0.7, None, None, 1)
    assert math.isnan(mean_ci([math.nan])[0]) and mean_ci([])[3] == 0
    with pytest.raises(ValueError):
        mean_ci([1.0, math.inf])


def test_compounding_exact_gives_zero_residual():
    ev = synthetic()
    for subset, mask in [("all", K >= 0), ("train", IN_TRAIN), ("unseen", ~IN_TRAIN)]:
        rows = lo.residual_rows(ev, A, subset)
        assert {r["k"] for r in rows} == set(K[mask].tolist())  # no unseen composition of <= 1 function
        assert max(abs(r["residual"]) for r in rows) < 1e-9
    stats = lo.seed_statistics(ev, A, **WINDOW)
    assert all(len(s.window) >= 3 and s.fitted for s in stats)
    assert all(abs(s.slope) < 1e-9 for s in stats)


@pytest.mark.parametrize("sign", [1, -1])
def test_injected_order_gives_slope_of_its_sign(sign):
    ev = synthetic(effect=lambda k: sign * 0.01 * k)  # +1: longer compositions ahead of compounding
    stats = lo.seed_statistics(ev, A, **WINDOW)
    for s in stats:
        assert s.slope == pytest.approx(sign * 0.01, abs=1e-9)
        assert s.residual == pytest.approx({k: sign * 0.01 * k for k in range(L + 1)}, abs=1e-9)
    check = lo.slope_check(stats, lo.MORE_FIRST, 0.005, 0.95, "slope")
    assert check.state == (HOLDS if sign == 1 else FAILS)
    by_k = lo.residual_by_k(stats, 0.95)
    assert [r["residual"] for r in by_k] == pytest.approx([sign * 0.01 * k for k in range(L + 1)], abs=1e-9)


def test_null_model_is_exact_per_composition_where_step_accuracies_differ():
    """Compounding holds per composition by construction, but the function steps are done better inside longer
    compositions and worse on unseen ones: each composition's own product predicts it exactly (residual 0, slope 0),
    in every subset. The former pooled product of per-(slot, kind) means (predicted_pooled) misfits: a product of
    means is not a mean of products."""
    ev = synthetic(skill=lambda k, in_train: (0.8 + 0.05 * k) * (1.0 if in_train else 0.7))
    pooled = {}
    for subset in lo.SUBSETS:
        rows = lo.residual_rows(ev, A, subset)
        assert max(abs(r["residual"]) for r in rows) < 1e-12
        pooled[subset] = max(abs(r["observed"] - r["predicted_pooled"]) for r in rows)
    assert pooled == pytest.approx({"all": 0.134, "train": 0.244, "unseen": 0.049}, abs=0.001)  # the motivation
    stats = lo.seed_statistics(ev, A, **WINDOW)
    assert all(abs(s.slope) < 1e-12 and s.misfit < 1e-12 for s in stats)


def test_pooled_product_is_the_former_model():
    """predicted_pooled multiplies per-(slot, kind) means over the checkpoint's compositions (step_accuracy_rows)."""
    ev = synthetic(seeds=(0,), skill=lambda k, in_train: 0.8 + 0.05 * k)
    q = {(r["slot"], r["kind"]): lo.chance_corrected(r["tf_acc"], A) for r in lo.step_accuracy_rows(ev)
         if r["step"] == 400}
    at = np.flatnonzero(ev.step == 400)  # the compositions in FNS order
    c = FNS.tolist().index([1, 0, 2, 0])  # k = 2
    assert lo.pooled_q(ev, at, A)[c] == pytest.approx(
        q[1, lo.FUNCTION] * q[2, lo.IDENTITY] * q[3, lo.FUNCTION] * q[4, lo.IDENTITY], abs=1e-12)
    assert lo.predicted_q(ev, at, A)[c] == pytest.approx(np.prod(lo.chance_corrected(ev.tf_steps[at[c]], A)))


def test_step_accuracy_rows_by_slot_and_kind():
    rows = lo.step_accuracy_rows(synthetic(seeds=(0,)), "unseen")
    at = {(r["step"], r["slot"], r["kind"]): r for r in rows}
    assert len(rows) == len(STEPS) * L * 2
    r = at[400, 2, lo.FUNCTION]
    assert r["tf_acc"] == pytest.approx(acc(learned(400, 390, 90)))  # slot 2 is index 1
    assert r["n_compositions"] == int((FUNCTIONS[:, 1] & ~IN_TRAIN).sum())
    assert at[400, 1, lo.IDENTITY]["tf_acc"] == pytest.approx(acc(learned(400, 150, 60)))


def test_learning_window_and_fit():
    ev = synthetic(seeds=(0,))
    (window,) = lo.learning_windows(ev, A, 0.2, 0.9).values()
    means = {s: lo.chance_corrected(ev.token_acc[ev.step == s], A).mean() for s in STEPS}  # q, not the raw accuracy
    assert window == [s for s in STEPS if 0.2 <= means[s] <= 0.9] and 0 < len(window) < len(STEPS)
    assert [s for s in STEPS if 0.2 <= acc(means[s]) <= 0.9] != window  # the raw accuracy would give another window
    (stat,) = lo.seed_statistics(ev, A, low=0.2, high=0.9, fit_level=1.01, level=0.5)
    last = (ev.step == STEPS[-1]) & ev.in_train
    assert not stat.fitted and stat.accuracy_train == pytest.approx(ev.token_acc[last].mean())
    assert math.isnan(lo.seed_statistics(ev, A, low=2.0, high=3.0, fit_level=0.9, level=0.5)[0].slope)


def _crossing_evals() -> lo.Evals:
    """L = 2, one function per level: compositions 00 (train), 10 (train), 01 (unseen), 11 (unseen)."""
    functions = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    token = {0: [0.5, 0.1, 0.1, 0.1], 100: [0.9, 0.3, 0.1, 0.1], 200: [0.9, 0.7, 0.25, 0.1]}
    seq = {0: [0.5, 0.0, 0.0, 0.0], 100: [0.9, 0.2, 0.0, 0.0], 200: [0.9, 0.6, 0.0, 0.0]}
    return lo.Evals(seed=np.zeros(12, dtype=int), step=np.repeat(sorted(token), 4),
                    functions=np.tile(functions, (3, 1)), in_train=np.tile([True, True, False, False], 3),
                    token_acc=np.concatenate(list(token.values())), seq_acc=np.concatenate(list(seq.values())),
                    tf_steps=np.full((12, 2), 0.5))


def test_crossing_steps_on_a_hand_made_curve():
    rows = lo.crossing_rows(_crossing_evals(), [0.2, 0.5, 0.8])
    t = {(r["metric"], r["subset"], r["level"], r["k"]): r["t"] for r in rows}
    # token: train k=1 (composition 10) 0.1, 0.3, 0.7; unseen k=1 (01) 0.1, 0.1, 0.25; unseen k=2 (11) 0.1 always
    assert t == pytest.approx({
        ("token_acc", "train", 0.2, 1): 50, ("token_acc", "train", 0.5, 1): 150,
        ("token_acc", "train", 0.8, 1): math.inf,
        ("token_acc", "unseen", 0.2, 1): 100 + 100 * 0.1 / 0.15, ("token_acc", "unseen", 0.5, 1): math.inf,
        ("token_acc", "unseen", 0.8, 1): math.inf, **{("token_acc", "unseen", v, 2): math.inf for v in (0.2, 0.5, 0.8)},
        # seq: train k=1 0, 0.2, 0.6; the unseen ones stay at 0
        ("seq_acc", "train", 0.2, 1): 100, ("seq_acc", "train", 0.5, 1): 175, ("seq_acc", "train", 0.8, 1): math.inf,
        **{("seq_acc", "unseen", v, k): math.inf for v in (0.2, 0.5, 0.8) for k in (1, 2)},
    })  # no training composition of 2 functions: no (train, k=2) row; k = 0 is not reported


def test_crossing_summary_counts_never():
    rows = [{"metric": "seq_acc", "subset": "unseen", "level": 0.5, "k": 2, "t": t} for t in (100.0, 300.0, math.inf)]
    (s,) = lo.crossing_summary(rows, 0.95)
    assert (s["mean"], s["n"], s["n_never"]) == (200.0, 2, 1)


def _stats(slopes: list[float], fitted: bool = True) -> list[lo.SeedStat]:
    return [lo.SeedStat(seed, () if math.isnan(slope) else (100,), 1.0 if fitted else 0.5, fitted, {}, {}, {}, slope)
            for seed, slope in enumerate(slopes)]


@pytest.mark.parametrize("direction", [lo.MORE_FIRST, lo.FEWER_FIRST])
def test_slope_check_at_its_thresholds(direction):
    slopes = [direction * s for s in (0.03, 0.04, 0.05)]  # interval 0.04 ± 4.303 · 0.01 / √3 (claimed sign)
    _, low, high, _ = mean_ci(slopes)
    e_low, e_high = sorted((direction * low, direction * high))
    assert e_low == pytest.approx(0.04 - T_975[2] * 0.01 / math.sqrt(3))

    def state(min_effect: float) -> str:
        return lo.slope_check(_stats(slopes), direction, min_effect, 0.95, "slope").state

    assert state(e_low) == HOLDS
    assert state(math.nextafter(e_low, 1)) == FRAGILE
    assert state(e_high) == FRAGILE
    assert state(math.nextafter(e_high, 1)) == FAILS
    opposite = lo.slope_check(_stats(slopes), -direction, 0.0, 0.95, "slope")
    assert opposite.state == FAILS and opposite.value.mean == pytest.approx(direction * 0.04)
    assert lo.slope_check(_stats([math.nan] * 3), direction, 0.0, 0.95, "slope").state == MISSING


def test_gate_names_each_reason():
    def gate(stats: list[lo.SeedStat]) -> str | None:
        return lo.gate(stats, {0: "a", 1: "b", 2: "c"}, "slope", "no learning window", fit_min=0.95, min_seeds=3)

    assert gate(_stats([0.04, 0.05, 0.06])) is None
    assert gate(_stats([0.04, 0.05])) == "fewer than min_seeds 3 replicates (2)"
    unfit = gate(_stats([0.04, 0.05, 0.06], fitted=False))
    assert unfit.startswith("did not fit its training compositions") and "a (0.500), b (0.500), c (0.500)" in unfit
    assert gate(_stats([0.04, math.nan, 0.06])) == "no learning window: b"
    assert lo.gate(_stats([0.04, 0.05, 0.06]), {0: "a", 1: "b", 2: "c"}, "order", "no order of t_k", fit_min=0.95,
                   min_seeds=3) == "no order of t_k: a, b, c"  # the quantity judged: no Spearman(k, t_k) here
    assert lo.slope_check(_stats([-0.05, 0.02, 0.09]), lo.MORE_FIRST, 0.01, 0.95, "slope").state == FRAGILE


def test_evals_from_tables_reads_the_csv_columns():
    comps = np.array(["T0_0 T1_2", "T0_1 T1_0"])
    table = {"step": np.array([5, 5]), "composition": comps, "in_train": np.array([True, False]),
             "token_acc": np.array([0.5, 0.6]), "seq_acc": np.array([0.1, 0.2]), "tf_y1_acc": np.array([1.0, 0.9]),
             "tf_y2_acc": np.array([0.8, 0.7]), "y1_acc": np.array([0.0, 0.0])}
    ev = lo.evals_from_tables({3: table, 4: table})
    assert ev.functions.tolist() == [[False, True], [True, False]] * 2
    assert ev.seed.tolist() == [3, 3, 4, 4] and ev.tf_steps[1].tolist() == [0.9, 0.7]
    with pytest.raises(ReportError, match="tf_y2_acc"):
        lo.evals_from_tables({0: {k: v for k, v in table.items() if k != "tf_y2_acc"}})


def test_row_order_does_not_matter():
    ev = synthetic(effect=lambda k: 0.01 * k)
    perm = np.random.default_rng(0).permutation(len(ev.seed))
    shuffled = lo.Evals(*(getattr(ev, f)[perm] for f in lo.Evals.__dataclass_fields__))
    rows, again = lo.residual_rows(ev, A), lo.residual_rows(shuffled, A)
    assert [(r["seed"], r["step"], r["k"]) for r in again] == [(r["seed"], r["step"], r["k"]) for r in rows]
    assert [r["residual"] for r in again] == pytest.approx([r["residual"] for r in rows], abs=1e-12)


def test_literal_order_ranks_each_seeds_t_k():
    """Compounding alone orders t_k by k (fewer functions first): Spearman(k, t_k) +1 per seed, the literal claim
    of base + random holding and that of random failing; a k that never reaches the level ranks last."""
    stats = lo.seed_statistics(synthetic(), A, **WINDOW)
    assert [s.order for s in stats] == pytest.approx([1.0] * 3)
    assert lo.order_check(stats, lo.FEWER_FIRST, 0.5, 0.95, "order").state == HOLDS
    assert lo.order_check(stats, lo.MORE_FIRST, 0.5, 0.95, "order").state == FAILS
    ev = _crossing_evals()  # all compositions: k=1 (10, 01) 0.1, 0.2, 0.475; k=2 (11) 0.1 throughout
    assert lo.order_by_seed(ev, 0.2) == pytest.approx({0: 1.0})  # t_1 = 100, t_2 never
    assert math.isnan(lo.order_by_seed(ev, 0.5)[0])  # neither reaches it: no order
    flipped = lo.Evals(**{**{f: getattr(ev, f) for f in lo.Evals.__dataclass_fields__},
                          "token_acc": np.where(ev.functions.sum(axis=1) == 2, 0.9, ev.token_acc)})
    assert lo.order_by_seed(flipped, 0.2) == pytest.approx({0: -1.0})  # t_2 = 0 before t_1 = 100


def test_literal_orders_interval_stays_a_correlations():
    """Spearman's rho of three seeds, 0.5, 1 and 1 (this CPU suite's random panel): the Student-t interval, 0.833
    ± 4.303 · 0.289 / √3 = [0.116, 1.550], is clipped to [-1, 1], where a correlation lives."""
    stats = [lo.SeedStat(seed, (100,), 1.0, True, {}, {}, {}, 0.0, order=rho) for seed, rho in enumerate([0.5, 1, 1])]
    check = lo.order_check(stats, lo.MORE_FIRST, 0.5, 0.95, "order")
    mean, low, _, _ = mean_ci([0.5, 1.0, 1.0])
    assert (check.value.mean, check.value.low, check.value.high) == pytest.approx((mean, low, 1.0))
    assert low == pytest.approx(0.116, abs=1e-3) and check.state == FAILS


def test_null_model_misfit_after_training():
    """The largest |residual| over k on the unseen compositions at each seed's last checkpoint (k = 2..4 here)."""
    ev = synthetic()
    below = (ev.step == STEPS[-1]) & ~ev.in_train  # y_L 0.01 q per function below compounding there only
    ev = lo.Evals(**{**{f: getattr(ev, f) for f in lo.Evals.__dataclass_fields__},
                     "token_acc": ev.token_acc - np.where(below, (1 - 1 / A) * 0.01 * ev.n_functions, 0)})
    stats = lo.seed_statistics(ev, A, **WINDOW)
    assert [s.misfit for s in stats] == pytest.approx([0.04] * 3, abs=1e-9)
    assert lo.fit_check(stats, 0.05, 0.95, "fit").state == HOLDS
    assert lo.fit_check(stats, 0.03, 0.95, "fit").state == FAILS
    rows = lo.fit_by_k(synthetic(effect=lambda k: 0.01 * k), A, "train", 0.95)
    assert [r["k"] for r in rows] == list(range(L + 1))  # k = 0 and 1 included (training compositions here)
    assert [r["residual"] for r in rows] == pytest.approx([0.01 * k for k in range(L + 1)], abs=1e-9)


def _claims_context(null_fit_max: float):
    f5 = SimpleNamespace(window_low=0.1, window_high=0.9, min_effect=0.02, null_fit_max=null_fit_max, order_level=0.5,
                         min_order=0.5)
    return SimpleNamespace(criteria=SimpleNamespace(fit_min=0.95, min_seeds=3, f5=f5),
                           study=SimpleNamespace(confidence=0.95))


def test_two_verdicts_and_the_residual_gated_on_the_null_models_fit():
    """(a) and (b) decided apart; a null model that misfits the unseen compositions after training leaves (b)
    inconclusive, naming the misfit, and (a) as it was."""
    def panel(effect):
        ev = synthetic(effect=effect)
        return SimpleNamespace(stats=lo.seed_statistics(ev, A, **WINDOW), names={0: "s0", 1: "s1", 2: "s2"})

    panels = {"base + random": panel(lambda k: -0.03 * k), "random": panel(lambda k: 0.03 * k)}  # misfit 0.12
    fits = lo.decide_claims(lo.residual_claims(_claims_context(0.2), panels))
    assert fits[0] == "reproduced", fits[1]
    misfit = lo.decide_claims(lo.residual_claims(_claims_context(0.1), panels))
    assert misfit[0] == "inconclusive" and misfit[1].startswith("base + random: the null model does not fit: ")
    order = lo.decide_claims(lo.order_claims(_claims_context(0.1), panels))
    assert order[0] == "not reproduced" and "random: Spearman(k, t_k) at token accuracy 0.5 1.000" in order[1]


def test_accuracy_on_the_training_compositions_has_an_interval_inside_0_1():
    """Five seeds near 1 (finding 5's settings in paper_full): Student-t would reach past 1 (about 1.05); the
    logit-t interval every other accuracy of the report carries stays inside [0, 1] and holds the mean."""
    panel = SimpleNamespace(stats=[SimpleNamespace(accuracy_train=a) for a in (1.0, 0.9, 1.0, 0.8, 1.0)])
    est = lo.Panel.train_estimate(panel, 0.95)
    assert est.method == "logit-t"
    assert est.mean == pytest.approx(0.94) and 0.0 <= est.low <= est.mean <= est.high <= 1.0
