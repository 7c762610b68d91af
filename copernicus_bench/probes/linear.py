"""Linear probe on the pooled embedding (docs/protocol.md "Heads", classification).

``ln-bn-linear`` is the reference's MAE-style linear probe for Copernicus-FM, DOFA and the random ViT: the
encoder's ``fc_norm`` LayerNorm is absent from the checkpoints, so it stays at its identity initialisation and
frozen; then ``BatchNorm1d(affine=False, eps=1e-6)`` and a ``Linear`` with weight ``trunc_normal(std=0.01)``
(``dofa_wrapper.py`` / ``copernicusfm_wrapper.py``) and **PyTorch's default bias** U(±1/√D) — the reference
re-initialises only the weight. ``linear`` is the plain ``Linear`` with PyTorch's default weight and bias
init, as the reference's SoftCon ``linear_classifier`` and CROMA's replaced ``GAP_FFN[1]`` (CROMA's
pretrained LayerNorm belongs to its pooled embedding).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

LinearHead = Literal["ln-bn-linear", "linear"]


class LinearProbe(nn.Module):
    """Probe head: pooled embedding (B, D) -> logits (B, num_outputs)."""

    def __init__(self, embed_dim: int, num_outputs: int, head: LinearHead = "ln-bn-linear") -> None:
        super().__init__()
        if head not in ("ln-bn-linear", "linear"):
            raise ValueError(f"unknown linear head '{head}'; use 'ln-bn-linear' or 'linear'")
        self.head_type = head
        self.norm: nn.Module
        self.bn: nn.Module
        if head == "ln-bn-linear":
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)  # weight 1, bias 0: the encoder's fresh fc_norm
            self.norm.requires_grad_(False)
            self.bn = nn.BatchNorm1d(embed_dim, affine=False, eps=1e-6)
        else:
            self.norm = nn.Identity()
            self.bn = nn.Identity()
        self.linear = nn.Linear(embed_dim, num_outputs)  # default init: weight and bias U(±1/√D)
        if head == "ln-bn-linear":
            # imported here: timm costs ~3 s of import that a run of only skipped jobs never needs
            from timm.layers import trunc_normal_

            trunc_normal_(self.linear.weight, std=0.01)  # timm's, as the reference (cut at ±2 absolute)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser gets (the frozen LayerNorm is excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, pooled: Tensor) -> Tensor:
        if pooled.ndim != 2:
            raise ValueError(f"LinearProbe expects a pooled embedding (B, D), got {tuple(pooled.shape)}")
        return self.linear(self.bn(self.norm(pooled)))


__all__ = ["LinearHead", "LinearProbe"]
