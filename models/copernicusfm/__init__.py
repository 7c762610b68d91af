"""Copernicus-FM (Wang et al., ICCV 2025, arXiv:2503.11849): encoder, checkpoint loading, variable
embeddings and the benchmark adapter ``copernicus-fm``.

Import the parts from their modules (``.model``, ``.checkpoint``, ``.varembed``, ``.adapter``); this package
file stays import-light so ``cbench --help`` and the entry-point scan stay fast.
"""
