"""The research line behind the shipped model: its training recipe and the tools that describe it.

Not installed and imported by no product module (``train/``, ``export/``, ``edge/``,
``benchmarks/``); scripts here import the product, never the other way round.
"""
