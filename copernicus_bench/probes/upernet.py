"""UPerNet probe for dense tasks (docs/protocol.md "Heads": segmentation, change detection,
pixel regression).

The reference builds mmseg's ``Feature2Pyramid(rescales=[4, 2, 1, 0.5])`` neck, ``UPerHead`` (in_index
0..3, pool_scales (1, 2, 3, 6), channels 512, dropout 0.1) and an auxiliary ``FCNHead`` (in_index 2,
channels 256, one conv, no input concat, dropout 0.1), both with SyncBN, and resizes both outputs to the
input size (bilinear, align_corners=False). mmseg is not a dependency, so the same structure is written
here (smp's / timm's UPerNet blocks differ: smp's PPM and FPN use other channel counts and biases):

* ``ConvModule`` = Conv2d(bias=False) -> BatchNorm2d -> ReLU, conv initialised as mmcv does in the
  constructor (Kaiming normal, fan_out, relu). BatchNorm2d replaces SyncBN on one device.
* ``conv_seg`` (1x1, with bias) keeps PyTorch's default init: mmseg's Normal(std=0.01) ``init_cfg`` only
  runs from ``init_weights()``, which the reference's plain LightningModule never calls.
* Dropout is ``Dropout2d(0.1)`` before ``conv_seg`` (mmseg ``BaseDecodeHead.cls_seg``).

Why kept hand-written: no installable library carries this exact head. mmseg needs mmcv's compiled ops
(the reference pins mmcv 2.1.0 with torch 2.1.2); smp's UPerNet decoder takes CNN feature pyramids with other
channel counts and biases; timm has no UPerNet. Built beside mmseg 1.2.2 with these weights copied in, outputs,
gradients and BatchNorm running statistics were equal (max diff 0.0), 41,108,482 parameters at one output
(``tests/test_parity_reference.py`` pins the count). FLOPs are counted by torch's ``FlopCounterMode``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvModule(nn.Module):
    """mmcv ConvModule with BN and ReLU: conv (no bias) -> BN -> ReLU (same child names as mmcv)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, bias=False)
        nn.init.kaiming_normal_(self.conv.weight, a=0, mode="fan_out", nonlinearity="relu")
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class Feature2Pyramid(nn.Module):
    """mmseg ``Feature2Pyramid``: one ViT map (B, D, h, w) per level -> 4h, 2h, h, h/2."""

    _NAMES = {4: "upsample_4x", 2: "upsample_2x", 1: "identity", 0.5: "downsample_2x"}

    def __init__(self, embed_dim: int, rescales: Sequence[float] = (4, 2, 1, 0.5)) -> None:
        super().__init__()
        self.rescales = tuple(rescales)
        for k in self.rescales:
            if k == 4:
                op: nn.Module = nn.Sequential(
                    nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2),
                    nn.BatchNorm2d(embed_dim),
                    nn.GELU(),
                    nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2),
                )
            elif k == 2:
                op = nn.Sequential(nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2))
            elif k == 1:
                op = nn.Identity()
            elif k == 0.5:
                op = nn.MaxPool2d(kernel_size=2, stride=2)
            else:
                raise ValueError(f"Feature2Pyramid: unsupported rescale {k} (mmseg allows 4, 2, 1, 0.5)")
            setattr(self, self._NAMES[k], op)  # mmseg's attribute names, so state-dict keys match

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        if len(maps) != len(self.rescales):
            raise ValueError(f"Feature2Pyramid expects {len(self.rescales)} maps, got {len(maps)}")
        return [getattr(self, self._NAMES[k])(x) for k, x in zip(self.rescales, maps)]


class PPM(nn.ModuleList):
    """Pyramid pooling: adaptive average pool to each scale, 1x1 ConvModule, upsample back."""

    def __init__(self, pool_scales: Sequence[int], in_ch: int, channels: int) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(in_ch, channels, 1)) for s in pool_scales
        )

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return [_resize(m(x), x.shape[2:]) for m in self]


class UPerHead(nn.Module):
    """mmseg ``UPerHead`` (PPM on the last level + FPN) followed by ``cls_seg``."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        in_channels = list(in_channels)
        self.psp_modules = PPM(pool_scales, in_channels[-1], channels)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3, padding=1) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def psp_forward(self, x: Tensor) -> Tensor:
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(inputs[-1]))
        n = len(laterals)
        for i in range(n - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [self.fpn_convs[i](laterals[i]) for i in range(n - 1)]
        outs.append(laterals[-1])
        outs = [outs[0]] + [_resize(o, outs[0].shape[2:]) for o in outs[1:]]
        feats = self.fpn_bottleneck(torch.cat(outs, dim=1))
        return self.conv_seg(self.dropout(feats))


class FCNHead(nn.Module):
    """mmseg ``FCNHead`` with ``num_convs=1, concat_input=False``: 3x3 ConvModule -> dropout -> conv_seg."""

    def __init__(self, in_ch: int, num_classes: int, channels: int = 256, in_index: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.in_index = in_index
        self.convs = nn.Sequential(ConvModule(in_ch, channels, 3, padding=1))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        return self.conv_seg(self.dropout(self.convs(inputs[self.in_index])))


class UPerNetProbe(nn.Module):
    """Neck + UPerHead + auxiliary FCNHead on four frozen-encoder maps.

    ``forward(maps, out_size)``: ``maps`` = 4 tensors (B, D, h, w) from the paper's layers; returns
    ``(main, aux)``, each (B, num_outputs, H, W) bilinearly resized to ``out_size``. For regression
    ``num_outputs`` is 1.
    """

    def __init__(self, embed_dim: int, num_outputs: int, channels: int = 512, aux_channels: int = 256,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.neck = Feature2Pyramid(embed_dim, rescales=(4, 2, 1, 0.5))
        self.decode_head = UPerHead([embed_dim] * 4, num_outputs, channels, pool_scales, dropout)
        self.auxiliary_head = FCNHead(embed_dim, num_outputs, aux_channels, in_index=2, dropout=dropout)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, maps: Sequence[Tensor], out_size: Sequence[int]) -> tuple[Tensor, Tensor]:
        feats = self.neck(maps)
        main = _resize(self.decode_head(feats), out_size)
        aux = _resize(self.auxiliary_head(feats), out_size)
        return main, aux


# ----------------------------------------------------------------------------------- FLOPs
def count_flops(module: nn.Module, *args: object, **kwargs: object) -> int:
    """FLOPs of one forward call as ``torch.utils.flop_counter.FlopCounterMode`` counts them.

    2 per multiply-add of convolutions (incl. transposed), matmuls and attention; norms, activations,
    pooling, interpolation, additions and biases are not counted. Equal to the forward-hook count on
    Conv2d/ConvTranspose2d/Linear this replaced (``tests/test_library_equivalents.py``). Works on ``meta``
    tensors. The count is for the whole batch passed in; divide by the batch size for a per-sample figure.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*args, **kwargs)
    return int(counter.get_total_flops())


def flops_per_sample(embed_dim: int, h: int, w: int, num_outputs: int,
                     out_size: Sequence[int] | None = None, **probe_kwargs: object) -> int:
    """FLOPs of one sample through :class:`UPerNetProbe` for a ``h`` x ``w`` token grid.

    Built on the ``meta`` device (no memory, no arithmetic): shapes only. ``out_size`` does not change the
    count (the final resizes are not convolutions); it defaults to 16 x the grid.
    """
    out_size = tuple(out_size) if out_size is not None else (16 * h, 16 * w)
    make: Callable[[], nn.Module] = lambda: UPerNetProbe(embed_dim, num_outputs, **probe_kwargs)  # noqa: E731
    with torch.device("meta"):
        probe = make().eval()
        maps = [torch.empty(1, embed_dim, h, w) for _ in range(4)]
    return count_flops(probe, maps, out_size)


__all__ = ["FCNHead", "Feature2Pyramid", "PPM", "UPerHead", "UPerNetProbe", "count_flops", "flops_per_sample"]
