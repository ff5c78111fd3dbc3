"""Where training metrics go: `metrics.jsonl` in the run folder always, and wandb when it is switched on."""

import json
from pathlib import Path

from core.errors import PipelineError, first_line
from core.io import write_text

WANDB_MODES = ("disabled", "offline", "online")


def load_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file; a torn last line (a killed writer) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class NoWandb:
    """Stand-in for a wandb run when wandb.mode=disabled: does nothing and writes nothing."""

    id = None

    def log(self, data: dict, step: int) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


class WandbError(PipelineError):
    """wandb could not start a run (no login, no network): one line, before anything is written."""


def start_wandb(mode: str, project: str, name: str, config: dict, run_id: str | None):
    """A wandb run (resumed when `run_id` is given), or the do-nothing stand-in when mode is "disabled"."""
    if mode == "disabled":
        return NoWandb()
    import wandb  # imported only when used: it is slow to import

    try:
        return wandb.init(project=project, name=name, mode=mode, config=config, id=run_id,
                          resume="allow" if run_id else None)
    except wandb.errors.Error as err:
        raise WandbError(f"wandb.mode={mode} could not start a wandb run ({first_line(err)}); use "
                         "wandb.mode=offline (and `wandb sync` later) or wandb.mode=disabled, or log in with "
                         "`wandb login`") from None


class RunLog:
    """Appends one JSON line per event to `metrics.jsonl` and mirrors it to wandb (or its stand-in)."""

    def __init__(self, out_dir: Path, resume_step: int | None, wandb_run) -> None:  # wandb_run: from start_wandb
        self.path = out_dir / "metrics.jsonl"
        kept = [r for r in load_metrics(self.path) if r["step"] <= resume_step] if resume_step is not None else []
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))  # drop what followed the checkpoint
        self.wandb = wandb_run
        self.file = open(self.path, "a")  # noqa: SIM115 (kept open for the whole run, closed by finish)

    def log(self, record: dict) -> None:
        """`record` holds "event" ("train" or "eval"), "step" and numbers."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        self.wandb.log({k: v for k, v in record.items() if k not in ("event", "step")}, step=record["step"])

    def finish(self, failed: bool) -> None:
        self.file.close()
        self.wandb.finish(exit_code=1 if failed else 0)
