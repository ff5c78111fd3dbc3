"""Stage 1: generate a function-composition dataset into data/<tag>/ (see README, "Dataset format")."""

import time

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from synthetic.cli import run_or_exit
from synthetic.config import get_bool, get_path, get_tag
from synthetic.dataset import Dataset, check_out_dir, generate_dataset, is_complete, load_dataset, write_dataset
from synthetic.text import decode_tokens


def main(cfg: DictConfig) -> Dataset:
    """Generate and write one dataset; returns it (as written)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    get_tag(config)
    out_dir = get_path(config, "out_dir")
    overwrite = get_bool(config, "overwrite")
    if get_bool(config, "skip_complete") and is_complete(out_dir, config):
        print(f"{out_dir} already holds this dataset: skipping")
        return load_dataset(out_dir)
    check_out_dir(out_dir, overwrite)  # before generating, so a refused run costs nothing
    start = time.perf_counter()
    ds = generate_dataset(config)
    seconds = time.perf_counter() - start
    write_dataset(ds, out_dir, overwrite=overwrite)
    n_docs = len(ds.train) + len(ds.eval_train) + len(ds.eval_all)
    print(
        f"wrote {out_dir}: {len(ds.train):,} train + {len(ds.eval_train):,} eval_train + {len(ds.eval_all):,} "
        f"eval_all documents of {ds.spec.doc_len} tokens, {len(ds.train_compositions)} training compositions, "
        f"vocab {ds.spec.vocab_size} ({n_docs / seconds:,.0f} documents/s, {seconds:.2f} s)"
    )
    for doc in ds.train[: min(3, len(ds.train))]:
        print("  " + decode_tokens(ds.vocab, np.asarray(doc)))
    return ds


@hydra.main(version_base="1.3", config_path="config/gen", config_name="conf")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    cli()
