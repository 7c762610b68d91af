"""Copernicus-FM pretraining objective: per-modality MAE with a dynamic decoder head + continual distillation.

Wang et al., arXiv:2503.11849 §3.3 / released ``Copernicus-FM/src`` (docs/models.md,
"Pretraining"):

* MAE per modality (mask ratio 0.7), decoder 512-d × 8 blocks × 16 heads with its own position embedding
  (fixed 2-D sin-cos, resized to the token grid) and its own metadata encodings (``*_fc_decoder`` and
  ``*_token_dec``, added to the decoder position embedding like the encoder's).
* **Dynamic decoder head**: the per-band pixel projection (decoder_dim → k0·k0 pixels of band c) is generated
  by a hypernetwork from the encoder's band embedding (``band_embed`` of ``forward_encoder``), then FlexiViT
  PI-resized from k0 = 16 to the modality's kernel. Deliberate addition: the resized projection is multiplied
  by k/k0 so per-pixel output magnitudes do not change with the kernel (PI-resize preserves inner products,
  i.e. the *sum* over pixels, so a 4-px head would otherwise be 4× larger than a 16-px one and the shared
  variable head would fight between S5P (k 4) and DEM (k 64)).
* ``norm_pix_loss``: targets normalised per patch (mean/var over the patch's channels and pixels); loss =
  MSE on masked patches; averaged over modalities. Prediction and target are both flattened (c, i, j)
  (``loss_pairing="consistent"``, default); ``"reference"`` flattens the target (i, j, c) as the reference's
  ``patchify`` does while its decoder emits (c, i, j) — an upstream mismatch whenever C > 1, kept reproducible.
* Distillation (docs/conventions.md "Facts resolved"): S2 RGB (B4, B3, B2 of the normalised S2) through the
  UNMASKED student, pooled as the reference (``student_feature="reference"``: un-normed mean over all tokens,
  CLS included; ``"normed-patch"``: mean of the final-normed patch tokens) → ``student_proj`` → cosine with a frozen DINOv2 ViT-B/14's mean-pooled
  last-layer patch tokens, weight 0.1; SoftCon ViT-B/14 teachers for S2 (13 bands) and S1 (2 bands), weight
  0.2. Teachers see the same pretraining-normalised input as the student. Each teacher is off when its
  weights are absent; :func:`load_teachers` reports which were used.

Parameter names match the pretraining-only prefixes of ``checkpoint.PRETRAINING_ONLY_PREFIXES`` so the whole
MAE state dict (encoder keys unprefixed) loads into a plain encoder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import Tensor, nn
from torchgeo.models.copernicusfm import FourierExpansion, resize_abs_pos_embed
from torchgeo.models.dofa import FCResLayer

from .model import CopernicusFMViT, pi_resize_kernel, sincos_pos_embed_2d
from .pretrain_data import S1_BANDWIDTHS, S1_WAVELENGTHS, S2_BANDWIDTHS, S2_RGB, S2_WAVELENGTHS, View

log = logging.getLogger(__name__)

DECODER_CONFIGS = {
    "base": dict(decoder_dim=512, decoder_depth=8, decoder_heads=16),
    "tiny": dict(decoder_dim=32, decoder_depth=1, decoder_heads=4),
}


# --------------------------------------------------------------------------------------- decoder head
class DynamicDecoderHead(nn.Module):
    """Per-band pixel projection generated from band embeddings (C, hyper_dim).

    ``fclayer`` (FCResLayer) → ``fc_weight`` (hyper → k0·k0·decoder_dim) and ``fc_bias`` (hyper → 1), so band c
    gets W_c (decoder_dim, k0, k0) and a scalar bias; W is PI-resized to the requested kernel.
    """

    def __init__(self, hyper_dim: int, decoder_dim: int, base_kernel: int = 16) -> None:
        super().__init__()
        self.decoder_dim = decoder_dim
        self.base_kernel = base_kernel
        self.fclayer = FCResLayer(hyper_dim)
        self.fc_weight = nn.Linear(hyper_dim, base_kernel * base_kernel * decoder_dim)
        self.fc_bias = nn.Linear(hyper_dim, 1)
        nn.init.xavier_uniform_(self.fc_weight.weight, gain=0.02 ** 0.5)
        nn.init.zeros_(self.fc_weight.bias)
        nn.init.zeros_(self.fc_bias.weight)
        nn.init.zeros_(self.fc_bias.bias)

    def projection(self, band_embed: Tensor, kernel: int) -> tuple[Tensor, Tensor]:
        """Weights (D, C, k, k) and bias (C,) for ``kernel`` k."""
        waves = self.fclayer(band_embed)
        c, k0 = waves.shape[0], self.base_kernel
        w = self.fc_weight(waves).view(c, k0, k0, self.decoder_dim).permute(3, 0, 1, 2)
        if kernel != k0:
            w = pi_resize_kernel(w, kernel) * (kernel / k0)
        return w, self.fc_bias(waves).view(c)

    def forward(self, h: Tensor, band_embed: Tensor, kernel: int) -> Tensor:
        """Decoder tokens (B, N, D) → predicted patches (B, N, C, k, k)."""
        w, b = self.projection(band_embed, kernel)
        return torch.einsum("bnd,dcij->bncij", h, w.to(h.dtype)) + b.to(h.dtype).view(1, 1, -1, 1, 1)


def patchify(x: Tensor, kernel: int) -> Tensor:
    """(B, C, H, W) → (B, N, C, k, k) in row-major token order (the encoder's conv grid)."""
    b, c, hh, ww = x.shape
    h, w = hh // kernel, ww // kernel
    x = x[:, :, : h * kernel, : w * kernel].reshape(b, c, h, kernel, w, kernel)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c, kernel, kernel)


LOSS_PAIRINGS = ("consistent", "reference")
STUDENT_FEATURES = ("reference", "normed-patch")


def mae_loss(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = True,
             pairing: str = "consistent") -> Tensor:
    """MSE on masked patches; with ``norm_pix`` targets are normalised per patch (MAE, He et al. 2022).

    ``pred``/``target`` are (B, N, C, k, k). ``pairing="reference"`` flattens the target (k, k, C) — the
    reference's ``patchify`` (``nchpwq->nhwpqc``) — against the prediction's (C, k, k)."""
    if pairing not in LOSS_PAIRINGS:
        raise ValueError(f"loss pairing {pairing!r}: choose one of {LOSS_PAIRINGS}")
    pred = pred.flatten(2).float()
    if pairing == "reference":
        target = target.permute(0, 1, 3, 4, 2)
    target = target.flatten(2).float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


# --------------------------------------------------------------------------------------- teachers
@dataclass
class Teacher:
    """A frozen teacher: ``module(x) -> (B, dim)`` pooled features; which student input; loss weight."""

    name: str  # "dinov2", "softcon_s2", "softcon_s1"
    module: nn.Module
    dim: int
    weight: float
    source: str = "injected"

    def __post_init__(self) -> None:
        self.module.eval().requires_grad_(False)


class PooledViT(nn.Module):
    """Mean of a timm ViT's last-layer patch tokens (prefix tokens dropped); input resized to the ViT's size."""

    def __init__(self, vit: nn.Module, patch: int = 14) -> None:
        super().__init__()
        self.vit = vit
        self.patch = patch

    def forward(self, x: Tensor) -> Tensor:
        fixed = getattr(getattr(self.vit, "patch_embed", None), "img_size", None)  # timm ViT: fixed 224
        size = fixed[-1] if fixed else max(self.patch, round(x.shape[-1] / self.patch) * self.patch)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        tokens = self.vit.forward_features(x)
        return tokens[:, getattr(self.vit, "num_prefix_tokens", 1):].mean(dim=1)


TEACHER_FILES = {
    "dinov2": "dinov2_vitb14_pretrain.pth",
    "softcon_s2": "B13_vitb14_softcon_enc.pth",
    "softcon_s1": "B2_vitb14_softcon_enc.pth",
}
TEACHER_CHANNELS = {"dinov2": 3, "softcon_s2": 13, "softcon_s1": 2}
DEFAULT_WEIGHTS = {"dinov2": 0.1, "softcon_s2": 0.2, "softcon_s1": 0.2}


def _timm_vitb14(in_chans: int) -> nn.Module:
    import timm

    return timm.create_model("vit_base_patch14_dinov2", pretrained=False, img_size=224, in_chans=in_chans,
                             num_classes=0)


def _load_vit_file(name: str, path: Path) -> nn.Module:
    from timm.models.vision_transformer import checkpoint_filter_fn

    from copernicus_bench.weights import load_checkpoint

    vit = _timm_vitb14(TEACHER_CHANNELS[name])
    sd = load_checkpoint(path)
    sd = sd.get("model", sd) if isinstance(sd.get("model"), dict) else sd
    sd = checkpoint_filter_fn({k.removeprefix("module."): v for k, v in sd.items()}, vit)
    missing, unexpected = vit.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.startswith(("norm.", "head.", "fc_norm."))]
    if bad or unexpected:
        from copernicus_bench.errors import CbenchError

        raise CbenchError(f"teacher {path}: does not match timm vit_base_patch14_dinov2 (missing {bad[:4]}, "
                          f"unexpected {list(unexpected)[:4]}); use the released {TEACHER_FILES[name]}")
    return vit


def _dinov2_from_hub_cache() -> tuple[nn.Module, str] | None:
    """timm ``vit_base_patch14_dinov2.lvd142m`` from the local HF hub cache only (never the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache("timm/vit_base_patch14_dinov2.lvd142m", fname)
        if isinstance(hit, str) and os.path.isfile(hit):
            from safetensors.torch import load_file
            from timm.models.vision_transformer import checkpoint_filter_fn

            vit = _timm_vitb14(3)
            sd = load_file(hit) if hit.endswith(".safetensors") else torch.load(hit, weights_only=True)
            vit.load_state_dict(checkpoint_filter_fn(sd, vit), strict=False)
            return vit, f"hf-cache:{hit}"
    return None


def load_teachers(weights_dir: str | os.PathLike | None, weights: dict[str, float] | None = None
                  ) -> tuple[list[Teacher], dict[str, str]]:
    """Teachers whose weights are present locally (no downloads). Returns (teachers, {name: why off/source}).

    A teacher with weight 0 is off. DINOv2 comes from ``dinov2_vitb14_pretrain.pth`` in the weights folder
    or timm's ``vit_base_patch14_dinov2.lvd142m`` in the hub cache; SoftCon from the ``_enc`` files.
    """
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    teachers: list[Teacher] = []
    status: dict[str, str] = {}
    folder = Path(weights_dir) if weights_dir else None
    for name, w in weights.items():
        if w <= 0:
            status[name] = "off (weight 0)"
            continue
        path = folder / TEACHER_FILES[name] if folder else None
        vit, source = None, ""
        if path is not None and path.is_file():
            vit, source = _load_vit_file(name, path), str(path)
        elif name == "dinov2":
            hit = _dinov2_from_hub_cache()
            if hit is not None:
                vit, source = hit
        if vit is None:
            status[name] = f"off ({TEACHER_FILES[name]} not in {folder})"
            continue
        teachers.append(Teacher(name, PooledViT(vit), vit.num_features, w, source))
        status[name] = f"on ({source})"
    return teachers, status


# --------------------------------------------------------------------------------------- the MAE
class CopernicusFMMAE(nn.Module):
    """Encoder (:class:`CopernicusFMViT`, unprefixed keys) + MAE decoder + distillation projections."""

    def __init__(self, encoder: CopernicusFMViT, decoder_dim: int = 512, decoder_depth: int = 8,
                 decoder_heads: int = 16, mask_ratio: float = 0.7, norm_pix_loss: bool = True,
                 teachers: Sequence[Teacher] = (), base_kernel: int = 16, loss_pairing: str = "consistent",
                 student_feature: str = "reference") -> None:
        super().__init__()
        if loss_pairing not in LOSS_PAIRINGS:
            raise ValueError(f"loss_pairing {loss_pairing!r}: choose one of {LOSS_PAIRINGS}")
        if student_feature not in STUDENT_FEATURES:
            raise ValueError(f"student_feature {student_feature!r}: choose one of {STUDENT_FEATURES}")
        d = encoder.embed_dim
        self.encoder = encoder
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.loss_pairing = loss_pairing
        self.student_feature = student_feature
        self.decoder_dim = decoder_dim
        self.norm = nn.LayerNorm(d, eps=1e-6)  # the MAE encoder's final norm (pretraining-only key "norm.*")

        self.decoder_embed = nn.Linear(d, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed_2d(decoder_dim, encoder.grid_size).unsqueeze(0), requires_grad=False)
        self.coord_expansion_dec = FourierExpansion(0.0001, 720)
        self.scale_expansion_dec = FourierExpansion(0.001, 5.1e8)
        self.time_expansion_dec = FourierExpansion(1, 365.25, assert_range=False)
        self.coord_fc_decoder = nn.Linear(decoder_dim, decoder_dim)
        self.scale_fc_decoder = nn.Linear(decoder_dim, decoder_dim)
        self.time_fc_decoder = nn.Linear(decoder_dim, decoder_dim)
        self.coord_token_dec = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.scale_token_dec = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.time_token_dec = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.ModuleList(
            [Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True, norm_layer=norm_layer)
             for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_dim)
        self.decoder_pred_spectral = DynamicDecoderHead(encoder.hyper_dim, decoder_dim, base_kernel)
        self.decoder_pred_variable = DynamicDecoderHead(encoder.hyper_dim, decoder_dim, base_kernel)
        self._init_decoder()

        # frozen teachers are NOT submodules: they stay out of state dicts and checkpoints
        self._teachers: list[Teacher] = list(teachers)
        for t in self._teachers:
            setattr(self, _proj_name(t.name), nn.Linear(d, t.dim))

    def _init_decoder(self) -> None:
        for m in [self.decoder_embed, self.coord_fc_decoder, self.scale_fc_decoder, self.time_fc_decoder,
                  *self.decoder_blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.mask_token, self.coord_token_dec, self.scale_token_dec, self.time_token_dec):
            nn.init.normal_(p, std=0.02)

    @property
    def teachers(self) -> list[Teacher]:
        return self._teachers

    # ------------------------------------------------------------------ state dicts
    def export_state_dict(self) -> dict[str, Tensor]:
        """Encoder keys unprefixed + pretraining-only keys (norm, decoder_*, student_proj*), as the loader expects."""
        out = {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}
        for k, v in self.state_dict().items():
            if not k.startswith("encoder."):
                out[k] = v.detach().cpu().clone()
        return out

    # ------------------------------------------------------------------ decoder
    def _decoder_meta(self, meta: Tensor) -> Tensor:
        """Decoder metadata embedding (B, 1, Dd); a NaN field uses its learned token for that sample."""
        dd = self.decoder_dim
        meta = meta.float()

        def one(vals: Tensor, nan: Tensor, token: Tensor, fc: nn.Linear, enc: Callable[[Tensor], Tensor]) -> Tensor:
            safe = torch.where(nan.view(-1, *([1] * (vals.ndim - 1))), torch.zeros_like(vals), vals)
            e = torch.where(nan.view(-1, 1, 1), token, enc(safe).to(token.dtype))
            return fc(e)

        def enc_coord(ll: Tensor) -> Tensor:
            return torch.cat([self.coord_expansion_dec(ll[:, 0] + 180, dd // 2),
                              self.coord_expansion_dec(ll[:, 1] + 90, dd // 2)], dim=-1).unsqueeze(1)

        ll = meta[:, :2]
        coord = one(ll, torch.isnan(ll).any(1), self.coord_token_dec, self.coord_fc_decoder, enc_coord)
        area = one(meta[:, 3], torch.isnan(meta[:, 3]), self.scale_token_dec, self.scale_fc_decoder,
                   lambda a: self.scale_expansion_dec(a, dd).unsqueeze(1))
        time = one(meta[:, 2], torch.isnan(meta[:, 2]), self.time_token_dec, self.time_fc_decoder,
                   lambda t: self.time_expansion_dec(t, dd).unsqueeze(1))
        return coord + area + time

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor, meta: Tensor, grid: tuple[int, int],
                        band_embed: Tensor, input_mode: str, kernel: int) -> Tensor:
        """Latent (B, 1+N_keep, D) → predicted patches (B, N, C, k, k)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        mask_tokens = self.mask_token.expand(b, n + 1 - x.shape[1], -1).to(x.dtype)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], x_], dim=1)
        pos = resize_abs_pos_embed(self.decoder_pos_embed, grid, (self.encoder.grid_size,) * 2,
                                   num_prefix_tokens=1)
        x = x + (pos + self._decoder_meta(meta.to(x.device))).to(x.dtype)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)[:, 1:]
        head = self.decoder_pred_spectral if input_mode == "spectral" else self.decoder_pred_variable
        return head(x, band_embed, kernel)

    # ------------------------------------------------------------------ losses
    def _lang(self, view: View, var_embeds: dict[str, Tensor] | None, device) -> Tensor | None:
        if view.input_mode != "variable":
            return None
        if var_embeds is None or view.name not in var_embeds:
            raise KeyError(f"no variable embedding for '{view.name}'")
        return var_embeds[view.name].to(device)

    def mae_loss_view(self, view: View, var_embeds: dict[str, Tensor] | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
        """MAE loss of one modality view."""
        k = view.kernel
        grid = (view.x.shape[-2] // k, view.x.shape[-1] // k)
        latent, mask, ids_restore, band_embed = self.encoder.forward_encoder(
            view.x, view.meta, view.wavelengths, view.bandwidths, self._lang(view, var_embeds, view.x.device),
            view.input_mode, k, mask_ratio=self.mask_ratio, generator=generator)
        latent = self.norm(latent)
        pred = self.forward_decoder(latent, ids_restore, view.meta, grid, band_embed, view.input_mode, k)
        return mae_loss(pred, patchify(view.x, k), mask, self.norm_pix_loss, self.loss_pairing)

    def pooled_student(self, x: Tensor, meta: Tensor, wavelengths: list[float] | None,
                       bandwidths: list[float] | None, kernel: int) -> Tensor:
        """Unmasked student pass (B, D): ``reference`` = un-normed mean over every token incl. CLS (the
        reference's ``forward_encoder`` skips its final norm at mask ratio 0, then ``AdaptiveAvgPool1d`` over
        all tokens); ``normed-patch`` = mean of the final-normed patch tokens."""
        latent = self.encoder.forward_encoder(x, meta, wavelengths, bandwidths, None, "spectral", kernel,
                                              mask_ratio=0.0)[0]
        if self.student_feature == "reference":
            return latent.mean(dim=1)
        return self.norm(latent)[:, 1:].mean(dim=1)

    def distill_losses(self, batch: dict[str, Tensor], views: dict[str, View]) -> dict[str, Tensor]:
        """Weighted ``1 − cos`` per teacher on the full (unsubset) S2 / S1 of the batch."""
        out: dict[str, Tensor] = {}
        for t in self._teachers:
            if t.name == "softcon_s1":
                x, src = batch["s1"], views["s1"]
                wl, bw = S1_WAVELENGTHS, S1_BANDWIDTHS
            elif t.name == "softcon_s2":
                x, src = batch["s2"], views["s2"]
                wl, bw = S2_WAVELENGTHS, S2_BANDWIDTHS
            else:  # dinov2 and any RGB teacher
                x, src = batch["s2"][:, list(S2_RGB)], views["s2"]
                wl = [S2_WAVELENGTHS[i] for i in S2_RGB]
                bw = [S2_BANDWIDTHS[i] for i in S2_RGB]
            student = getattr(self, _proj_name(t.name))(self.pooled_student(x, src.meta, wl, bw, src.kernel))
            t.module.to(x.device)
            with torch.no_grad():
                target = t.module(x.float()).float()
            cos = F.cosine_similarity(student.float(), target, dim=-1)
            out[f"distill_{t.name}"] = t.weight * (1 - cos).mean()
        return out

    def forward(self, views: Sequence[View], batch: dict[str, Tensor] | None = None,
                var_embeds: dict[str, Tensor] | None = None, generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """Losses: ``mae_<modality>``, ``mae`` (mean), ``distill_<teacher>`` and ``loss`` (total)."""
        losses: dict[str, Tensor] = {}
        for v in views:
            losses[f"mae_{v.name}"] = self.mae_loss_view(v, var_embeds, generator)
        mae = torch.stack([losses[f"mae_{v.name}"] for v in views]).mean()
        losses["mae"] = mae
        total = mae
        if self._teachers and batch is not None:
            dist = self.distill_losses(batch, {v.name: v for v in views})
            losses.update(dist)
            total = total + sum(dist.values())
        losses["loss"] = total
        return losses


def _proj_name(teacher: str) -> str:
    return "student_proj" if teacher == "dinov2" else f"student_proj_{teacher}"
