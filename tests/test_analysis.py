"""The mechanistic analysis (analysis/, 05_analyze.py): hook points, known-answer models, ablations, findings, CLI.

The known-answer model is built by hand: layer 0's single head attends from position p to position p - m (the
same position of the previous step) and copies that token into the residual stream; every other sublayer adds
nothing. On documents of the all-identity composition (y_k = x for every k) it writes every token right, its
attention sits on `prev_same`, and the answer appears right after layer 0's attention.
"""

import csv
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from analysis.ablation import AblationSetup, ablated, ablation_rows, hook_name, mean_activations
from analysis.attention import ROLES, attention_stats, role_shares, uniform_shares
from analysis.layout import step_query_positions, task_position
from analysis.probes import (
    collect_residuals,
    fit_probe,
    logit_lens_predictions,
    probe_rows,
    residual_sites,
    site_label,
)
from analysis.summary import mechanism_numbers
from core.config import parse
from core.errors import ConfigError
from net.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from net.model import build_model
from pipeline import analyze, generate, train
from report import verdicts as criteria
from report.mechanism import NOT_TESTABLE, first_readable, judge_mechanism, mechanism_lines, site_layer
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec
from tests.conftest import ROOT, TINY_DATA, run_script, snapshot, stage_config

SPEC = TaskSpec(n_alphabets=4, seq_len=2, depth=2, n_functions=1)  # documents of 12 tokens, vocabulary 11
FUNCTIONS = sample_functions(np.random.default_rng(0), SPEC, frozenset(), False)
IDENTITY = np.array([[[0, 0], [1, 0]]])  # (1, L, 2): the all-identity composition
TINY_TASK = ["n_alphabets=4", "seq_len=2", "function.depth=2", "function.n_functions=1",
             "function.split.n_compositions=2"]


def documents(comps: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
    """n documents of SPEC, each from a composition of comps (C, L, 2) picked in turn, with random inputs."""
    x = sample_inputs(np.random.default_rng(seed), n, SPEC)
    return torch.from_numpy(make_documents(SPEC, FUNCTIONS, comps[np.arange(n) % len(comps)], x))


def random_model(n_head: int = 2, mlp: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model({"kind": "nanogpt", "vocab_size": SPEC.vocab_size, "context_size": SPEC.doc_len,
                         "n_layer": 2, "n_head": n_head, "n_embd": 16, "mlp": mlp})
    return model.eval()


def copy_model(beta: float = 50.0, gamma: float = 10.0):
    """The hand-built known-answer model (module docstring): token and position one-hot in separate dims."""
    V, T, m = SPEC.vocab_size, SPEC.doc_len - 1, SPEC.seq_len
    C = V + T
    model = build_model({"kind": "nanogpt", "vocab_size": V, "context_size": T, "n_layer": 2, "n_head": 1,
                         "n_embd": C})
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight")
                    or name == "ln_final.weight" else 0.0)
        model.wte.weight[:, :V] = torch.eye(V)  # token v -> dim v (the tied head reads dims 0..V-1 back)
        model.wpe.weight[:, V:] = torch.eye(T)  # position p -> dim V + p
        W = model.blocks[0].attn.c_attn.weight  # (3C, C): query, key, value rows
        for p in range(m, T):
            W[V + p - m, V + p] = beta  # the query at p looks for the key of position p - m
        for p in range(T):
            W[C + V + p, V + p] = 1.0  # a key is its position
        W[2 * C : 2 * C + V, :V] = torch.eye(V)  # a value is its token
        model.blocks[0].attn.c_proj.weight[:V, :V] = gamma * torch.eye(V)
    return model.eval()


# ---- hook points ----


def test_cached_activations_are_the_ones_forward_uses():
    model = random_model()
    idx = documents(np.array([[[0, 1], [1, 1]]]), 8)[:, :-1]
    logits, cache = model.run_with_cache(idx)
    last = cache["blocks.1.hook_resid_post"]
    assert torch.allclose(model.unembed(last), logits, atol=1e-6)
    assert torch.allclose(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    for layer in range(2):
        pre, mid = cache[f"blocks.{layer}.hook_resid_pre"], cache[f"blocks.{layer}.hook_resid_mid"]
        assert torch.allclose(mid, pre + cache[f"blocks.{layer}.hook_attn_out"], atol=1e-6)
        post = cache[f"blocks.{layer}.hook_resid_post"]
        assert torch.allclose(post, mid + cache[f"blocks.{layer}.hook_mlp_out"], atol=1e-6)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # (B, H, T, T)
        assert torch.allclose(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-5)
        assert pattern.triu(diagonal=1).abs().max() == 0  # causal
    assert torch.equal(cache["blocks.1.hook_resid_pre"], cache["blocks.0.hook_resid_post"])
    # the probe's own collection reads the same final residual stream: its lens is the model's argmax
    docs = documents(np.array([[[0, 1], [1, 1]]]), 8)
    res = collect_residuals(model, docs, SPEC, batch_size=3)
    queries = torch.from_numpy(step_query_positions(SPEC).reshape(-1))
    expected = model(docs[:, :-1])[:, queries].argmax(-1).reshape(-1)
    assert torch.equal(logit_lens_predictions(model, res.features["blocks.1.hook_resid_post"]), expected)


def test_patching_a_hook_changes_the_output():
    model = random_model()
    idx = documents(IDENTITY, 4)[:, :-1]
    clean = model(idx)
    with model.hooks({"blocks.0.hook_attn_out": lambda t: None}):
        assert torch.equal(model(idx), clean)  # a hook that returns None keeps the tensor
    for name in ("blocks.0.hook_attn_out", "blocks.1.hook_mlp_out", "blocks.0.hook_resid_mid"):
        with model.hooks({name: torch.zeros_like}):
            assert not torch.allclose(model(idx), clean), name
    with model.hooks({"blocks.0.attn.hook_pattern": lambda p: torch.tril(torch.ones_like(p))}):
        assert not torch.allclose(model(idx), clean)
    assert torch.equal(model(idx), clean)  # hooks are gone after the block


def test_mean_ablation_is_the_same_with_the_kv_cache():
    """Hooks see no positions: the tracker must give a one-token step the mean of its own position."""
    model = random_model(seed=1)
    docs = documents(IDENTITY, 16)
    names = [hook_name(0, "attn"), hook_name(1, "mlp")]
    means = mean_activations(model, docs, names, batch_size=5)
    P = SPEC.prompt_len
    with ablated(model, names, "mean", means):
        full = model(docs[:, :-1])  # (B, T, V)
        logits, state = model.prefill(docs[:, :P])
        steps = [logits]
        for t in range(P, docs.size(1) - 1):
            logits, state = model.step(docs[:, t], state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, dim=1), full[:, P - 1 :], atol=1e-5)
    assert not torch.allclose(full, model(docs[:, :-1]))


# ---- attention shares ----


def test_one_hot_patterns_give_shares_of_one():
    T = SPEC.doc_len - 1
    queries = step_query_positions(SPEC)
    on_task = torch.zeros(1, 1, T, T)
    on_prev = torch.zeros(1, 1, T, T)
    for k in range(SPEC.n_steps):
        for j in range(SPEC.seq_len):
            on_task[0, 0, queries[k, j], task_position(k)] = 1
            prev = SPEC.depth + 2 if k == 0 else SPEC.step_starts[k - 1]
            on_prev[0, 0, queries[k, j], prev + j] = 1
    shares = role_shares(on_task, SPEC)[0] / SPEC.seq_len  # (n_steps, n_roles)
    assert torch.allclose(shares[:, ROLES.index("current_task")], torch.ones(SPEC.n_steps))
    assert shares[:, ROLES.index("other_tasks")].abs().max() == 0
    shares = role_shares(on_prev, SPEC)[0] / SPEC.seq_len
    for role in ("prev_step", "prev_same"):
        assert torch.allclose(shares[:, ROLES.index(role)], torch.ones(SPEC.n_steps))


def test_uniform_attention_gives_the_uniform_shares():
    model = random_model(n_head=2)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_attn.weight[: 2 * 16] = 0  # queries and keys zero: every visible key weighs the same
    stats = attention_stats(model, documents(IDENTITY, 6), SPEC, batch_size=4)
    expected = np.broadcast_to(uniform_shares(SPEC, SPEC.doc_len - 1), stats.shares.shape)
    assert np.allclose(stats.shares, expected, atol=1e-6)
    first_step = 1 / (step_query_positions(SPEC)[0] + 1)  # a query at t sees t + 1 keys
    assert np.isclose(stats.uniform[0, ROLES.index("current_task")], first_step.mean())


def test_copy_model_attends_to_the_previous_step():
    stats = attention_stats(copy_model(), documents(IDENTITY, 20), SPEC, batch_size=8)
    layer0 = stats.shares[0, 0]  # (n_steps, n_roles)
    assert (layer0[:, ROLES.index("prev_same")] > 0.99).all()
    assert (layer0[:, ROLES.index("current_task")] < 0.01).all()
    assert np.allclose(layer0.sum(axis=1) - layer0[:, ROLES.index("prev_same")], 1.0, atol=1e-5)


# ---- probes ----


def test_logit_lens_and_probe_on_the_copy_model():
    model = copy_model()
    train, test = documents(IDENTITY, 150, seed=1), documents(IDENTITY, 150, seed=2)
    rows = probe_rows(model, collect_residuals(model, train, SPEC, 128), collect_residuals(model, test, SPEC, 128),
                      SPEC, l2=1e-4, max_iter=30)
    overall = {r[0]: r for r in rows if r[3] == "all"}
    assert list(overall) == residual_sites(2)
    # the embedding only knows the current token: the lens names it, right exactly when the next token repeats it
    queries = torch.from_numpy(step_query_positions(SPEC).reshape(-1))
    repeats = (test[:, queries + 1] == test[:, queries]).double().mean().item()
    assert overall["blocks.0.hook_resid_pre"][4] == pytest.approx(repeats, abs=1e-6)
    assert overall["blocks.0.hook_resid_pre"][5] < 1 / SPEC.n_alphabets + 0.1  # the probe: chance
    for site in residual_sites(2)[1:]:  # from layer 0's attention on, the answer is in the stream
        assert overall[site][4] == 1.0 and overall[site][5] > 0.97, site


def test_probe_fits_a_linearly_separable_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    y = x[:, :3].argmax(dim=1)
    probe = fit_probe(x[:200], y[:200], n_classes=3, l2=1e-4, max_iter=100)
    assert (probe.predict(x[200:]) == y[200:]).float().mean() > 0.95


# ---- ablations ----


def ablation_setup(nsamples: int = 100) -> AblationSetup:
    return AblationSetup(SPEC, FUNCTIONS, IDENTITY, nsamples, seed=0, batch_size=64, device=torch.device("cpu"),
                         with_replacement=True)


def test_ablating_everything_drops_to_chance_and_nothing_keeps_it():
    model = copy_model()
    setup = ablation_setup()
    assert setup.score(model)["token_acc"] == 1.0
    every = [hook_name(layer, c) for layer in range(2) for c in ("attn", "mlp")]
    with ablated(model, every, "zero"):
        assert setup.score(model)["token_acc"] <= 1 / SPEC.n_alphabets
    with ablated(model, [], "zero"):
        assert setup.score(model)["token_acc"] == 1.0
    assert setup.score(model)["token_acc"] == 1.0  # nothing left behind


def test_ablation_rows_of_the_copy_model():
    model = copy_model()
    means = mean_activations(model, documents(IDENTITY, 200), [hook_name(l, c) for l in range(2)
                                                               for c in ("attn", "mlp")], batch_size=64)
    rows = ablation_rows(model, ablation_setup(), means, log=lambda _: None)
    acc = {(r[0], r[1], r[2]): r[3] for r in rows}
    assert acc[("", "none", "none")] == 1.0
    assert acc[(0, "attn", "zero")] < 0.3 and acc[(0, "attn", "mean")] < 0.4  # the copying head
    for key in [(0, "mlp", "zero"), (0, "mlp", "mean"), (1, "attn", "zero"), (1, "attn", "mean"),
                (1, "mlp", "zero"), (1, "mlp", "mean")]:
        assert acc[key] == 1.0, key  # sublayers that add nothing
    assert len(rows) == 9 and rows[0][-1] == 1 / SPEC.n_alphabets


# ---- finding 7, on the real analysis of a tiny trained model ----


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real (if barely trained) checkpoint of 02_train.py on a tiny task (read-only: shared by the tests)."""
    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    generate.run(stage_config("gen", [*TINY_DATA, *TINY_TASK, f"out_dir={data}"]))
    out = root / "ckpt"
    train.run(stage_config("train", [f"data.path={data}", f"out_dir={out}", "net.n_embd=16", "device=cpu",
                                     "data.batch_size=100", "log.eval_interval=1000"]))
    return out


ANALYZE = ["ckpt_tag=tiny", "nsamples=20", "ablation_nsamples=3", "device=cpu", "probe.max_iter=20"]


@pytest.fixture(scope="session")
def real_analysis(tiny_checkpoint, tmp_path_factory) -> Path:
    """The folder 05_analyze.py writes for the tiny checkpoint, run once as a user would. Read-only: the claim
    tests derive their cases from its CSVs, and the command-line test's skip_complete rerun must leave it as is."""
    cwd = tmp_path_factory.mktemp("analysis")
    done = run_script("05_analyze.py", *ANALYZE, f"ckpt_dir={tiny_checkpoint}", f"out_dir={cwd / 'analysis'}",
                      cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "analysis"


def read_rows(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def derive_csv(source: Path, target: Path, change: Callable[[dict], dict]) -> None:
    """source (a CSV the analysis wrote) with each row updated by change(row) -> {column: value}, written to target
    with every column and row of the source: a change to a column the real output lacks fails."""
    rows, columns = read_rows(source), header(source)
    for row in rows:
        update = change(row)
        assert set(update) <= set(columns), f"{source.name} has no column {sorted(set(update) - set(columns))}"
        row.update(update)
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


SHARES = {"1": 0.9, "2": 0.7, "all": 0.8}  # layer 0's head on the current task token, per output step
READOUT_COLUMNS = {"probe": "probe_acc", "logit_lens": "logit_lens_acc"}


def readable_from(first: int, index: int) -> float:
    """A readout's accuracy (all steps) at residual site `index` when it first reads the answer at site `first`:
    chance at the embedding (4 data tokens), 0.5 between, 0.99 from `first` on."""
    return 0.99 if index >= first else 0.25 if index == 0 else 0.5


def deepen_csv(source: Path, target: Path, n_layer: int, first: dict[str, int]) -> None:
    """The real probes.csv (of a 2-layer model) as an n_layer model's: the rows of its last site, every column and
    step kept, repeated for each site of residual_sites(n_layer); each readout of READOUT_COLUMNS first reads the
    answer (readable_from) at site index first[readout]."""
    rows, columns = read_rows(source), header(source)
    template = [r for r in rows if r["site"] == rows[-1]["site"]]

    def row(r: dict, index: int, site: str) -> dict:
        accuracies = {READOUT_COLUMNS[k]: readable_from(at, index) for k, at in first.items() if r["step"] == "all"}
        return {**r, "site": site, "label": site_label(site), "index": index, **accuracies}

    deep = [row(r, index, site) for index, site in enumerate(residual_sites(n_layer)) for r in template]
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(deep)


def mlp_of(layer: int) -> int:
    """The site index of `blocks.{layer}.hook_resid_post` (after block `layer`'s MLP)."""
    return 2 * layer + 2


def mechanism_csvs(real: Path, folder: Path, mlp_mean_ablated: float = 0.1, n_layer: int = 2,
                   first: dict[str, int] | None = None) -> None:
    """The real analysis's attention.csv, probes.csv and ablation.csv in `folder`, with the accuracies and shares
    the claims read set to a mechanism under which every claim holds (a tiny barely trained model shows none):
    layer 0 attends to the current task token, the answer becomes readable after the last MLP (or, by each readout,
    at the site index `first` names: probes.csv as an n_layer model's, deepen_csv), and mean-ablating any attention
    (or MLP: `mlp_mean_ablated`) removes most of the clean margin. Chance and uniform shares stay the real ones.
    Answer late is not testable at 2 layers: n_layer >= criteria.f7.min_layers judges it."""
    derive_csv(real / "attention.csv", folder / "attention.csv",
               lambda r: {"share_current_task": SHARES[r["step"]] if r["layer"] == "0" else 0.01})
    deepen_csv(real / "probes.csv", folder / "probes.csv", n_layer,
               first or dict.fromkeys(READOUT_COLUMNS, mlp_of(n_layer - 1)))
    ablated = {("none", "none"): 0.99, ("attn", "zero"): 0.05, ("attn", "mean"): 0.1, ("mlp", "zero"): 0.05,
               ("mlp", "mean"): mlp_mean_ablated}
    derive_csv(real / "ablation.csv", folder / "ablation.csv",
               lambda r: {"token_acc": ablated[r["component"], r["mode"]]})


def numbers_of(folder: Path) -> dict:
    return mechanism_numbers(*(read_rows(folder / f"{name}.csv") for name in ("attention", "probes", "ablation")))


F7 = parse(criteria.F7, OmegaConf.to_container(OmegaConf.load(ROOT / "config" / "report" / "conf.yaml").criteria.f7),
           "criteria.f7")
F7_CLAIMS = ("attention_selects", "answer_late", "mlp_executes", "both_necessary")

# The columns of the analysis's CSVs, as docs/reference.md documents them: the report reads these files by name from
# analyses run earlier, so a renamed column is a change of format, made here and in the docs on purpose.
COLUMNS = {
    "attention.csv": ["layer", "head", "step", *[f"share_{role}" for role in ROLES], "uniform_current_task",
                      "uniform_prev_step"],
    "probes.csv": ["site", "label", "index", "step", "logit_lens_acc", "probe_acc", "probe_train_acc", "chance",
                   "logit_lens_acc_identity", "probe_acc_identity", "logit_lens_acc_function", "probe_acc_function",
                   "n_identity", "n_function"],
    "ablation.csv": ["layer", "component", "mode", "token_acc", "token_acc_se", "seq_acc", "tf_acc",
                     *[f"y{k}_acc" for k in range(1, SPEC.n_steps + 1)], "chance"],
}
# patching.csv's: written only for step-by-step data with N >= 2 (SPEC has N = 1), so checked where a tiny model of
# N = 2 is analysed (tests/test_scale_parts.py, test_analysis_writes_patching_and_its_numbers)
PATCHING_COLUMNS = ["site", "label", "layer", "head", "component", "positions", "step", "slot_kind", "restored",
                    "clean", "corrupted", "n_documents"]


def test_the_analysis_writes_the_documented_columns(real_analysis):
    assert {name: header(real_analysis / name) for name in COLUMNS} == COLUMNS


def test_mechanism_numbers_and_claims(real_analysis, tmp_path):
    mechanism_csvs(real_analysis, tmp_path)
    numbers = numbers_of(tmp_path)
    claims = judge_mechanism(numbers, F7)
    assert claims == {**dict.fromkeys(F7_CLAIMS, True), "answer_late": NOT_TESTABLE}  # 2 layers < min_layers
    uniform = [float(r["uniform_current_task"]) for r in read_rows(real_analysis / "attention.csv")
               if r["layer"] == "0" and r["step"] != "all"]
    ratio = (SHARES["1"] + SHARES["2"]) / sum(uniform)
    assert numbers["attention"]["ratio"] == pytest.approx(ratio)
    assert numbers["probes"]["chance"] == 1 / SPEC.n_alphabets == numbers["ablation"]["chance"]
    mlp_steps = [readable_from(4, i + 1) - readable_from(4, i) for i in (1, 3)]  # L0 attn -> L0 mlp, L1 attn -> mlp
    assert numbers["probes"]["probe_gain_mlp"] == pytest.approx(sum(mlp_steps))
    lines = "".join(mechanism_lines(claims, numbers, F7))
    assert f"({ratio:.1f}x)" in lines and "The answer appears late (not testable at this depth; the first" in lines
    mechanism_csvs(real_analysis, tmp_path, mlp_mean_ablated=0.9)  # the MLP no longer matters
    assert judge_mechanism(numbers_of(tmp_path), F7)["both_necessary"] is False
    (tmp_path / "attention.csv").unlink()
    claims = judge_mechanism(numbers_of(tmp_path), F7)
    assert claims["attention_selects"] is None and claims["answer_late"] == NOT_TESTABLE
    assert judge_mechanism(numbers_of(tmp_path / "nothing"), F7) == dict.fromkeys(claims)


def with_readout(readout: str) -> criteria.F7:
    return dataclasses.replace(F7, readout=readout)


def test_each_readout_reports_its_own_layer(real_analysis, tmp_path):
    """A 12-layer model (the real probes.csv, deepened) whose linear probe reads the answer after block 3's MLP and
    whose logit lens only after block 9's: each readout reports its own layer, answer late is judged by the
    configured one (the probe: fails, 3 < 6; the lens: holds), and the other does not decide it."""
    mechanism_csvs(real_analysis, tmp_path, n_layer=12, first={"probe": mlp_of(3), "logit_lens": mlp_of(9)})
    numbers = numbers_of(tmp_path)
    p = numbers["probes"]
    assert [site_layer(first_readable(p, F7.late_accuracy, r)["site"]) for r in ("probe", "logit_lens")] == [3, 9]
    assert F7.readout == "probe" and judge_mechanism(numbers, F7)["answer_late"] is False
    assert judge_mechanism(numbers, with_readout("logit_lens"))["answer_late"] is True
    lines = "".join(mechanism_lines(judge_mechanism(numbers, F7), numbers, F7))
    assert "linear probe (judged) L3 mlp (block 3 of 12, 0.990), logit lens L9 mlp (block 9 of 12, 0.990)" in lines
    mechanism_csvs(real_analysis, tmp_path, n_layer=12, first={"probe": mlp_of(9), "logit_lens": mlp_of(3)})
    assert judge_mechanism(numbers_of(tmp_path), F7)["answer_late"] is True  # the lens's early layer does not count


@pytest.mark.parametrize(("n_layer", "layer", "late"), [
    (12, 9, True), (12, 3, False), (12, 6, True), (12, 5, False),  # the last half of 12 blocks: from block 6 on
    (F7.min_layers, F7.min_layers - 1, True), (2, 1, NOT_TESTABLE), (2, 0, NOT_TESTABLE)])
def test_answer_late_is_judged_relative_to_depth(real_analysis, tmp_path, n_layer, layer, late):
    """Both readouts first read the answer after block `layer`'s MLP of an n_layer model: late from half the blocks
    on, and not testable in a model shallower than min_layers (2 layers: whatever the layer)."""
    mechanism_csvs(real_analysis, tmp_path, n_layer=n_layer, first=dict.fromkeys(READOUT_COLUMNS, mlp_of(layer)))
    claims = judge_mechanism(numbers_of(tmp_path), F7)
    assert claims["answer_late"] == late and claims["mlp_executes"] is True


def set_site(numbers: dict, index: int, **accuracies: float) -> None:
    site = numbers["probes"]["sites"][index]
    site.update(accuracies)  # "embed" and "final" are the first and last of these very dicts


def above_chance(numbers: dict) -> float:
    return numbers["probes"]["chance"] + F7.early_margin + 0.01  # just too high for the embedding


DEEP = 12  # the claims below are judged on a model this deep, so that answer late is testable


@pytest.mark.parametrize(("claim", "change"), [
    ("attention_selects", lambda n: n["attention"].update(ratio=F7.attention_ratio - 0.1)),
    ("answer_late", lambda n: set_site(n, 0, probe_acc=above_chance(n))),  # the embedding already knows it
    ("answer_late", lambda n: set_site(n, -1, probe_acc=F7.late_accuracy - 0.01)),  # not high at the last site
    ("answer_late", lambda n: set_site(n, mlp_of(2), probe_acc=F7.late_accuracy)),  # readable in the first half
    ("mlp_executes", lambda n: set_site(n, mlp_of(DEEP - 1) - 1, probe_acc=F7.late_accuracy)),  # after attention
    ("both_necessary", lambda n: n["ablation"].update(baseline=n["ablation"]["chance"] + F7.min_margin - 0.01)),
    ("both_necessary", lambda n: n["ablation"].update(  # removes just under ablation_share of the margin
        worst_mean_ablation_attn=0.99 - F7.ablation_share * (0.99 - n["ablation"]["chance"]) + 0.01)),
], ids=["ratio", "embed_probe", "final_probe", "early_site", "after_attention", "margin", "ablation"])
def test_each_mechanism_claim_fails_on_its_own(real_analysis, tmp_path, claim, change):
    """Numbers that pass every criterion, moved across one threshold: that claim fails (and only claims that
    read the changed number may change)."""
    mechanism_csvs(real_analysis, tmp_path, n_layer=DEEP)
    numbers = numbers_of(tmp_path)
    assert judge_mechanism(numbers, F7) == dict.fromkeys(F7_CLAIMS, True)
    change(numbers)
    claims = judge_mechanism(numbers, F7)
    assert claims[claim] is False
    assert sum(value is False for value in claims.values()) <= 2  # answer_late and mlp_executes share a site
    assert "(fails;" in "".join(mechanism_lines(claims, numbers, F7))  # findings.md says so


def test_the_logit_lens_alone_does_not_decide_answer_late(real_analysis, tmp_path):
    """Answer late is judged by criteria.f7.readout (the probe): the logit lens high at the embedding, or low at the
    last site, changes nothing; judged by the lens, each fails it."""
    for change in (lambda n: set_site(n, 0, logit_lens_acc=above_chance(n)),
                   lambda n: set_site(n, -1, logit_lens_acc=F7.late_accuracy - 0.01)):
        mechanism_csvs(real_analysis, tmp_path, n_layer=DEEP)
        numbers = numbers_of(tmp_path)
        change(numbers)
        assert judge_mechanism(numbers, F7)["answer_late"] is True
        assert judge_mechanism(numbers, with_readout("logit_lens"))["answer_late"] is False


# ---- the command line ----


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_command_line_writes_figures_and_csvs(real_analysis, tiny_checkpoint, capsys):
    out = real_analysis
    for name in ("attention_heatmap.png", "attention_current_task.png", "probes.png", "ablation.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name
    attention = read_rows(out / "attention.csv")
    assert len(attention) == 2 * 1 * (SPEC.n_steps + 1)  # layers x heads x (steps + "all")
    shares = [float(attention[0][f"share_{r}"]) for r in ROLES if r != "prev_same"]
    assert sum(shares) == pytest.approx(1.0, abs=1e-4)
    assert len(read_rows(out / "probes.csv")) == 5 * (SPEC.n_steps + 1)  # sites x (steps + "all")
    ablation = read_rows(out / "ablation.csv")
    assert [(r["component"], r["mode"]) for r in ablation[:3]] == [("none", "none"), ("attn", "zero"),
                                                                     ("attn", "mean")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mechanism"] == numbers_of(out) and summary["step"] == list_checkpoints(tiny_checkpoint)[-1][0]
    # the same settings again with skip_complete: nothing is rewritten
    before = snapshot(out, identity=True)
    again = analyze.run(stage_config("analyze", [*ANALYZE, f"ckpt_dir={tiny_checkpoint}", f"out_dir={out}",
                                                 "skip_complete=true"]))
    assert snapshot(out, identity=True) == before
    assert again == summary and "already holds this analysis of" in capsys.readouterr().out


def test_refuses_what_it_cannot_analyze(tmp_path, tiny_checkpoint):
    base = ["ckpt_tag=tiny", f"ckpt_dir={tiny_checkpoint}", f"out_dir={tmp_path / 'a'}", "device=cpu"]
    with pytest.raises(ConfigError, match="step=7 has no checkpoint"):
        analyze.run(stage_config("analyze", [*base, "step=7"]))
    with pytest.raises(ConfigError, match="nsamples=5000 needs 10000 documents"):
        analyze.run(stage_config("analyze", [*base, "nsamples=5000"]))
    ckpt = load_checkpoint(list_checkpoints(tiny_checkpoint)[-1][1])
    ckpt["model_args"] = {**ckpt["model_args"], "kind": "lstm"}
    (tmp_path / "lstm").mkdir()
    save_checkpoint(ckpt, tmp_path / "lstm" / "ckpt_1.pt")
    done = run_script("05_analyze.py", *base, f"ckpt_dir={tmp_path / 'lstm'}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().startswith("error:") and "net.kind=nanogpt" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_analysis_uses_the_threads_it_is_given(tmp_path, tiny_checkpoint):
    """Like training and evaluation: one place resolves `threads` (under joblib, two 2-thread jobs on 2 cores
    stall each other)."""
    import torch

    before = torch.get_num_threads()
    try:
        analyze.run(stage_config("analyze", ["ckpt_tag=tiny", f"ckpt_dir={tiny_checkpoint}",
                                             f"out_dir={tmp_path / 'a'}", "nsamples=10", "ablation_nsamples=0",
                                             "patching_nsamples=0",
                                             "probe.max_iter=2", "device=cpu", "threads=3"]))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
