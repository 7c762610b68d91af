"""copernicus-bench: score Earth-observation foundation models on Copernicus-Bench.

Copernicus-Bench is the 15-task benchmark of the Copernicus-FM paper (Wang et al., ICCV 2025,
arXiv:2503.11849). The package holds the task registry, the frozen-encoder probing runner, the feature
cache, the results store, the leaderboard writer, the baselines and Copernicus-FM itself.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "create_encoder"]


def __getattr__(name: str):  # lazy: ``import copernicus_bench`` must not pull in torch
    if name == "create_encoder":
        from .api import create_encoder

        return create_encoder
    raise AttributeError(f"module 'copernicus_bench' has no attribute {name!r}")
