"""The rows of an evaluation's CSV files and its terminal report (the files of results/<tag>/: pipeline/evaluate.py).
Both CSV files start with a `run` column, the results folder's name (run.json's tag), so that rows of many runs
can be stacked."""

from collections.abc import Sequence

import numpy as np

from net.evaluate import step_columns, tf_step_columns
from synthetic.compositions import displacement_of, n_functions_of
from synthetic.task import TaskSpec
from synthetic.text import decode_tokens

INORDER_HEADER = ["run", "step", "composition", "n_functions", "displacement", "in_train", "token_acc", "seq_acc",
                  "tf_acc", "n_samples"]
OUTORDER_HEADER = ["run", "step", "composition", "n_identity", "displacement", "token_acc", "seq_acc", "tf_acc",
                   "in_train", "n_samples"]
DIGITS = 6  # accuracies in the CSV files (nsamples * m <= 10^6 keeps them exact)


def inorder_header(spec: TaskSpec) -> list[str]:
    """INORDER_HEADER, then step-by-step only y1_acc..yL_acc and tf_y1_acc..tf_yL_acc."""
    return INORDER_HEADER + step_columns(spec) + tf_step_columns(spec)


def composition_text(vocab: Sequence[str], spec: TaskSpec, comp: np.ndarray) -> str:
    """A composition (L, 2) as its task tokens in application order, e.g. 'T0_1 T1_0 T2_3 T3_0 T4_2'."""
    return " ".join(vocab[spec.task_token(int(d), int(i))] for d, i in comp)


def composition_rows(run: str, step: int, spec: TaskSpec, vocab: Sequence[str], comps: np.ndarray, scores, *,
                     in_train: np.ndarray, outorder: bool = False) -> list[list]:
    """CSV rows (inorder_header(spec), or OUTORDER_HEADER) of run `run` for `scores` (net.evaluate.Scores)."""
    n_fn, disp = n_functions_of(comps), displacement_of(comps)
    accs = np.round(np.stack([scores.token_acc, scores.seq_acc, scores.tf_acc], axis=1), DIGITS).tolist()
    n_steps = len(step_columns(spec))  # 0 for direct documents
    steps = np.round(scores.step_acc[:, :n_steps], DIGITS).tolist()
    tf_steps = np.round(scores.tf_step_acc[:, :n_steps], DIGITS).tolist()
    rows = []
    for c, comp in enumerate(comps):
        text = composition_text(vocab, spec, comp)
        n = int(scores.n_samples[c])
        if outorder:
            rows.append([run, step, text, spec.depth - int(n_fn[c]), int(disp[c]), *accs[c], int(in_train[c]), n])
        else:
            rows.append([run, step, text, int(n_fn[c]), int(disp[c]), int(in_train[c]), *accs[c], n, *steps[c],
                         *tf_steps[c]])
    return rows


def _acc(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows])


def inorder_table(summary: dict) -> str:
    """One line per checkpoint: overall token/seq/tf accuracy, train vs unseen, token accuracy by #functions."""
    first = summary["steps"][0]
    n_fns = [g["n_functions"] for g in first["by_n_functions"]]
    header = ["step", "token", "±se", "seq", "tf", "train", "unseen", *[f"{k}fn" for k in n_fns]]
    rows = []
    for s in summary["steps"]:
        o = s["overall"]
        rows.append([str(s["step"]), _acc(o["token_acc"]), f"{o['token_acc_se']:.4f}", _acc(o["seq_acc"]),
                     _acc(o["tf_acc"]), _acc(s["train"]["token_acc"]), _acc(s["unseen"]["token_acc"]),
                     *[_acc(g["token_acc"]) for g in s["by_n_functions"]]])
    title = (f"in-order: {first['overall']['n_compositions']} compositions, {first['overall']['n_samples']:,} samples "
             f"per checkpoint; token accuracy on y_L unless named (seq: whole y_L; tf: teacher-forced; ±se: its "
             f"standard error; chance {summary['chance']:.3f})")
    return title + "\n" + _table(header, rows)


def outorder_table(summary: dict) -> str:
    """Token accuracy by #identities (rows) and displacement (columns)."""
    groups = {(g["n_identity"], g["displacement"]): g for g in summary["groups"]}
    n_ids = sorted({i for i, _ in groups})
    disps = sorted({d for _, d in groups})
    rows = [[str(i), *(f"{_acc(groups[i, d]['token_acc'])} ({groups[i, d]['n_compositions']})" if (i, d) in groups
                       else "" for d in disps)] for i in n_ids]
    o = summary["overall"]
    title = (f"out-of-order at step {summary['step']}: {o['n_compositions']} compositions, {o['n_samples']:,} "
             f"samples; token accuracy on y_L by #identities (rows) and displacement (columns), compositions in "
             f"brackets; overall {_acc(o['token_acc'])}")
    return title + "\n" + _table(["#id", *[f"disp {d}" for d in disps]], rows)


def failures_text(vocab: Sequence[str], spec: TaskSpec, comps: np.ndarray, failures: list, step: int) -> str:
    """A few wrong samples (net.evaluate.Failure) decoded to text."""
    if not failures:
        return f"no failing samples at step {step}"
    P = spec.prompt_len
    lines = [f"failing samples at step {step}:"]
    for f in failures:
        lines += [f"  {composition_text(vocab, spec, comps[f.composition])}",
                  f"    prompt     {decode_tokens(vocab, f.expected[:P])}",
                  f"    expected   {decode_tokens(vocab, f.expected[P:])}",
                  f"    generated  {decode_tokens(vocab, f.generated[P:])}"]
    return "\n".join(lines)
