"""Activation patching (analysis/patching.py), the per-head hook point `blocks.{l}.attn.hook_z`, and the probes'
identity/function split.

The known-answer models are built by hand on a task whose functions each write one constant token (level d,
function i writes (d + i) mod A everywhere), so the answer y_{k+1} depends on slot k's task token alone:
  selector  layer 0, head 0 attends from the positions writing y_{k+1} to slot k's task token and writes that
            task's constant into the residual stream; head 1 attends to the start token; every other sublayer
            adds nothing. The answer depends on one site: head 0 of layer 0 (and so layer 0's attention output).
  executor  the same head writes the task token into dimensions the unembedding does not read, and layer 1's MLP
            turns it into the constant: the answer depends on a chain, layer 0's head 0 then layer 1's MLP.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from analysis.layout import step_query_positions, task_position
from analysis.patching import (
    PATCHING_HEADER,
    SLOT_KINDS,
    answer_logit_diff,
    corrupt_slot,
    measure_patching,
    patch_sites,
    patching_bars,
    patching_documents,
    patching_numbers,
    patching_rows,
    restored_fraction,
)
from analysis.probes import collect_residuals, probe_rows
from net.model import build_model
from report.mechanism import judge_patched, judge_patching, mechanism_lines, strongest_heads
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import BIJECTION, IDENTITY, FunctionTables, sample_functions
from synthetic.task import TaskSpec
from tests.test_analysis import F7, PNG_SIGNATURE, copy_model
from tests.test_analysis import SPEC as COPY_SPEC
from tests.test_analysis import documents as copy_documents

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = TaskSpec(n_alphabets=4, seq_len=2, depth=2, n_functions=2)  # documents of 12 tokens, vocabulary 13
CONST = (np.arange(SPEC.depth)[:, None] + np.arange(SPEC.n_functions + 1)[None, :]) % SPEC.n_alphabets  # (L, N+1)
CONSTANT_FUNCTIONS = FunctionTables(
    kinds=((IDENTITY,) + (BIJECTION,) * SPEC.n_functions,) * SPEC.depth,  # labels only: fn 0 counts as the identity
    tables=np.broadcast_to(CONST[:, :, None], (SPEC.depth, SPEC.n_functions + 1, SPEC.n_alphabets)).copy(),
    perms=np.tile(np.arange(SPEC.seq_len), (SPEC.depth, SPEC.n_functions + 1, 1)),
)
C, HS = 64, 32  # residual width, two heads of 32


def hand_built(through_mlp: bool, beta: float = 10.0, gamma: float = 10.0):
    """The selector (through_mlp=False) or the executor (True) of the module docstring: residual dims 0..V-1 hold
    the token, V..V+T-1 the position, V+T head 1's output, V+T+1.. the executor's scratch copy of the task token."""
    V, T = SPEC.vocab_size, SPEC.doc_len - 1
    spare, scratch = V + T, V + T + 1
    model = build_model({"kind": "nanogpt", "vocab_size": V, "context_size": T, "n_layer": 2, "n_head": 2,
                         "n_embd": C})
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_final.weight")) else 0.0)
        model.wte.weight[:, :V] = torch.eye(V)
        model.wpe.weight[:, V : V + T] = torch.eye(T)
        W = model.blocks[0].attn.c_attn.weight  # (3C, C): query, key, value rows; head h owns rows h*HS.. of each
        for k, queries in enumerate(step_query_positions(SPEC)):
            W[task_position(k), V + queries] = beta  # head 0: a query of step k looks for slot k's position
        W[HS, V : V + T] = beta  # head 1: every query looks for position 0 (the start token)
        for p in range(T):
            W[C + p, V + p] = 1.0  # head 0: a key is its position
        W[C + HS, V] = 1.0  # head 1: only position 0 has a key
        for h in range(2):
            W[2 * C + h * HS : 2 * C + h * HS + V, :V] = torch.eye(V)  # a value is its token
        proj = model.blocks[0].attn.c_proj.weight  # (C, C): residual dim <- head dim
        for d in range(SPEC.depth):
            for i in range(SPEC.n_functions + 1):
                task = SPEC.task_token(d, i)
                proj[scratch + task if through_mlp else CONST[d, i], task] = gamma
        proj[spare, HS + SPEC.start_id] = gamma
        if through_mlp:
            mlp = model.blocks[1].mlp
            for d in range(SPEC.depth):
                for i in range(SPEC.n_functions + 1):
                    task = SPEC.task_token(d, i)
                    mlp.c_fc.weight[task, scratch + task] = gamma  # hidden unit `task` fires on its scratch dim
                    mlp.c_proj.weight[CONST[d, i], task] = gamma  # and writes the task's constant
    return model.eval()


def effects_by_site(model, n: int = 40, seed: int = 0) -> dict[tuple[str, str], float]:
    """(site label, positions) -> fraction restored, steps and slot kinds pooled."""
    rows = patching_rows(measure_patching(model, SPEC, CONSTANT_FUNCTIONS, n=n, seed=seed, batch_size=32))
    return {(r[1], r[5]): r[8] for r in rows if r[6] == "all" and r[7] == "all"}


# ---- hook_z ----


def random_model(n_head: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return build_model({"kind": "nanogpt", "vocab_size": SPEC.vocab_size, "context_size": SPEC.doc_len,
                        "n_layer": 2, "n_head": n_head, "n_embd": 16}).eval()


def some_documents(n: int = 6, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    functions = sample_functions(rng, SPEC, frozenset(), False)
    comps = np.stack([np.tile(np.arange(SPEC.depth), (n, 1)), rng.integers(0, SPEC.n_functions + 1, (n, 2))], -1)
    return torch.from_numpy(make_documents(SPEC, functions, comps, sample_inputs(rng, n, SPEC)))


def test_hook_z_adds_no_parameters():
    model = build_model({"kind": "nanogpt", "vocab_size": 7, "context_size": 5, "n_layer": 1, "n_head": 2,
                         "n_embd": 8})
    assert list(model.state_dict()) == [
        "wte.weight", "wpe.weight", "blocks.0.ln_1.weight", "blocks.0.attn.c_attn.weight",
        "blocks.0.attn.c_proj.weight", "blocks.0.ln_2.weight", "blocks.0.mlp.c_fc.weight",
        "blocks.0.mlp.c_proj.weight", "ln_final.weight", "lm_head.weight"]
    assert "blocks.0.attn.hook_z" in model.hook_points


def test_hook_z_is_each_heads_output_before_the_projection():
    model = random_model()
    idx = some_documents()[:, :-1]
    logits, cache = model.run_with_cache(idx)  # hook_pattern is read: the manual attention path
    _, sdpa = model.run_with_cache(idx, names=["blocks.1.attn.hook_z"])  # scaled_dot_product_attention
    for layer in range(2):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        assert z.shape == (len(idx), idx.size(1), 2, 8)
        attn = model.blocks[layer].attn
        torch.testing.assert_close(attn.c_proj(z.reshape(*z.shape[:2], 16)), cache[f"blocks.{layer}.hook_attn_out"])
        v = attn.c_attn(cache[f"blocks.{layer}.ln_1.hook_normalized"])[..., 32:].view(*z.shape)  # (B, T, nh, hs)
        by_pattern = torch.einsum("bhts,bshd->bthd", cache[f"blocks.{layer}.attn.hook_pattern"], v)
        torch.testing.assert_close(z, by_pattern)
    torch.testing.assert_close(sdpa["blocks.1.attn.hook_z"], cache["blocks.1.attn.hook_z"], rtol=1e-5, atol=1e-6)


def test_patching_hook_z_with_its_own_value_changes_nothing():
    model = random_model()
    idx = some_documents()[:, :-1]
    logits, cache = model.run_with_cache(idx, names=["blocks.0.attn.hook_z"])
    z = cache["blocks.0.attn.hook_z"]
    with model.hooks({"blocks.0.attn.hook_z": lambda _: z.clone()}):
        assert torch.equal(model(idx), logits)
    with model.hooks({"blocks.0.attn.hook_z": lambda t: t.index_fill(2, torch.tensor([1]), 0.0)}):
        assert not torch.allclose(model(idx), logits)  # and the replacement is used: zeroing head 1 matters


def test_hook_z_under_the_kv_cache():
    model = random_model()
    idx = some_documents()[:, :-1]
    P = SPEC.prompt_len
    seen = []

    def zero_head_1(z):
        seen.append(tuple(z.shape))
        return z.index_fill(2, torch.tensor([1]), 0.0)

    with torch.no_grad(), model.hooks({"blocks.1.attn.hook_z": zero_head_1}):
        full = model(idx)
        logits, state = model.prefill(idx[:, :P])
        steps = [logits]
        for t in range(P, idx.size(1)):
            logits, state = model.step(idx[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, P - 1 :], rtol=1e-5, atol=1e-5)
    B, T = idx.shape
    assert seen == [(B, T, 2, 8), (B, P, 2, 8)] + [(B, 1, 2, 8)] * (T - P)
    assert not torch.allclose(full, model(idx))


# ---- documents ----


@pytest.mark.parametrize("kind", SLOT_KINDS)
def test_corrupted_documents_differ_in_the_slot_only(kind):
    functions = sample_functions(np.random.default_rng(1), SPEC, frozenset(), False)
    for k in range(SPEC.depth):
        docs = patching_documents(np.random.default_rng(k), SPEC, functions, k, kind, n=300)
        clean, corrupted = docs.clean.numpy(), docs.corrupted.numpy()
        differs = clean != corrupted
        assert differs[:, task_position(k)].all() and differs.sum() == len(clean)
        fn = (clean[:, task_position(k)] - SPEC.task_token(k, 0))
        new = (corrupted[:, task_position(k)] - SPEC.task_token(k, 0))
        assert ((fn == 0) if kind == "identity" else (fn > 0)).all()
        assert (new >= 1).all() and (new <= SPEC.n_functions).all()  # the same level, never the identity
        assert {(a, b) for a, b in zip(fn, new, strict=True)} == {
            (a, b) for a in (range(1) if kind == "identity" else range(1, 3)) for b in (1, 2) if a != b}
        # the corrupted composition, written out, agrees with the corrupted input up to y_{k+1}
        comps = np.stack([np.tile(np.arange(SPEC.depth), (len(clean), 1)),
                          clean[:, 1 : 1 + SPEC.depth] - SPEC.task_token(np.arange(SPEC.depth), 0)], -1)
        comps[:, k, 1] = new
        rewritten = make_documents(SPEC, functions, comps, clean[:, SPEC.depth + 2 : SPEC.depth + 2 + SPEC.seq_len])
        start = SPEC.step_starts[k]
        assert np.array_equal(rewritten[:, :start], corrupted[:, :start])
        assert np.array_equal(rewritten[:, start : start + SPEC.seq_len], docs.corrupted_answer.numpy())
        assert np.array_equal(clean[:, start : start + SPEC.seq_len], docs.clean_answer.numpy())


def test_a_function_slot_needs_a_second_function():
    comps = np.array([[[0, 1], [1, 0]]])
    with pytest.raises(ValueError, match="n_functions=1 < 2"):
        corrupt_slot(np.random.default_rng(0), comps, 0, n_functions=1)
    assert corrupt_slot(np.random.default_rng(0), comps, 1, n_functions=1)[0, 1, 1] == 1  # identity -> function


# ---- patching on the known-answer models ----


def test_the_metric_is_the_answer_logit_difference():
    logits = torch.zeros(1, 3, 5)
    logits[0, 1, 2], logits[0, 2, 4], logits[0, 2, 0] = 3.0, 1.0, 5.0
    diff = answer_logit_diff(logits, torch.tensor([1, 2]), torch.tensor([[2, 4]]), torch.tensor([[0, 0]]))
    assert diff.tolist() == [(3.0 + (1.0 - 5.0)) / 2]


def test_patching_the_one_site_restores_everything_and_the_others_nothing():
    model = hand_built(through_mlp=False)
    effects = effects_by_site(model)
    for positions in ("all", "step"):
        for label in ("L0 attn", "L0 H0"):  # the head, and the layer's attention that contains it
            assert effects[(label, positions)] == pytest.approx(1.0, abs=1e-6), (label, positions)
        for label in ("L0 H1", "L0 mlp", "L1 attn", "L1 H0", "L1 H1", "L1 mlp"):
            assert effects[(label, positions)] == pytest.approx(0.0, abs=1e-6), (label, positions)
    assert len(effects) == 2 * len(patch_sites(2, 2, True))


def test_patching_through_an_mlp():
    model = hand_built(through_mlp=True)
    effects = effects_by_site(model)
    for positions in ("all", "step"):
        for label in ("L0 attn", "L0 H0", "L1 mlp"):  # the head that selects, the MLP that writes the answer
            assert effects[(label, positions)] == pytest.approx(1.0, abs=1e-5), (label, positions)
        for label in ("L0 H1", "L0 mlp", "L1 attn", "L1 H0", "L1 H1"):
            assert effects[(label, positions)] == pytest.approx(0.0, abs=1e-6), (label, positions)


def test_with_one_head_patching_the_head_is_patching_the_attention():
    """One head: hook_z is the whole attention before c_proj: its patch restores what the layer's does."""
    model = random_model(n_head=1)
    functions = sample_functions(np.random.default_rng(1), SPEC, frozenset(), False)
    effects = measure_patching(model, SPEC, functions, n=20, seed=0, batch_size=7)
    for e in effects.values():
        by_site = {(site.layer, site.component, positions): v for (site, positions), v in e.patched.items()}
        for layer in range(2):
            for positions in ("all", "step"):
                attn, head = by_site[(layer, "attn", positions)], by_site[(layer, "head", positions)]
                assert np.abs(attn - e.corrupted).max() > 1e-4  # the patch moves the metric: not a 0 == 0
                np.testing.assert_allclose(head, attn, rtol=1e-6, atol=1e-9)
    rows = {(r[2], r[4], r[5], r[6], r[7]): r[8] for r in patching_rows(effects)}
    assert len(rows) == 2 * 3 * 2 * (SPEC.depth + 1) * 3  # layers x (attn, H0, mlp) x positions x steps x kinds
    for (layer, component, positions, step, kind), restored in rows.items():
        if component == "head":
            assert restored == pytest.approx(rows[(layer, "attn", positions, step, kind)], rel=1e-5, abs=1e-9)


def test_the_strongest_head_per_layer():
    """The selector's layer 0: head 0 carries the whole effect, head 1 none; layer 1 restores nothing (no share)."""
    numbers = patching_numbers(patching_rows(measure_patching(hand_built(False), SPEC, CONSTANT_FUNCTIONS, n=20,
                                                              seed=0, batch_size=32)))
    ((layer, head, restored, share), (layer1, _, restored1, share1)) = strongest_heads(numbers["function"]["step"])
    assert (layer, head, layer1) == (0, 0, 1)
    assert restored == pytest.approx(1.0, abs=1e-6) and share == pytest.approx(1.0, abs=1e-6)
    assert restored1 == pytest.approx(0.0, abs=1e-6) and share1 is None
    step = {"attn": [0.8, 0.5, None], "head": [[0.2, 0.6, 0.6], [0.5], [None, None]], "mlp": []}
    assert strongest_heads(step) == [(0, 1, 0.6, pytest.approx(0.75))]  # a tie: the lowest head; one head: no row
    lines = mechanism_lines(judge_patched({"patching": numbers}, F7), {"patching": numbers}, F7)
    assert lines[-1].endswith("Strongest head per layer (function steps; its fraction restored, and its share of "
                              "the layer's attention output's): L0 H0 1.00 (1.00), L1 H0 0.00 (–).")
    one_head = patching_numbers(patching_rows(measure_patching(random_model(n_head=1), SPEC, CONSTANT_FUNCTIONS,
                                                               n=4, seed=0, batch_size=8)))
    assert strongest_heads(one_head["function"]["step"]) == []
    assert "Strongest head" not in mechanism_lines({}, {"patching": one_head}, F7)[-1]


def test_rows_per_step_and_slot_kind():
    model = hand_built(through_mlp=False)
    rows = patching_rows(measure_patching(model, SPEC, CONSTANT_FUNCTIONS, n=10, seed=0, batch_size=7))
    assert all(len(r) == len(PATCHING_HEADER) for r in rows)
    sites = patch_sites(2, 2, True)
    assert len(rows) == len(sites) * 2 * (SPEC.depth + 1) * 3  # sites x positions x (steps, all) x (kinds, all)
    by_key = {(r[1], r[5], r[6], r[7]): r for r in rows}
    for step in (1, 2, "all"):
        for kind in ("identity", "function", "all"):
            row = by_key[("L0 H0", "step", step, kind)]
            assert row[8] == pytest.approx(1.0, abs=1e-6) and row[9] > 0 > row[10]  # clean > 0 > corrupted
            assert row[11] == 10 * (SPEC.depth if step == "all" else 1) * (2 if kind == "all" else 1)
    head = by_key[("L0 H1", "all", 1, "function")]
    assert head[:5] == ["blocks.0.attn.hook_z", "L0 H1", 0, 1, "head"]
    assert by_key[("L1 mlp", "all", 1, "function")][:5] == ["blocks.1.hook_mlp_out", "L1 mlp", 1, "", "mlp"]


def test_restored_fraction_aggregates_before_dividing():
    clean, corrupted = np.array([4.0, 0.001]), np.array([0.0, 0.0])
    patched = np.array([2.0, 0.1])  # the tiny-gap document alone would say 100x
    assert restored_fraction(clean, corrupted, patched) == pytest.approx(2.1 / 4.001)
    assert math.isnan(restored_fraction(corrupted, corrupted, patched))


def test_patching_figure(tmp_path):
    rows = patching_rows(measure_patching(hand_built(False), SPEC, CONSTANT_FUNCTIONS, n=4, seed=0, batch_size=8))
    patching_bars(rows, tmp_path / "patching.png")
    assert (tmp_path / "patching.png").read_bytes().startswith(PNG_SIGNATURE)


# ---- the summary ----


def summary_rows(attn: dict, mlp: dict, gap: dict) -> list[list]:
    """Pooled rows at the step's positions: attn/mlp {kind: [restored by layer]}, gap {kind: clean - corrupted}."""
    rows = []
    for kind in SLOT_KINDS:
        for component, values in (("attn", attn[kind]), ("mlp", mlp[kind])):
            for layer, restored in enumerate(values):
                name = f"blocks.{layer}.hook_{component}_out"
                rows.append([name, f"L{layer} {component}", layer, "", component, "step", "all", kind, restored,
                             gap[kind], 0.0, 100])
                rows.append([name, f"L{layer} {component}", layer, "", component, "all", "all", kind, 0.0,
                             gap[kind], 0.0, 100])  # other positions: never judged
    return rows


def test_summary_claims_at_their_thresholds():
    attn = {"function": [0.1, 0.8], "identity": [0.0, 0.6]}
    mlp = {"function": [0.9, 0.7], "identity": [0.5, 0.5]}
    rows = summary_rows(attn, mlp, gap={"function": 5.0, "identity": 3.0})
    s = judge_patching(patching_numbers(rows), min_restored=0.6, min_gap=3.0)
    assert s["measurable"] and s["selecting_layer"] == 1
    assert s["claims"] == {"attention_selects": True, "mlp_executes": True, "identity_alike": True}
    assert s["numbers"]["function"]["step"]["attn"] == [0.1, 0.8] and s["numbers"]["identity"]["gap"] == 3.0
    s = judge_patching(patching_numbers(rows), min_restored=0.7, min_gap=3.0)  # layer 0 MLP (0.9): before selection
    assert s["claims"] == {"attention_selects": True, "mlp_executes": True, "identity_alike": False}
    s = judge_patching(patching_numbers(rows), min_restored=0.75, min_gap=3.0)
    assert s["claims"] == {"attention_selects": True, "mlp_executes": False, "identity_alike": False}
    s = judge_patching(patching_numbers(rows), min_restored=0.81, min_gap=3.0)
    assert s["claims"]["attention_selects"] is False
    s = judge_patching(patching_numbers(rows), min_restored=0.6, min_gap=3.01)  # identity gap too small: none judged
    assert not s["measurable"] and s["claims"] == dict.fromkeys(s["claims"])
    as_csv = [{k: str(v) for k, v in zip(PATCHING_HEADER, r, strict=True)} for r in rows]  # csv.DictReader's rows
    from_csv = judge_patching(patching_numbers(as_csv), 0.6, 3.0)["claims"]
    assert from_csv == judge_patching(patching_numbers(rows), 0.6, 3.0)["claims"]


# ---- probes split by slot kind ----


def test_probe_split_on_the_copy_model():
    """The copy model writes the previous step's token: always right at identity steps, at function steps only
    where the function leaves the token unchanged."""
    model = copy_model()
    comps = np.array([[[0, 0], [1, 0]], [[0, 1], [1, 0]], [[0, 0], [1, 1]], [[0, 1], [1, 1]]])
    train, test = copy_documents(comps, 80, seed=1), copy_documents(comps, 80, seed=2)
    test_res = collect_residuals(model, test, COPY_SPEC, 64)
    rows = probe_rows(model, collect_residuals(model, train, COPY_SPEC, 64), test_res, COPY_SPEC, l2=1e-4,
                      max_iter=5)
    queries = step_query_positions(COPY_SPEC)  # (n_steps, m)
    last = {r[3]: r for r in rows if r[0] == "blocks.1.hook_resid_post"}
    for k in range(COPY_SPEC.n_steps):
        copied = (test[:, queries[k] + 1] == test[:, queries[k] - COPY_SPEC.seq_len]).double()  # (n, m)
        identity = test[:, task_position(k)] == COPY_SPEC.task_token(k, 0)
        row = last[k + 1]
        assert row[8] == 1.0 and row[10] == pytest.approx(copied[~identity].mean().item(), abs=1e-6)
        assert row[10] < 0.9  # the functions move some tokens
        m = COPY_SPEC.seq_len
        assert (row[12], row[13]) == (int(identity.sum()) * m, int((~identity).sum()) * m)
    assert last["all"][12] + last["all"][13] == len(test) * COPY_SPEC.n_steps * COPY_SPEC.seq_len
    assert last["all"][4] == pytest.approx((last["all"][8] * last["all"][12] + last["all"][10] * last["all"][13])
                                           / (last["all"][12] + last["all"][13]), abs=1e-5)
    assert all(0 <= r[9] <= 1 and 0 <= r[11] <= 1 for r in rows)  # the probe's split
    direct = probe_rows(model, test_res, replace(test_res, identity=None), COPY_SPEC, l2=1e-4, max_iter=1)
    assert all(r[8:] == [""] * 6 for r in direct)
