"""Mechanistic analysis of a trained nanoGPT (SPEC.md §9 item 7): attention, layer-by-layer probes, ablations.

Every activation is read or replaced through the model's TransformerLens-style hook points
(`blocks.{l}.attn.hook_pattern`, `blocks.{l}.hook_resid_mid`, ...). `05_analyze.py` runs it all
(`analysis.stage.run_analysis`); `analysis.findings.summarize_mechanism` turns the CSVs into finding 7.
"""
