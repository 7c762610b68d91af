"""The ``copernicus-fm`` benchmark adapter (entry point ``copernicus_bench.models``).

All 15 Copernicus-Bench tasks apply (docs/tasks.md): spectral mode with the card's band
wavelengths/bandwidths (nm) and ``card.kernel_size`` (16 for S1/S2, 8 for S3); variable mode for
``card.input_mode == "variable"`` with the band's ``variable`` key (``s5p_no2``, ``s5p_o3``) looked up in the
released variable-embedding file, kernel ``card.kernel_size`` (4). Input pipeline: the card's mean/std and
resolution (:func:`copernicus_bench.encoder.default_pipeline`). Pooled = mean of the last block's patch
tokens; maps = blocks 3, 5, 7, 11 (the reference's segmentation wrapper). Head ``ln-bn-linear``.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from copernicus_bench.encoder import (
    EncoderAdapter,
    EncoderOutput,
    InputPipeline,
    TaskEncoder,
    Tier,
    WeightsInfo,
    default_pipeline,
    random_init_token,
    state_dict_sha256,
)
from copernicus_bench.errors import CbenchError
from copernicus_bench.paths import weights_dir as default_weights_dir
from copernicus_bench.weights import ensure_weights, file_sha256, find_weights, weights_info

from . import varembed
from .checkpoint import SPEC, load_checkpoint_file
from .model import CONFIGS, DEFAULT_INDICES, CopernicusFMViT, MetaNanMode, build_model

if TYPE_CHECKING:
    from copernicus_bench.cards import TaskCard

NAME = "copernicus-fm"

# One loaded model per (weights source, config) per process: the runner builds one encoder per task and the
# ViT-B checkpoint is ~560 MB. Two entries keep memory bounded when seeds alternate for random-init runs.
_MODEL_CACHE: OrderedDict[tuple, tuple[CopernicusFMViT, WeightsInfo]] = OrderedDict()
_CACHE_SIZE = 2


def _cached(key: tuple, make) -> tuple[CopernicusFMViT, WeightsInfo]:
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    value = make()
    _MODEL_CACHE[key] = value
    while len(_MODEL_CACHE) > _CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget loaded models (tests)."""
    _MODEL_CACHE.clear()


def _freeze(model: CopernicusFMViT) -> CopernicusFMViT:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class CopernicusFMTaskEncoder(TaskEncoder):
    """The frozen Copernicus-FM encoder configured for one task (band descriptions, kernel, embedding)."""

    def __init__(self, model: CopernicusFMViT, weights: WeightsInfo, input_mode: str, kernel_size: int,
                 wavelengths: list[float] | None, bandwidths: list[float] | None, language_embed: Tensor | None,
                 meta_nan_mode: MetaNanMode, indices: tuple[int, ...] = DEFAULT_INDICES) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.embed_dim = model.embed_dim
        self.input_mode = input_mode
        self.kernel_size = kernel_size
        self.meta_nan_mode: MetaNanMode = meta_nan_mode
        self.indices = indices
        self.register_buffer("wavelengths", torch.tensor(wavelengths or [], dtype=torch.float32), persistent=False)
        self.register_buffer("bandwidths", torch.tensor(bandwidths or [], dtype=torch.float32), persistent=False)
        self.register_buffer("language_embed", language_embed, persistent=False)

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:
        """``x`` (B,C,R,R) from the pipeline; ``meta`` (B,4) = [lon, lat, days, area], NaN = unknown."""
        kwargs = dict(wavelengths=self.wavelengths if self.input_mode == "spectral" else None,
                      bandwidths=self.bandwidths if self.input_mode == "spectral" else None,
                      language_embed=self.language_embed, input_mode=self.input_mode,
                      kernel_size=self.kernel_size, meta_nan_mode=self.meta_nan_mode)
        x = x.to(self.model.cls_token.dtype)
        if want_maps:
            pooled, maps = self.model.forward_intermediates(x, meta, indices=self.indices, return_pooled=True,
                                                            **kwargs)
            return EncoderOutput(pooled=pooled, maps=maps)
        return EncoderOutput(pooled=self.model.forward_features(x, meta, **kwargs))


class CopernicusFMAdapter(EncoderAdapter):
    """Copernicus-FM ViT-B on all 15 tasks, released weights (or a checkpoint / random-init)."""

    name = NAME
    description = "Copernicus-FM ViT-B (Wang et al. 2025): spectral + variable hypernetworks, metadata encodings"
    head = "ln-bn-linear"

    def model_card(self):
        from copernicus_bench.model_card import ModelCard

        return ModelCard(
            name="copernicus-fm", architecture="ViT-B/16 with spectral and variable (language-embedding) "
                                               "hypernetworks, metadata encodings, FlexiViT patch sizes",
            parameters="ViT-B backbone + hypernetworks (the cost columns count each built encoder)",
            code_license="Apache-2.0 (zhu-xlab/Copernicus-FM, parts MIT / CC-BY-NC-4.0)",
            weights_license="CC-BY-4.0 (zhu-xlab/Copernicus-FM README)",
            pretraining_data="Copernicus-Pretrain: 18.7M aligned images on ~310K 0.25° grids extending SSL4EO-S12 "
                             "to all major Sentinel missions",
            pretraining_sensors=("Sentinel-1 GRD", "Sentinel-2 L1C", "Sentinel-2 L2A", "Sentinel-3 OLCI",
                                 "Sentinel-5P CO/NO2/O3/SO2", "Copernicus DEM"),
            citation="Wang et al., Towards a Unified Copernicus Foundation Model for Earth Vision, ICCV 2025 "
                     "(arXiv:2503.11849)",
            release="CopernicusFM_ViT_base_varlang-085350e4.pth (torchgeo, pinned) + var_embed_llama3.2_1B.pt",
            overlap="possible", overlap_note="Copernicus-Pretrain densely covers the land surface with every "
                                             "benchmark mission (S1/S2/S3/S5P); not checked image by image",
            url="https://github.com/zhu-xlab/Copernicus-FM")

    def __init__(self, weights_dir: str | os.PathLike | None = None, seed: int = 0, config: str = "base",
                 random_init: bool = False, meta_nan_mode: MetaNanMode = "sample",
                 checkpoint: str | os.PathLike | None = None, var_embed: str | os.PathLike | None = None,
                 download: bool = True) -> None:
        if config not in CONFIGS:
            raise CbenchError(f"copernicus-fm: config '{config}' is unknown; use one of {sorted(CONFIGS)} "
                              "(fix --model-args)")
        if meta_nan_mode not in ("sample", "batch"):
            raise CbenchError(f"copernicus-fm: meta_nan_mode '{meta_nan_mode}' is unknown; use 'sample' "
                              "(default) or 'batch' (the reference's batch-global handling; fix --model-args)")
        if random_init and checkpoint is not None:
            raise CbenchError("copernicus-fm: random_init and checkpoint exclude each other (fix --model-args)")
        self.weights_dir = default_weights_dir(weights_dir)
        self.seed = int(seed)
        self.config = config
        self.random_init = bool(random_init)
        self.meta_nan_mode: MetaNanMode = meta_nan_mode
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.var_embed = Path(var_embed) if var_embed is not None else None
        self.download = download

    # ------------------------------------------------------------------ contract
    def applicability(self, card: TaskCard) -> str | None:
        if card.input_mode == "variable" and any(b.variable is None for b in card.bands):
            return "variable-mode card without variable keys"
        if card.input_mode == "spectral" and any(b.wavelength_nm is None or b.bandwidth_nm is None
                                                 for b in card.bands):
            return "spectral card without wavelengths/bandwidths"
        return None

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        """The card's mean/std and resolution; for variable-mode cards the embedding's provenance is listed
        in ``adaptations`` (so it reaches ``input_adaptation`` and the cache key)."""
        base = default_pipeline(card, tier)
        if card.input_mode != "variable":
            return base
        notes = []
        if self.random_init:
            for b in card.bands:
                notes.append(f"variable embedding '{b.variable}': random N(0,1) stand-in drawn from the run's seed "
                             f"(random-init run; the released {varembed.FILENAME} is not used)")
        else:
            emb = self._embeddings()
            random_file = varembed.is_random_stand_in(emb.path)
            for b in card.bands:
                notes.append(f"variable embedding '{b.variable}' = '{emb.resolve(b.variable)}' from "
                             f"{Path(emb.path).name} sha256 {emb.sha256}"
                             + (" (RANDOM stand-in written by cbench pretrain, not the released Llama "
                                "embeddings)" if random_file else ""))
        return InputPipeline(**{**_fields(base), "adaptations": base.adaptations + tuple(notes)})

    def build(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> TaskEncoder:
        if any(i is None for i in pipeline.slots):
            raise CbenchError(f"copernicus-fm: pipeline for {card.slug} has zero slots; the model takes any "
                              "band set, describe real bands only")
        bands = [card.bands[i] for i in pipeline.slots]  # type: ignore[index]
        model, info = self._model(seed)
        wavelengths = bandwidths = language = None
        if card.input_mode == "spectral":
            wavelengths = [float(b.wavelength_nm) for b in bands]  # type: ignore[arg-type]
            bandwidths = [float(b.bandwidth_nm) for b in bands]  # type: ignore[arg-type]
        else:
            keys = [str(b.variable) for b in bands]
            if self.random_init:
                language = torch.stack([varembed.random_embedding(k, seed) for k in keys])
            else:
                emb = self._embeddings()
                language = torch.stack([emb[k] for k in keys])
        return CopernicusFMTaskEncoder(model, info, card.input_mode, card.kernel_size, wavelengths, bandwidths,
                                       language, self.meta_nan_mode)

    def identity_token(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> str | None:
        """The seed for random weights; else the checkpoint's sha256 (and, for variable tasks, the
        variable-embedding file's); None when a file is absent (the build downloads it or names it)."""
        if self.random_init:
            return random_init_token(seed, self.config)
        ckpt = self.checkpoint if self.checkpoint is not None else find_weights(SPEC, self.weights_dir)
        if ckpt is None or not Path(ckpt).is_file():
            return None
        token = f"file:{file_sha256(ckpt)}"
        if card.input_mode != "spectral":
            emb = self.var_embed if self.var_embed is not None else find_weights(varembed.SPEC, self.weights_dir)
            if emb is None or not Path(emb).is_file():
                return None
            token += f"+{file_sha256(emb)}"
        return token

    def weights_status(self) -> str:
        if self.random_init:
            return "random-init (drawn from the seed)"
        if self.checkpoint is not None:
            ckpt = f"checkpoint {self.checkpoint}" + ("" if self.checkpoint.is_file() else " (missing)")
        else:
            found = find_weights(SPEC, self.weights_dir)
            ckpt = f"present: {found.name}" if found else f"missing: {SPEC.primary} (downloaded on first use)"
        if self.var_embed is not None:
            emb = f"embeddings {self.var_embed}"
        else:
            emb = ("embeddings present" if find_weights(varembed.SPEC, self.weights_dir)
                   else f"embeddings missing: {varembed.FILENAME}")
        return f"{ckpt}; {emb}"

    def options(self) -> dict:
        opts: dict = {"config": self.config, "meta_nan_mode": self.meta_nan_mode}
        if self.random_init:
            opts["random_init"] = True
        return opts

    # ------------------------------------------------------------------ internals
    def weight_files(self) -> tuple:
        """The released checkpoint and variable-embedding file (``cbench weights download`` fetches both)."""
        return (SPEC, varembed.SPEC)

    def _embeddings(self) -> varembed.VariableEmbeddings:
        others = (SPEC,) if self.checkpoint is None else ()
        return varembed.load_embeddings(self.weights_dir, self.var_embed, download=self.download, others=others)

    def _model(self, seed: int) -> tuple[CopernicusFMViT, WeightsInfo]:
        if self.random_init:
            def make_random() -> tuple[CopernicusFMViT, WeightsInfo]:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = build_model(self.config)
                return _freeze(model), WeightsInfo("random-init", state_dict_sha256(model))

            return _cached(("random", self.config, int(seed)), make_random)
        others = (varembed.SPEC,) if self.var_embed is None else ()
        path = self.checkpoint if self.checkpoint is not None else ensure_weights(
            SPEC, self.weights_dir, download=self.download, model=NAME, others=others)
        if not Path(path).is_file():
            raise CbenchError(f"copernicus-fm: checkpoint '{path}' does not exist; fix --model-args checkpoint=")
        st = Path(path).stat()

        def make_loaded() -> tuple[CopernicusFMViT, WeightsInfo]:
            info = weights_info(path, SPEC)
            model = build_model(self.config)
            ignored = load_checkpoint_file(model, path)
            if ignored:
                print(f"copernicus-fm: ignored {len(ignored)} pretraining/head keys in {Path(path).name}",
                      file=sys.stderr)
            return _freeze(model), info

        return _cached((str(Path(path).resolve()), st.st_mtime, st.st_size, self.config), make_loaded)


def _fields(p: InputPipeline) -> dict:
    import dataclasses

    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


def build_adapter(weights_dir: str | os.PathLike | None = None, seed: int = 0, config: str = "base",
                  random_init: bool = False, meta_nan_mode: MetaNanMode = "sample",
                  checkpoint: str | os.PathLike | None = None, var_embed: str | os.PathLike | None = None,
                  download: bool = True) -> CopernicusFMAdapter:
    """Entry point ``copernicus-fm``.

    Args:
        weights_dir: weights folder (default ``$CBENCH_WEIGHTS_DIR`` or the user cache); the released
            checkpoint and ``var_embed_llama3.2_1B.pt`` are looked up (and downloaded once) there.
        seed: default seed (``build`` receives the run's seed, which draws random-init weights).
        config: ``base`` (released) or ``tiny`` (tests).
        random_init: weights (and variable embeddings, labelled) drawn from the seed instead of a checkpoint.
        meta_nan_mode: ``sample`` (default: a NaN affects only its sample) or ``batch`` (the reference).
        checkpoint: a user checkpoint (e.g. our pretraining output) instead of the released file.
        var_embed: path of a variable-embedding file instead of the weights-folder copy.
        download: allow downloading missing files.
    """
    return CopernicusFMAdapter(weights_dir=weights_dir, seed=seed, config=config, random_init=random_init,
                               meta_nan_mode=meta_nan_mode, checkpoint=checkpoint, var_embed=var_embed,
                               download=download)
