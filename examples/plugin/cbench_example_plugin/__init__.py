"""An example copernicus-bench encoder plug-in: a tiny CNN with random (seeded) or user weights.

It shows the whole contract a third-party encoder implements (``copernicus_bench.encoder``):

* ``build_adapter(**kwargs)`` — the factory named by the entry point; the runner calls it with
  ``weights_dir`` and ``seed`` plus any ``--model-args`` (here ``width`` and ``checkpoint``);
* :meth:`TinyCNNAdapter.applicability` — ``None`` when the model applies to a task, else the reason it does
  not (here: the S5P air-quality tasks, whose inputs are non-spectral *variables*; the leaderboard shows
  ``-`` there);
* :meth:`TinyCNNAdapter.input_pipeline` — inherited default: the card's band mean/std and resolution
  (capped near 64 px in the smoke tier);
* :meth:`TinyCNNAdapter.build` — a frozen :class:`~copernicus_bench.encoder.TaskEncoder` for one task that
  returns a pooled embedding (B, D) and four maps (B, D, R/16, R/16) for the UPerNet probe, and a
  :class:`~copernicus_bench.encoder.WeightsInfo` (``random-init`` from the seed, or ``user`` for a file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from copernicus_bench.encoder import (
    EncoderAdapter,
    EncoderOutput,
    InputPipeline,
    TaskEncoder,
    WeightsInfo,
    state_dict_sha256,
)

__all__ = ["TinyCNNAdapter", "TinyCNNEncoder", "build_adapter"]


class TinyCNN(nn.Module):
    """Stem of strided convolutions down to 1/16 of the input, then four residual conv blocks."""

    def __init__(self, in_chans: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = in_chans
        for _ in range(4):  # 4 × stride 2 = 1/16, like a ViT with 16-px patches
            layers += [nn.Conv2d(chans, width, 3, stride=2, padding=1), nn.GroupNorm(4, width), nn.GELU()]
            chans = width
        self.stem = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(4, width), nn.GELU())
            for _ in range(4))

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.stem(x)
        maps = []
        for block in self.blocks:
            h = h + block(h)
            maps.append(h)
        return maps


class TinyCNNEncoder(TaskEncoder):
    def __init__(self, net: TinyCNN, width: int, weights: WeightsInfo) -> None:
        super().__init__()
        self.net = net
        self.embed_dim = width
        self.weights = weights

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:
        maps = self.net(x)  # this model ignores the metadata (lon, lat, time, area)
        pooled = maps[-1].mean(dim=(2, 3))
        return EncoderOutput(pooled=pooled, maps=maps if want_maps else None)


class TinyCNNAdapter(EncoderAdapter):
    name = "my-encoder"
    description = "example plug-in: tiny random CNN, all spectral tasks (not S5P)"

    def model_card(self):
        """Declare your model's card: licences, pretraining data, citation and benchmark overlap."""
        from copernicus_bench.model_card import ModelCard

        return ModelCard(
            name=self.name, architecture=f"3-layer CNN, width {self.width}", parameters="tiny (example)",
            code_license="MIT (this example)", weights_license="none (random weights from the seed)",
            pretraining_data="none", pretraining_sensors=(), citation="none (an example, not a published model)",
            release="n/a", overlap="none", overlap_note="no pretraining")

    def __init__(self, width: int = 32, checkpoint: str | None = None) -> None:
        self.width = int(width)
        self.checkpoint = Path(checkpoint) if checkpoint else None

    def applicability(self, card) -> str | None:
        if card.input_mode != "spectral":
            return f"{card.sensor.upper()} inputs are non-spectral variables; this CNN takes spectral bands only"
        return None

    def build(self, card, pipeline: InputPipeline, seed: int) -> TinyCNNEncoder:
        torch.manual_seed(seed)  # random weights drawn from the run's seed
        net = TinyCNN(pipeline.num_channels, self.width)
        if self.checkpoint is not None:  # a researcher's own weights: labelled by the file's sha256
            net.load_state_dict(torch.load(self.checkpoint, map_location="cpu", weights_only=True))
            sha = hashlib.sha256(self.checkpoint.read_bytes()).hexdigest()
            info = WeightsInfo(source="user", sha256=sha, file=str(self.checkpoint))
        else:
            info = WeightsInfo(source="random-init", sha256=state_dict_sha256(net))
        return TinyCNNEncoder(net.eval(), self.width, info)

    def weights_status(self) -> str:
        return f"user checkpoint {self.checkpoint}" if self.checkpoint else "random init per seed"

    def options(self) -> dict:
        return {"width": self.width}


def build_adapter(weights_dir: str | None = None, seed: int = 0, width: int = 32,
                  checkpoint: str | None = None) -> TinyCNNAdapter:
    """Entry-point factory (``copernicus_bench.models``: ``my-encoder``)."""
    return TinyCNNAdapter(width=width, checkpoint=checkpoint)
