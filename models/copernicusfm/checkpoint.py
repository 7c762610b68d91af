"""Copernicus-FM checkpoints: the released weights spec and the one loading rule for every file.

Rules (docs/conventions.md, "Released weights"): loaded with ``weights_only=True`` through
:func:`copernicus_bench.weights.load_checkpoint`; the state dict is either the whole object or under
``model`` (also what our own pretraining loop saves: ``{"model": encoder state dict + pretraining keys,
...}``); every encoder parameter must be present; classification-head keys (``fc_norm.*``, ``head.*``) are
neither required nor used; pretraining-only keys (:data:`PRETRAINING_ONLY_PREFIXES`) are ignored; any other
missing or unexpected key, or a shape mismatch, fails naming the keys.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from copernicus_bench.errors import CbenchError
from copernicus_bench.weights import WeightsSpec, check_keys, load_checkpoint

#: torchgeo 0.8.1 ``CopernicusFM_Base_Weights.CopernicusFM_ViT`` (a pinned torchgeo re-host of the authors' file)
TORCHGEO_URL = ("https://huggingface.co/torchgeo/copernicus-fm/resolve/f395812cc990ba25a451dbb9c9e6d95c8482947e/"
                "CopernicusFM_ViT_base_varlang-085350e4.pth")

SPEC = WeightsSpec(
    model="Copernicus-FM ViT-B",
    filenames=("CopernicusFM_ViT_base_varlang-085350e4.pth", "CopernicusFM_ViT_base_varlang_e100.pth"),
    url=TORCHGEO_URL,
    note="torchgeo's pinned copy of the authors' CopernicusFM_ViT_base_varlang_e100.pth (wangyi111/Copernicus-FM)",
    size="≈560 MB",  # 557.8 MB of fp32 parameters in our ViT-B build (tests/test_first_hour.py pins it)
)

#: keys of a classification head: present in torchgeo-built state dicts, absent from the released files
HEAD_PREFIXES: tuple[str, ...] = ("fc_norm.", "head.")

#: parts that exist only during pretraining (reference ``models_mae_cfm.py`` and our pretraining loop):
#: the MAE encoder's final norm, the MAE decoder (its embed, mask token, pos-embed, blocks, norm, dynamic
#: prediction heads, decoder metadata fcs/tokens), the distillation projection and the teachers.
PRETRAINING_ONLY_PREFIXES: tuple[str, ...] = (
    "norm.",
    "decoder_",  # decoder_embed, decoder_pos_embed, decoder_blocks, decoder_norm, decoder_pred_{spectral,variable}
    "mask_token",
    "coord_fc_decoder.", "scale_fc_decoder.", "time_fc_decoder.",
    "coord_token_dec", "scale_token_dec", "time_token_dec",
    "student_proj",  # student_proj, student_proj_softcon, ...
    "teacher",  # teacher.*, teacher_softcon.*, ...
)

#: non-tensor globals a released file may hold beside the weights (MAE-style ``args``)
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


def extract_state_dict(obj: dict) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: raw, or under ``model``; strips a DDP ``module.`` prefix."""
    sd = obj.get("model", obj) if isinstance(obj.get("model"), dict) else obj
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def filter_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop head and pretraining-only keys; returns (encoder keys, dropped keys)."""
    skip = HEAD_PREFIXES + PRETRAINING_ONLY_PREFIXES
    kept = {k: v for k, v in sd.items() if not k.startswith(skip)}
    return kept, sorted(set(sd) - set(kept))


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str | os.PathLike = "<state dict>"
              ) -> list[str]:
    """Load an encoder state dict into ``model`` by the rules above; returns the ignored keys."""
    sd, ignored = filter_state_dict(extract_state_dict(state_dict))
    own = model.state_dict()
    bad_shape = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
                 if k in own and v.shape != own[k].shape]
    if bad_shape:
        raise CbenchError(f"checkpoint {where} does not match the model: wrong shapes for {bad_shape[:4]}"
                          f"{' (+more)' if len(bad_shape) > 4 else ''}; use a checkpoint of the same configuration")
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    check_keys(where, missing, unexpected)
    model.load_state_dict(sd, strict=True)
    return ignored


def load_checkpoint_file(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a Copernicus-FM checkpoint file (released, user or our pretraining output) into ``model``."""
    obj = load_checkpoint(Path(path), safe_globals=SAFE_GLOBALS)
    return load_into(model, obj, path)
