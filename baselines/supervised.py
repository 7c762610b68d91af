"""``supervised-vit-s16`` / ``supervised-vit-b16``: the paper's supervised-from-scratch rows.

As the reference (``Copernicus-Bench/src/foundation_models/vit_wrapper.py`` with ``configs/model/vit_*_sup.yaml``,
``freeze_backbone: false``): a timm ViT-S (384 wide, 12 blocks, 6 heads) or ViT-B (768, 12, 12) with
``patch_size`` = the task's kernel (so "16" is nominal: 8 on S3, 4 on S5P), ``in_chans`` = the card's bands,
weights drawn from the run's seed, trained end to end with the paper's heads by
:mod:`~copernicus_bench.finetune` at the reference's supervised learning rates. Pooled embedding and feature
layers are the random ViT's (mean of patch tokens; blocks 3, 5, 7, 11). These models run only under
``--protocol finetune`` (the runner selects it for them; a frozen probe of a random ViT is ``random``).
``config=tiny`` is the random ViT's tiny test architecture.
"""

from __future__ import annotations

from copernicus_bench.errors import CbenchError

from .random_vit import RandomViTAdapter

ARCHS: dict[str, dict[str, int]] = {
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


class SupervisedViTAdapter(RandomViTAdapter):
    """A random-init ViT whose protocol is end-to-end supervised training."""

    #: the runner trains encoders with this attribute end to end (``--protocol finetune``)
    protocol = "finetune"
    supervised = True

    def __init__(self, size: str, config: str = "base") -> None:
        if config not in ("base", "tiny"):
            raise CbenchError(f"--model-args config={config!r}: unknown; choose base or tiny")
        super().__init__(config=config)
        self.size = size
        if config == "base":
            self.arch = ARCHS[size]
        letter = size[0].upper()
        self.name = f"supervised-vit-{size[0]}16"
        self.description = (f"ViT-{letter}/16 (patch = task kernel) trained from scratch end to end with the "
                            "paper's heads (the paper's supervised rows)")

    def weights_status(self) -> str:
        return "random init per seed, trained end to end"

    def options(self) -> dict:
        return {"size": self.size, **({"config": self.config} if self.config != "base" else {})}


def build_small(weights_dir: str | None = None, seed: int = 0, random_init: bool = True,
                config: str = "base") -> SupervisedViTAdapter:
    """Factory of ``supervised-vit-s16`` (``weights_dir``/``seed``/``random_init``: the common signature)."""
    return SupervisedViTAdapter("small", config=config)


def build_base(weights_dir: str | None = None, seed: int = 0, random_init: bool = True,
               config: str = "base") -> SupervisedViTAdapter:
    """Factory of ``supervised-vit-b16``."""
    return SupervisedViTAdapter("base", config=config)
