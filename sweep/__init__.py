"""Sweeps over whole pipelines: experiments as YAML, every stage launched as a Hydra multirun (`-m`)."""
