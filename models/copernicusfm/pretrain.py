"""Copernicus-FM pretraining loop (Lightning): MAE over 8 modalities + continual distillation.

Optimisation as the paper / released code (docs/models.md): AdamW(β 0.9, 0.95), weight decay 0.05 except norms
and biases (every parameter with ndim ≤ 1), lr = base_lr (1.5e-4) × effective batch / 256, linear warmup then
cosine to 0, stepped per optimizer step. bf16 autocast on GPU, fp32 on CPU. Checkpoints every
``save_every`` steps plus ``last.ckpt`` at the end; a run resumes from ``--resume`` or automatically from
``<out>/checkpoints/last.ckpt`` and continues from the saved global step.

At the end the encoder is exported for the benchmark as ``<out>/weights/CopernicusFM_ViT_base_varlang_e100.pth``
= ``{"model": encoder + pretraining-only keys, "cbench": {config, step, teachers, random_var_embeddings, ...}}``
next to the variable-embedding file the run used (``var_embed_llama3.2_1B.pt``: a copy of the real file, or
the random stand-in, labelled in the checkpoint and by ``var_embed_llama3.2_1B.RANDOM.txt``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ...errors import CbenchError
from .mae import DECODER_CONFIGS, CopernicusFMMAE, Teacher, load_teachers
from .model import build_model
from .pretrain_data import MODALITIES, View, make_loader, scaled_modalities, step_views, with_oa21

log = logging.getLogger(__name__)

EXPORT_NAME = "CopernicusFM_ViT_base_varlang_e100.pth"
VAR_EMBED_NAME = "var_embed_llama3.2_1B.pt"
RANDOM_LABEL = "var_embed_llama3.2_1B.RANDOM.txt"
VARIABLE_KEYS = tuple(m.name for m in MODALITIES if m.input_mode == "variable")


@dataclass
class PretrainConfig:
    """Everything a run needs (saved as Lightning hyper-parameters)."""

    config: str = "base"
    max_steps: int = 1000
    batch_size: int = 8
    base_lr: float = 1.5e-4
    lr: float | None = None  # absolute lr; default base_lr × effective batch / 256
    min_lr: float = 0.0
    warmup_steps: int | None = None  # default 5 % of max_steps
    weight_decay: float = 0.05
    mask_ratio: float = 0.7
    meta_drop: float = 0.7  # the paper's figure; the reference's --drop_prob defaults to 0 (README: M6)
    channel_subset_low: float = 0.75
    # reference-parity choices (README "Facts and deviations", M1/M4/M8/M10/M11); defaults in brackets
    loss_pairing: str = "consistent"  # [ours, self-consistent] | "reference" (target flattened (i,j,c))
    student_feature: str = "reference"  # [un-normed mean of all tokens, as the reference] | "normed-patch"
    area_mode: str = "fixed"  # [(kernel·GSD)², the reference's default] | "crop" (× crop area fraction)
    s3_band_fix: str = "auto"  # [Oa01/Oa10 ×1e-9 where stored ~1e9 too large] | "reference" (always) | "off"
    oa21_nm: float = 1020.0  # [ESA, the benchmark cards] | 1029 (the reference's pretraining table)
    norm_pix_loss: bool = True
    size_scale: float = 1.0  # < 1 only for CPU tests / quick checks
    seed: int = 0
    teacher_weights: dict[str, float] = field(default_factory=lambda: {"dinov2": 0.1, "softcon_s2": 0.2,
                                                                      "softcon_s1": 0.2})
    world_size: int = 1


def effective_lr(cfg: PretrainConfig) -> float:
    return cfg.lr if cfg.lr is not None else cfg.base_lr * cfg.batch_size * cfg.world_size / 256


def lr_factor(step: int, max_steps: int, warmup: int, lr: float, min_lr: float) -> float:
    """Multiplier of ``lr`` at ``step``: linear warmup, then half-cosine to ``min_lr``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / lr


def param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay for weight matrices/tokens; no decay for norms and biases (ndim ≤ 1), as MAE's optim factory."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class CopernicusFMPretrainModule(L.LightningModule):
    """Lightning wrapper: per-step views (channel subsets, metadata dropout), MAE + distillation losses."""

    def __init__(self, cfg: PretrainConfig | dict, teachers: list[Teacher] | None = None,
                 var_embeds: dict[str, Tensor] | None = None, run_info: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = PretrainConfig(**cfg) if isinstance(cfg, dict) else cfg
        self.cfg = cfg
        self.save_hyperparameters({"cfg": asdict(cfg)})
        self.modalities = with_oa21(scaled_modalities(cfg.size_scale), cfg.oa21_nm)
        encoder = build_model(cfg.config)
        self.mae = CopernicusFMMAE(encoder, mask_ratio=cfg.mask_ratio, norm_pix_loss=cfg.norm_pix_loss,
                                   teachers=teachers or [], loss_pairing=cfg.loss_pairing,
                                   student_feature=cfg.student_feature, **DECODER_CONFIGS[cfg.config])
        table = var_embeds or {}
        missing = [k for k in VARIABLE_KEYS if k not in table]
        if missing:
            raise CbenchError(f"variable embeddings: no entry for {missing}; pass the released {VAR_EMBED_NAME}")
        # persistent buffer so a resumed run uses exactly the same (possibly random) embeddings
        self.register_buffer("var_embed_table", torch.stack([table[k].float() for k in VARIABLE_KEYS]))
        self.run_info = dict(run_info or {})

    # ------------------------------------------------------------------ steps
    def var_embeds(self) -> dict[str, Tensor]:
        return dict(zip(VARIABLE_KEYS, self.var_embed_table))

    def views(self, batch: dict[str, Tensor]) -> list[View]:
        rank = self.global_rank if self._trainer is not None else 0
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.global_step * 7919 + rank)
        return step_views(batch, self.modalities, gen, self.cfg.meta_drop, self.cfg.channel_subset_low)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.mae(self.views(batch), batch, self.var_embeds())
        bs = next(iter(batch.values())).shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=bs, prog_bar=False,
                      on_step=True, on_epoch=False)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=bs)
        return losses["loss"]

    def configure_optimizers(self):
        cfg = self.cfg
        lr = effective_lr(cfg)
        opt = torch.optim.AdamW(param_groups(self.mae, cfg.weight_decay), lr=lr, betas=(0.9, 0.95))
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.max_steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, cfg.max_steps, warmup, lr, cfg.min_lr))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["cbench"] = {**self.run_info, "step": int(self.global_step)}


# ---------------------------------------------------------------------------------------------- setup
def resolve_var_embeds(weights_dir: Path, path: str | None, seed: int) -> tuple[dict[str, Tensor], dict]:
    """The released variable embeddings when present (no download), else LOUDLY labelled random ones."""
    from .varembed import FILENAME, random_embedding, read_embeddings

    candidate = Path(path) if path else weights_dir / FILENAME
    if candidate.is_file():
        emb = read_embeddings(candidate)
        label = candidate.parent / RANDOM_LABEL  # a stand-in exported by an earlier run stays labelled
        info = {"random": label.is_file(), "path": str(candidate), "sha256": emb.sha256}
        if label.is_file():
            print(f"WARNING: {candidate} is labelled RANDOM by {label.name}; this run stays labelled "
                  "random_var_embeddings=true.", file=sys.stderr)
        return {k: emb[k] for k in VARIABLE_KEYS}, info
    if path:
        raise CbenchError(f"--var-embed {path}: file does not exist; pass the released {FILENAME}")
    msg = (f"WARNING: {FILENAME} not found in {weights_dir}: using RANDOM variable embeddings (seed {seed}) for "
           "S5P/DEM. The checkpoint is labelled random_var_embeddings=true; such weights are NOT comparable to "
           "the released model.")
    print(msg, file=sys.stderr)
    return ({k: random_embedding(k, seed) for k in VARIABLE_KEYS},
            {"random": True, "path": None, "sha256": None, "seed": seed})


def latest_checkpoint(out: Path) -> Path | None:
    last = out / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    ckpts = sorted((out / "checkpoints").glob("step-*.ckpt"))
    return ckpts[-1] if ckpts else None


def init_from(module: CopernicusFMPretrainModule, path: str) -> list[str]:
    """Initialise the encoder from a Copernicus-FM checkpoint (colleague's loader rules); also load any
    matching decoder / projection keys (our own exports). Returns the ignored keys."""
    from copernicus_bench.weights import load_checkpoint

    from .checkpoint import SAFE_GLOBALS, extract_state_dict, load_into

    obj = load_checkpoint(path, safe_globals=SAFE_GLOBALS)
    ignored = load_into(module.mae.encoder, obj, path)
    sd = extract_state_dict(obj)
    own = module.mae.state_dict()
    extra = {k: v for k, v in sd.items() if k in ignored and k in own and own[k].shape == v.shape}
    module.mae.load_state_dict(extra, strict=False)
    return sorted(set(ignored) - set(extra))


def build_trainer(out: Path, cfg: PretrainConfig, save_every: int, devices: str | int = "auto",
                  strategy: str = "auto", num_nodes: int = 1, accelerator: str = "auto",
                  log_every: int = 10) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    accel = accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    precision = "bf16-mixed" if accel in ("gpu", "cuda") else "32-true"
    strat: Any = strategy
    if strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        strat = DDPStrategy(find_unused_parameters=True)  # metadata tokens are unused when metadata is present
    elif strategy == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy
        from timm.models.vision_transformer import Block

        strat = FSDPStrategy(auto_wrap_policy={Block}, use_orig_params=True)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="step-{step:08d}", every_n_train_steps=save_every,
                           save_top_k=-1, save_last=True, auto_insert_metric_name=False)
    return L.Trainer(max_steps=cfg.max_steps, accelerator=accel, devices=devices, strategy=strat,
                     num_nodes=num_nodes, precision=precision, callbacks=[ckpt], default_root_dir=str(out),
                     logger=CSVLogger(str(out), name="logs"), log_every_n_steps=log_every,
                     limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
                     enable_model_summary=False, use_distributed_sampler=False)


def export_weights(ckpt_path: Path, out: Path, var_info: dict, var_embeds: dict[str, Tensor]) -> Path:
    """Write ``<out>/weights/<EXPORT_NAME>`` and the variable-embedding file from a Lightning checkpoint."""
    from .varembed import ALIASES

    obj = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model: dict[str, Tensor] = {}
    for k, v in obj["state_dict"].items():
        if not k.startswith("mae."):
            continue
        k = k[len("mae."):]
        model[k[len("encoder."):] if k.startswith("encoder.") else k] = v.clone()
    info = dict(obj.get("cbench", {}))
    info["step"] = int(obj.get("global_step", info.get("step", 0)))
    wdir = out / "weights"
    wdir.mkdir(parents=True, exist_ok=True)
    target = wdir / EXPORT_NAME
    tmp = target.with_suffix(".pth.part")
    torch.save({"model": model, "cbench": info}, tmp)
    os.replace(tmp, target)
    emb_target = wdir / VAR_EMBED_NAME
    label = wdir / RANDOM_LABEL
    if var_info.get("path"):
        if Path(var_info["path"]).resolve() != emb_target.resolve():
            shutil.copyfile(var_info["path"], emb_target)
    else:
        torch.save({ALIASES[k]: v.clone() for k, v in var_embeds.items()}, emb_target)
    if var_info.get("random"):
        label.write_text("RANDOM variable embeddings (not the released Llama-3.2-1B ones); drawn by "
                         "copernicus_bench.models.copernicusfm.varembed.random_embedding (seed "
                         f"{var_info.get('seed', 'of an earlier run')}). Weights trained with them are not "
                         "comparable to the release.\n")
    else:
        label.unlink(missing_ok=True)
    return target


def run_pretraining(shards: str, out: str | os.PathLike, cfg: PretrainConfig, *, save_every: int = 500,
                    resume: str | None = None, init: str | None = None, weights_dir: str | None = None,
                    var_embed: str | None = None, devices: str | int = "auto", strategy: str = "auto",
                    num_nodes: int = 1, num_workers: int = 2, accelerator: str = "auto",
                    teachers: list[Teacher] | None = None, log_every: int = 10) -> dict[str, Any]:
    """Train (or resume) and export; returns a summary dict (also written to ``<out>/pretrain_summary.json``)."""
    from copernicus_bench.paths import weights_dir as default_weights_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.config not in DECODER_CONFIGS:
        raise CbenchError(f"--config {cfg.config}: unknown; choose one of {sorted(DECODER_CONFIGS)}")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    wdir = default_weights_dir(weights_dir)
    var_embeds, var_info = resolve_var_embeds(wdir, var_embed, cfg.seed)
    if teachers is None:
        teachers, teacher_status = load_teachers(wdir, cfg.teacher_weights)
    else:
        teacher_status = {t.name: f"on ({t.source})" for t in teachers}
    for name, status in teacher_status.items():
        print(f"cbench pretrain: teacher {name}: {status}", file=sys.stderr)
    run_info = {"config": cfg.config, "teachers": [t.name for t in teachers], "teacher_status": teacher_status,
                "teacher_weights": {t.name: t.weight for t in teachers},
                "random_var_embeddings": bool(var_info["random"]), "var_embed_sha256": var_info.get("sha256"),
                "init": init, "mask_ratio": cfg.mask_ratio, "meta_drop": cfg.meta_drop,
                "size_scale": cfg.size_scale, "loss_pairing": cfg.loss_pairing,
                "student_feature": cfg.student_feature, "area_mode": cfg.area_mode,
                "s3_band_fix": cfg.s3_band_fix, "oa21_nm": cfg.oa21_nm}

    trainer = build_trainer(out, cfg, save_every, devices, strategy, num_nodes, accelerator, log_every)
    cfg.world_size = trainer.world_size
    module = CopernicusFMPretrainModule(cfg, teachers, var_embeds, run_info)
    ckpt_path = Path(resume) if resume else latest_checkpoint(out)
    if resume and not ckpt_path.is_file():
        raise CbenchError(f"--resume {resume}: no such checkpoint; pass a .ckpt from <out>/checkpoints")
    if init and ckpt_path is None:
        ignored = init_from(module, init)
        print(f"cbench pretrain: initialised from {init} ({len(ignored)} keys ignored)", file=sys.stderr)
    if ckpt_path is not None:
        print(f"cbench pretrain: resuming from {ckpt_path}", file=sys.stderr)
    loader = make_loader(shards, cfg.batch_size, module.modalities, seed=cfg.seed, num_workers=num_workers,
                         transform={"area_mode": cfg.area_mode, "s3_band_fix": cfg.s3_band_fix})
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)

    last = out / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(str(last))
    summary: dict[str, Any] = {"step": int(trainer.global_step), "checkpoint": str(last), **run_info}
    if trainer.is_global_zero:
        summary["weights"] = str(export_weights(last, out, var_info, var_embeds))
        (out / "pretrain_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
