"""sample.py: a trained model's greedy generation next to the truth, for a composition and an input given as text
(or drawn at random), decoded step by step with the tokens that differ marked (docs/reference.md, "Sampling").
It writes nothing. The truth comes from the function tables of the dataset the checkpoint was trained on."""

from dataclasses import dataclass, field

import numpy as np
import torch

from core.config import PATH, TAG, at_least, int_or, parse
from core.errors import ConfigError
from net.checkpoint import load_checkpoint, load_model
from net.decode import greedy_decode
from net.device import resolve_device
from net.evaluate import in_train_mask
from pipeline.evaluate import check_agreement, checkpoint_at
from pipeline.launch import set_threads
from pipeline.resources import evaluation_bytes, require_memory
from synthetic.compositions import displacement_of, inorder_compositions, n_functions_of
from synthetic.dataset import Dataset, load_dataset
from synthetic.documents import make_documents, sample_inputs
from synthetic.task import TaskSpec
from synthetic.text import decode_tokens, token_text

RANDOM = "random"
MARK = "*"  # after a generated token that differs from the truth


@dataclass(frozen=True)
class SampleConfig:
    """config/sample/conf.yaml, validated."""

    ckpt_tag: str = field(metadata=TAG)
    ckpt_dir: str = field(metadata=PATH)
    step: int | None = field(metadata=at_least(0))
    composition: str
    input: str
    nsamples: int = field(metadata=at_least(1))
    seed: int = field(metadata=at_least(0))
    device: str
    threads: int | str = field(metadata=int_or("auto"))

    def __post_init__(self) -> None:
        if self.nsamples > 1 and RANDOM not in (self.composition, self.input):
            raise ConfigError(f"nsamples={self.nsamples} needs composition=random or input=random: a given "
                              "composition and input generate the same text every time")


@dataclass(frozen=True)
class Sample:
    composition: np.ndarray  # (L, 2): [level, fn] per slot
    truth: np.ndarray  # (T,) the true document
    generated: np.ndarray  # (T,) the same prompt, then the model's greedy tokens


def split_tokens(key: str, text: str, count: int, what: str, example: str) -> list[str]:
    """The tokens of `text`; a ConfigError unless there are `count` of them."""
    tokens = text.split()
    if len(tokens) != count:
        raise ConfigError(f"{key}={text!r} has {len(tokens)} {what}(s); this model's {key}s have {count}, e.g. "
                          f"{key}=\"{example}\", or {key}=random")
    return tokens


def parse_composition(text: str, spec: TaskSpec, vocab: list[str]) -> np.ndarray:
    """'T0_1 T1_0 T2_3 T3_0 T4_2' (slot order) -> (L, 2); a ConfigError naming the token otherwise. A slot holds a
    function of its own level (T<slot>_0 is its identity) or a non-identity function of another level."""
    L, N = spec.depth, spec.n_functions
    tokens = split_tokens("composition", text, L, "task token", " ".join(f"T{k}_{k % (N + 1)}" for k in range(L)))
    ids = {tok: i for i, tok in enumerate(vocab)}
    comp = []
    for slot, tok in enumerate(tokens):
        task = ids.get(tok, -1) - spec.n_alphabets
        if not 0 <= task < L * (N + 1):
            raise ConfigError(f"composition: {tok!r} is not a task token; allowed: T<level>_<function> with level "
                              f"0..{L - 1} and function 0..{N} (0 = identity)")
        level, fn = divmod(task, N + 1)
        if fn == 0 and level != slot:
            raise ConfigError(f"composition: {tok} in slot {slot} is the identity of another level; the identity "
                              f"in slot {slot} is T{slot}_0")
        comp.append((level, fn))
    return np.array(comp, dtype=np.int64)


def parse_input(text: str, spec: TaskSpec, vocab: list[str]) -> np.ndarray:
    """'X1 X2 X3 X4 X5 X6' -> (m,) token ids; a ConfigError naming the token otherwise."""
    A, m = spec.n_alphabets, spec.seq_len
    tokens = split_tokens("input", text, m, "data token", " ".join(f"X{k % A}" for k in range(m)))
    ids = {tok: i for i, tok in enumerate(vocab[:A])}
    for tok in tokens:
        if tok not in ids:
            raise ConfigError(f"input: {tok!r} is not a data token; allowed: X0..X{A - 1}")
    return np.array([ids[tok] for tok in tokens], dtype=np.int64)


def sample_prompts(c: SampleConfig, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(compositions (n, L, 2), inputs (n, m)): the ones given, or drawn from the seed (an in-order composition;
    an input as the dataset draws them)."""
    spec, n = ds.spec, c.nsamples
    rng = np.random.default_rng(c.seed)
    if c.composition == RANDOM:
        inorder = inorder_compositions(spec.depth, spec.n_functions)
        comps = inorder[rng.integers(0, len(inorder), size=n)]
    else:
        comps = np.repeat(parse_composition(c.composition, spec, ds.vocab)[None], n, axis=0)
    if c.input == RANDOM:
        x = sample_inputs(rng, n, spec, bool(ds.config["with_replacement"]))
    else:
        x = np.repeat(parse_input(c.input, spec, ds.vocab)[None], n, axis=0)
    return comps, x


def sample_text(spec: TaskSpec, vocab: list[str], sample: Sample, trained: bool) -> str:
    """The sample as text: the prompt, then each output the model wrote next to the true one, MARK after each
    generated token that differs."""
    P, m, doc = spec.prompt_len, spec.seq_len, sample.truth
    labels = [f"y{spec.depth}"] if spec.direct else [f"y{k + 1}" for k in range(spec.n_steps)]
    rows = []
    for label, start in zip(labels, spec.step_starts, strict=True):
        truth, generated = doc[start : start + m], sample.generated[start : start + m]
        marked = [token_text(vocab, g) + (MARK if g != t else "") for t, g in zip(truth, generated, strict=True)]
        rows.append((label, decode_tokens(vocab, truth), " ".join(marked)))
    width = max(len("truth"), *(len(truth) for _, truth, _ in rows))
    wrong = sample.generated[P:] != doc[P:]  # (T - P,): the outputs and the separators between them
    n_sep = int(wrong.sum()) - sum(row[2].count(MARK) for row in rows)
    verdict = ("the model writes the truth" if not wrong.any() else
               f"{int(wrong.sum())} of {len(wrong)} generated tokens differ (marked {MARK})"
               + (f", {n_sep} of them separators" if n_sep else ""))
    comp = sample.composition[None]  # (1, L, 2)
    displacement, n_functions = int(displacement_of(comp)[0]), int(n_functions_of(comp)[0])
    order = "in-order" if displacement == 0 else f"out-of-order (displacement {displacement})"
    lines = [f"  composition  {decode_tokens(vocab, doc[1 : 1 + spec.depth])}   ({order}, {n_functions} non-identity "
             f"functions, {'a' if trained else 'not a'} training composition)",
             f"  input        {decode_tokens(vocab, doc[spec.depth + 2 : spec.depth + 2 + m])}",
             f"  {'':<11}  {'truth':<{width}}   model"]
    lines += [f"  {label:<11}  {truth:<{width}}   {model}" for label, truth, model in rows]
    return "\n".join([*lines, f"  {verdict}"])


def run(raw: dict) -> list[Sample]:
    """Decode the configured prompts with one checkpoint; print each next to its truth."""
    c = parse(SampleConfig, raw)
    device = resolve_device(c.device)
    set_threads(c.threads)
    step, path = checkpoint_at(c.ckpt_dir, c.step)
    ckpt = load_checkpoint(path, map_location="cpu")
    ds = load_dataset(ckpt["data"]["path"])
    check_agreement(ckpt, path, ds, ds.spec)
    spec = ds.spec
    need = evaluation_bytes(np.array([c.nsamples]), 1, c.nsamples, spec, bool(ds.config["with_replacement"]),
                            ckpt["model_args"])  # drawn, then decoded in one batch
    require_memory(f"nsamples={c.nsamples} samples (drawn and decoded at once)", need, "nsamples")
    comps, x = sample_prompts(c, ds)
    truth = make_documents(spec, ds.functions, comps, x)  # (n, T)
    prompts = torch.from_numpy(truth[:, : spec.prompt_len]).to(device)  # (n, P)
    generated = greedy_decode(load_model(ckpt, device), prompts, spec.doc_len).cpu().numpy()  # (n, T)
    samples = [Sample(comp, doc, gen) for comp, doc, gen in zip(comps, truth, generated, strict=True)]
    trained = in_train_mask(comps, ds.train_compositions)
    texts = [f"sample {i + 1} of {len(samples)}\n{sample_text(spec, ds.vocab, s, bool(t))}"
             for i, (s, t) in enumerate(zip(samples, trained, strict=True))]
    print("\n".join([f"{path} (step {step}), trained on {ds.path}: greedy generation next to the truth",
                     *texts]))
    return samples
