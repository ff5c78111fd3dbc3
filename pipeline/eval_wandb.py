"""Evaluation results in wandb (config/eval/conf.yaml `wandb.mode`): the summary numbers go to the training run's
own wandb run, resumed by the id its checkpoints hold (`wandb_id`), next to its training metrics.

Each section has its own step axis (`eval_inorder/step`, `eval_outorder/step`: the checkpoint's training step),
because wandb's own step may not go back to a checkpoint's step once the training run has logged past it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from core.config import one_of
from core.errors import ConfigError
from net.run_log import WANDB_MODES, start_wandb


@dataclass(frozen=True)
class EvalWandbConfig:
    mode: str = field(metadata=one_of(*WANDB_MODES))


def training_run(mode: str, ckpt: dict, path: Path) -> Callable[[], object] | None:
    """What starts (resumes) the wandb run that trained `ckpt` (None when mode is disabled); a checkpoint trained
    without wandb is refused in one line, before anything is evaluated."""
    if mode == "disabled":
        return None
    if not ckpt.get("wandb_id"):
        raise ConfigError(f"wandb.mode={mode} but checkpoint {path} has no wandb_id (it was trained with "
                          "wandb.mode=disabled), so there is no wandb run to log to; set wandb.mode=disabled")
    trained = ckpt["train_config"]["wandb"]
    return partial(start_wandb, mode, trained["project"], trained["name"], {}, ckpt["wandb_id"])


def inorder_records(summary: dict) -> list[dict]:
    """One record per evaluated checkpoint: overall, training and unseen compositions' token accuracy."""
    return [{"eval_inorder/step": s["step"],
             **{f"eval_inorder/{group}_token_acc": s[group]["token_acc"] for group in ("overall", "train", "unseen")}}
            for s in summary["steps"]]


def outorder_records(summary: dict) -> list[dict]:
    """One record: overall token accuracy and that of each (#identities, displacement) group."""
    groups = {f"eval_outorder/id{g['n_identity']}_disp{g['displacement']}_token_acc": g["token_acc"]
              for g in summary["groups"]}
    return [{"eval_outorder/step": summary["step"], "eval_outorder/overall_token_acc": summary["overall"]["token_acc"],
             **groups}]


@contextmanager
def resumed(target: Callable[[], object] | None, section: str) -> Iterator[Callable[[list[dict]], None]]:
    """The target run, resumed for `section`: yields log(records) (records from inorder_records or outorder_records;
    empty groups, accuracy None, are left out), a no-op when target is None. Entered before the evaluation writes
    anything, so that wandb failing to start (no login, no network) is one line with the results folder untouched;
    the run is finished on leaving, whatever happened (an evaluation that failed is not the training run's failure)."""
    if target is None:
        yield lambda records: None
        return
    run = target()

    def log(records: list[dict]) -> None:
        for record in records:
            run.log({key: value for key, value in record.items() if value is not None})

    try:
        run.define_metric(f"eval_{section}/*", step_metric=f"eval_{section}/step")
        yield log
    finally:
        run.finish()
