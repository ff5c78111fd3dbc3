"""Mechanistic analysis of a trained nanoGPT (docs/task.md §9, finding 7): attention, layer-by-layer probes,
ablations, activation patching.

Every activation is read or replaced through the model's TransformerLens-style hook points
(`blocks.{l}.attn.hook_pattern`, `blocks.{l}.hook_resid_mid`, ...). `05_analyze.py` runs it all
(`pipeline.analyze.run`); `analysis.summary.mechanism_numbers` condenses the rows into the numbers the report
judges finding 7 on.
"""
