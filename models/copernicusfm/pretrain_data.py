"""Copernicus-Pretrain shards → pretraining batches (Copernicus-FM, arXiv 2503.11849 §4; shared §7/§9).

Pipeline per sample (as the released ``main_pretrain.py`` describes it): keep grids with all 8 modalities,
pick one random local S1/S2 patch and one random date per modality (torchgeo's ``CopernicusPretrain`` does
exactly that, we reuse its mapping functions), then per modality, in the reference's order
(``main_pretrain.py``): RandomResizedCrop(scale 0.2–1) to the modality's size, random horizontal flip,
normalise (pretraining stats: S2 L1C and S1 mean/std, OLCI scale factors, S5P raw, DEM / 10000), NaN/±inf → 0
(so a missing pixel is the band mean, never a far-off value), and build metadata
``[lon, lat, days since 1970, patch-token area km²]`` from the json ids. DEM has no date: 2015-01-01, as the
reference. The patch area is the reference's default (``scale_option=rawarea``): fixed ``(kernel × GSD)²``
(S1/S2 0.0256, S3 5.76, S5P 16, DEM 3.6864 km²); ``area_mode="crop"`` scales it by the crop's area fraction
(the reference's ``augarea``, without its centre shift). S3 Oa01/Oa10: see :func:`fix_s3_bands`.

Per *step* (batch-level, in :func:`step_views`): random 75–100 % channel subsets for S2 and S3, and each
metadata group (location, time, area) dropped with probability ``meta_drop`` (set to NaN for the whole batch,
because Copernicus-FM's missing-metadata test is batch-global).
"""

from __future__ import annotations

import glob
import math
import os
import random
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...errors import CbenchError
from ...tasks import get_card

# ---------------------------------------------------------------------------------------------------------
# Facts (docs/models.md "Pretraining" and "Copernicus-Pretrain shards"; docs/tasks.md).
# Band wavelengths/widths and the OLCI scale factors are the task cards' (one source; the pretraining S1/S2/S3
# products are the same sensors and band sets as Cloud-S2, EuroSAT-S1 and Cloud-S3).
_S1, _S2, _S3 = (get_card(slug) for slug in ("eurosat-s1", "cloud-s2", "cloud-s3"))
S2_WAVELENGTHS = list(_S2.wavelengths_nm)
S2_BANDWIDTHS = list(_S2.bandwidths_nm)
S2_PRETRAIN_MEAN = [1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0, 2195.2,
                    1537.4]
S2_PRETRAIN_STD = [791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5, 1340.0,
                   1142.9]
S2_RGB = (3, 2, 1)  # B4, B3, B2 in the 13-band order B01..B08, B8A, B09..B12
S1_WAVELENGTHS = list(_S1.wavelengths_nm)
S1_BANDWIDTHS = list(_S1.bandwidths_nm)
S1_PRETRAIN_MEAN = [-12.59, -20.26]
S1_PRETRAIN_STD = [5.26, 5.91]
S3_WAVELENGTHS = list(_S3.wavelengths_nm)
S3_BANDWIDTHS = list(_S3.bandwidths_nm)
OLCI_SCALE = list(_S3.normalization.scale_factors or ())
DEM_SCALE = 1.0 / 10000.0
# The reference pretraining wavelength of Oa21 (``engine_pretrain.py`` WV); ESA and the benchmark cards say 1020.
REFERENCE_OA21_NM = 1029.0
# DEM time metadata: the reference fixes it at 2015-01-01 (``reorganize_meta``, time_option=absolute).
DEM_DAYS = float((date(2015, 1, 1) - date(1970, 1, 1)).days)
# S3 bands the reference multiplies by 1e-9 before the OLCI scale factors (``sample_one_time_stamp``).
S3_RESCALED_BANDS = (0, 9)  # Oa01, Oa10
S3_RESCALE = 1e-9
S3_RESCALE_ABOVE = 1e6  # |median| above this cannot be a 16-bit OLCI count (≤ 65535) nor a radiance
S3_FIX_MODES = ("auto", "reference", "off")
AREA_MODES = ("fixed", "crop")


@dataclass(frozen=True)
class Modality:
    """One pretraining modality: shard member, model-facing size/kernel, normalisation, band spec."""

    name: str  # key used everywhere (and the variable-embedding key for variable inputs)
    member: str  # webdataset member suffix, e.g. ``s2_toa.pth``
    size: int
    kernel: int
    gsd_m: float  # ground sampling distance (m) of the model input, as the reference's GSD table
    input_mode: str = "spectral"
    wavelengths: tuple[float, ...] = ()
    bandwidths: tuple[float, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    subset_channels: bool = False
    has_patches: bool = False  # S1/S2 carry P local patches

    @property
    def json_key(self) -> str:
        return self.member.removesuffix(".pth")

    @property
    def patch_area_km2(self) -> float:
        """Area one token covers, ``(kernel × GSD)²`` in km² (the reference's ``AREA``)."""
        return (self.kernel * self.gsd_m / 1000.0) ** 2


MODALITIES: tuple[Modality, ...] = (
    Modality("s1", "s1_grd.pth", 224, 16, 10.0, wavelengths=tuple(S1_WAVELENGTHS),
             bandwidths=tuple(S1_BANDWIDTHS), mean=tuple(S1_PRETRAIN_MEAN), std=tuple(S1_PRETRAIN_STD),
             has_patches=True),
    Modality("s2", "s2_toa.pth", 224, 16, 10.0, wavelengths=tuple(S2_WAVELENGTHS),
             bandwidths=tuple(S2_BANDWIDTHS), mean=tuple(S2_PRETRAIN_MEAN), std=tuple(S2_PRETRAIN_STD),
             subset_channels=True, has_patches=True),
    Modality("s3", "s3_olci.pth", 96, 8, 300.0, wavelengths=tuple(S3_WAVELENGTHS), bandwidths=tuple(S3_BANDWIDTHS),
             scale=tuple(OLCI_SCALE), subset_channels=True),
    Modality("s5p_co", "s5p_co.pth", 28, 4, 1000.0, input_mode="variable"),
    Modality("s5p_no2", "s5p_no2.pth", 28, 4, 1000.0, input_mode="variable"),
    Modality("s5p_o3", "s5p_o3.pth", 28, 4, 1000.0, input_mode="variable"),
    Modality("s5p_so2", "s5p_so2.pth", 28, 4, 1000.0, input_mode="variable"),
    Modality("dem", "dem.pth", 960, 64, 30.0, input_mode="variable", scale=(DEM_SCALE,)),
)
MODALITY_BY_NAME = {m.name: m for m in MODALITIES}
REQUIRED_MEMBERS = tuple(m.member for m in MODALITIES) + ("json",)
META_GROUPS = {"location": (0, 1), "time": (2,), "area": (3,)}


def with_oa21(modalities: tuple[Modality, ...], oa21_nm: float) -> tuple[Modality, ...]:
    """The modalities with S3's Oa21 centred at ``oa21_nm`` (1020 = ESA / the cards; 1029 = the reference's
    pretraining table)."""
    out = []
    for m in modalities:
        if m.name == "s3" and m.wavelengths and m.wavelengths[-1] != oa21_nm:
            m = Modality(**{**m.__dict__, "wavelengths": (*m.wavelengths[:-1], float(oa21_nm))})
        out.append(m)
    return tuple(out)


def scaled_modalities(scale: float) -> tuple[Modality, ...]:
    """Modalities with sizes scaled by ``scale`` (rounded to a multiple of each kernel; ≥ 2 tokens a side).

    ``scale=1`` is the paper's sizes; smaller values are for CPU tests and throughput checks only.
    """
    if scale == 1.0:
        return MODALITIES
    out = []
    for m in MODALITIES:
        tokens = max(2, round(m.size * scale / m.kernel))
        out.append(Modality(**{**m.__dict__, "size": tokens * m.kernel}))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------
# Shard discovery and json ids.
def resolve_shards(spec: str | os.PathLike) -> list[str]:
    """A folder (all ``*.tar`` inside), a glob, a webdataset brace pattern, or a comma-separated list."""
    spec = str(spec)
    if os.path.isdir(spec):
        files = sorted(glob.glob(os.path.join(spec, "*.tar")))
    elif "{" in spec and ".." in spec:
        import braceexpand

        files = [f for f in braceexpand.braceexpand(spec)]
    elif "," in spec:
        files = [s for s in spec.split(",") if s]
    else:
        files = sorted(glob.glob(spec))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise CbenchError(f"--shards {spec}: no .tar shards found; pass a folder of example-*.tar shards "
                          "(e.g. from 'cbench pretrain-sample --out DIR')")
    return files


_LONLAT = re.compile(r"_(-?\d+(?:\.\d+)?)_(-?\d+(?:\.\d+)?)(?=$|/)")
_DATE = re.compile(r"(\d{8})")


def unwrap_id(ident: Any) -> str:
    """One id string from a json entry. The released shards hold each id as a one-element list (their writer,
    ``create_webdataset.py``, collated ids through a batch-1 DataLoader: after picking, ``{'s3_olci':
    ['0772176_-96.00_44.00/20210127'], 'dem': ['0772176_-96.00_44.00']}``, the reference reads ``meta[key][0]``);
    torchgeo's test fixture holds bare strings. Both are accepted."""
    while isinstance(ident, list | tuple) and len(ident) == 1:
        ident = ident[0]
    if not isinstance(ident, str):
        raise TypeError(f"id {ident!r} is not a string or a one-element list of one")
    return ident


def parse_id(sample_id: str | list) -> tuple[float, float, float]:
    """``[lon, lat, days since 1970]`` from a Copernicus-Pretrain id (NaN for what is not in it).

    Ids look like ``grid/patch_lon_lat/YYYYMMDD`` (S1/S2), ``grid_lon_lat/YYYYMMDD`` (S3/S5P), ``grid_lon_lat``
    (DEM); the last ``_lon_lat`` pair is the patch (or grid-cell) centre. A one-element list (the released
    json) is unwrapped.
    """
    sample_id = unwrap_id(sample_id)
    lon = lat = days = math.nan
    pairs = _LONLAT.findall(sample_id)
    if pairs:
        lon, lat = float(pairs[-1][0]), float(pairs[-1][1])
    tail = sample_id.rsplit("/", 1)[-1] if "/" in sample_id else ""
    m = _DATE.search(tail)
    if m:
        s = m.group(1)
        try:
            days = float((date(int(s[:4]), int(s[4:6]), int(s[6:])) - date(1970, 1, 1)).days)
        except ValueError:
            days = math.nan
    return lon, lat, days


# ---------------------------------------------------------------------------------------------------------
# Per-sample processing.
def normalise(x: torch.Tensor, mod: Modality) -> torch.Tensor:
    """Pretraining normalisation (docs/models.md): mean/std for S1/S2, scale factors for S3 and DEM, raw S5P; then
    NaN/±inf → 0 *after* normalising, as the reference's ``RemoveOutlier`` (a missing S1 pixel is the band
    mean, 0, not ``(0 − mean)/std`` = +2.39)."""
    x = x.float()
    if mod.mean is not None:
        mean = torch.tensor(mod.mean).view(-1, 1, 1)
        std = torch.tensor(mod.std).view(-1, 1, 1)
        x = (x - mean) / std
    if mod.scale is not None:
        x = x * torch.tensor(mod.scale).view(-1, 1, 1)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def fix_s3_bands(x: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """The reference's S3 Oa01/Oa10 ×1e-9 (``main_pretrain.py``, before the OLCI scale factors), on raw (21,H,W).

    ``reference`` always multiplies (the released model's pipeline); ``off`` never; ``auto`` (default) only a
    band whose finite |values| have a median above 1e6 — impossible for OLCI data in its native units (16-bit
    counts ≤ 65535, radiances < 10³), so shards holding those two bands ~1e9 too large (what the reference's
    fix implies about the released shards) get exactly the reference's treatment, and shards in native units
    (``cbench pretrain-sample``, torchgeo's fixture) keep Oa01/Oa10 instead of having them crushed to ~1e-5.
    """
    if mode not in S3_FIX_MODES:
        raise CbenchError(f"s3_band_fix {mode!r}: unknown; choose one of {', '.join(S3_FIX_MODES)}")
    if mode == "off":
        return x
    x = x.float().clone()
    for b in S3_RESCALED_BANDS:
        band = x[b]
        if mode == "auto":
            finite = band[torch.isfinite(band)].abs()
            if finite.numel() == 0 or float(finite.median()) <= S3_RESCALE_ABOVE:
                continue
        x[b] = band * S3_RESCALE
    return x


def random_resized_crop(x: torch.Tensor, size: int, rng: random.Random, scale=(0.2, 1.0),
                        ratio=(3 / 4, 4 / 3), hflip: bool = True) -> tuple[torch.Tensor, float]:
    """torchvision's RandomResizedCrop parameter draw + bilinear resize + random hflip on (C,H,W).

    Returns the output and the crop's side length relative to the input (sqrt of the crop area fraction),
    used to scale the patch-area metadata.
    """
    _, h, w = x.shape
    area = h * w
    top, left, ch, cw = 0, 0, h, w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw_ = int(round(math.sqrt(target * aspect)))
        ch_ = int(round(math.sqrt(target / aspect)))
        if 0 < cw_ <= w and 0 < ch_ <= h:
            top, left, ch, cw = rng.randint(0, h - ch_), rng.randint(0, w - cw_), ch_, cw_
            break
    crop = x[:, top:top + ch, left:left + cw]
    out = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    if hflip and rng.random() < 0.5:
        out = out.flip(-1)
    return out.contiguous(), math.sqrt((ch * cw) / (h * w))


def pick_one(sample: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One random local S1/S2 patch (same index for both, as torchgeo) and one random date per modality."""
    meta = sample["json"]
    out: dict[str, Any] = {"__key__": sample.get("__key__", ""), "json": {}}
    p_idx = None
    for mod in MODALITIES:
        x, ids = sample[mod.member], meta[mod.json_key]
        if mod.has_patches:
            if p_idx is None:
                p_idx = rng.randint(0, x.shape[0] - 1)
            x, ids = x[p_idx], ids[p_idx]
        if mod.name == "dem":
            ident = ids[0] if isinstance(ids, list) else ids
        else:
            t = rng.randint(0, x.shape[0] - 1)
            x, ident = x[t], ids[t]
        if x.ndim == 2:
            x = x[None]
        out[mod.name] = x
        out["json"][mod.name] = unwrap_id(ident)
    return out


@dataclass
class SampleTransform:
    """Crop/resize/flip, normalise, zero NaN/inf, and attach metadata for every modality of one picked sample.

    ``area_mode``: ``fixed`` (default, the reference's ``rawarea``) or ``crop`` (× crop area fraction, the
    reference's ``augarea`` area); ``s3_band_fix``: see :func:`fix_s3_bands`.
    """

    modalities: tuple[Modality, ...] = MODALITIES
    seed: int = 0
    crop_scale: tuple[float, float] = (0.2, 1.0)
    area_mode: str = "fixed"
    s3_band_fix: str = "auto"
    _rng: random.Random | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.area_mode not in AREA_MODES:
            raise CbenchError(f"area_mode {self.area_mode!r}: unknown; choose one of {', '.join(AREA_MODES)}")
        if self.s3_band_fix not in S3_FIX_MODES:
            raise CbenchError(f"s3_band_fix {self.s3_band_fix!r}: unknown; choose one of {', '.join(S3_FIX_MODES)}")

    def rng(self) -> random.Random:
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
            wid = info.id if info is not None else 0
            self._rng = random.Random(self.seed * 1000003 + rank * 1009 + wid)
        return self._rng

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng()
        try:
            picked = pick_one(raw, rng)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise CbenchError(f"{_shard_of(raw)}: sample {raw.get('__key__', '?')!r} does not match the "
                              f"Copernicus-Pretrain layout ({type(exc).__name__}: {exc}); its json ids and tensors "
                              "must line up per modality: remove or rebuild this shard") from None
        out: dict[str, Any] = {}
        for mod in self.modalities:
            x = picked[mod.name].float()
            if mod.name == "s3":
                x = fix_s3_bands(x, self.s3_band_fix)
            # the reference's order: crop → flip → normalise → NaN/inf → 0
            x, rel = random_resized_crop(x, mod.size, rng, scale=self.crop_scale)
            x = normalise(x, mod)
            lon, lat, days = parse_id(picked["json"][mod.name])
            if mod.name == "dem" and math.isnan(days):
                days = DEM_DAYS
            area = mod.patch_area_km2 * (rel * rel if self.area_mode == "crop" else 1.0)
            out[mod.name] = x
            out[f"meta_{mod.name}"] = torch.tensor([lon, lat, days, area], dtype=torch.float32)
        return out


def has_all_modalities(sample: dict[str, Any]) -> bool:
    return all(k in sample for k in REQUIRED_MEMBERS)


def _shard_of(sample: dict[str, Any]) -> str:
    return str(sample.get("__url__", "?"))


def decode_sample(raw: dict[str, Any], members: tuple[str, ...] = REQUIRED_MEMBERS) -> dict[str, Any]:
    """Decode the members pretraining uses (or ``members``), safely: ``.pth`` with
    ``torch.load(weights_only=True)`` (never webdataset's own decoder, which unpickles with
    ``weights_only=False`` unless ``WDS_PYTORCH_WEIGHTS_ONLY=1``, GHSA-6gm9-8jxc-p862), ``json`` with
    :func:`json.loads`; every other member is dropped undecoded."""
    import io
    import json
    import pickle

    out: dict[str, Any] = {"__key__": raw.get("__key__", ""), "__url__": raw.get("__url__", "")}
    for member in members:
        data = raw[member]
        try:
            if member == "json":
                out[member] = json.loads(data)
            else:
                value = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"holds a {type(value).__name__}, not a tensor")
                out[member] = value
        except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CbenchError(f"{_shard_of(raw)}: sample {raw.get('__key__', '?')!r} member {member} cannot be "
                              f"decoded safely ({first[:160]}); shards must hold plain tensors saved with "
                              "torch.save and a json of ids: remove or rebuild this shard") from None
    return out


def select_complete(samples, urls: list[str]):
    """Keep samples that carry every modality; stop with one line instead of spinning forever when every
    shard has been read through once (or the stream ended) without a single complete sample."""
    missing: dict[str, int] = {}
    seen, accepted, rejected = set(), 0, 0
    all_urls, last_url, full_pass = set(urls), None, False
    for sample in samples:
        url = _shard_of(sample)
        if url != last_url:
            if last_url is not None and seen >= all_urls:
                full_pass = True  # every shard was opened and the last new one has been read to its end
            seen.add(url)
            last_url = url
        if has_all_modalities(sample):
            accepted += 1
            yield sample
            continue
        rejected += 1
        for member in REQUIRED_MEMBERS:
            if member not in sample:
                missing[member] = missing.get(member, 0) + 1
        if accepted == 0 and full_pass:
            break
    if accepted == 0:
        what = ", ".join(f"{m.removesuffix('.pth')} in {n}/{rejected}" for m, n in sorted(missing.items()))
        raise CbenchError(f"--shards: none of the {rejected} samples read from {len(all_urls)} shard(s) has all 8 "
                          f"modalities a pretraining step needs (missing: {what or 'no samples at all'}); "
                          "pass shards of the 8-modality Copernicus-Pretrain subset "
                          "(e.g. 'cbench pretrain-sample --out DIR')")


def _shard_error(exn: Exception) -> bool:
    """webdataset error handler: a corrupt or unreadable shard is one line naming it."""
    if isinstance(exn, CbenchError):
        raise exn
    url = next((a for a in reversed(exn.args) if isinstance(a, str) and a.endswith(".tar")), "a shard")
    first = str(exn.args[0]).splitlines()[0] if exn.args else type(exn).__name__
    raise CbenchError(f"{url}: cannot read this shard ({type(exn).__name__}: {first[:160]}); it is truncated or "
                      "not a tar file: remove or re-download it") from None


def make_dataset(shards: str | list[str], modalities: tuple[Modality, ...] = MODALITIES, seed: int = 0,
                 shuffle: int = 16, resampled: bool = True, transform: dict[str, Any] | None = None):
    """A webdataset pipeline over the shards yielding per-sample dicts (tensors per modality + meta).

    Members are decoded by :func:`decode_sample` only (weights-only), whatever ``WDS_PYTORCH_WEIGHTS_ONLY``
    says; webdataset's module flag is also forced on, for any other code path in the process."""
    import webdataset as wds
    import webdataset.autodecode as wds_autodecode

    wds_autodecode.pytorch_weights_only = True
    urls = resolve_shards(shards) if isinstance(shards, str | Path) else list(shards)
    kw: dict[str, Any] = dict(resampled=resampled, shardshuffle=False if resampled else 100,
                              empty_check=False, seed=seed, handler=_shard_error)
    if not resampled:
        kw["nodesplitter"] = wds.split_by_node
        kw["workersplitter"] = wds.split_by_worker
    ds = wds.WebDataset(urls, **kw)
    if shuffle:
        ds = ds.shuffle(shuffle, rng=random.Random(seed))
    return ds.compose(lambda it: select_complete(it, urls)).map(decode_sample).map(
        SampleTransform(modalities, seed=seed, **(transform or {})))


def make_loader(shards: str | list[str], batch_size: int, modalities: tuple[Modality, ...] = MODALITIES,
                seed: int = 0, num_workers: int = 0, transform: dict[str, Any] | None = None):
    """An infinite DataLoader of collated batches (the trainer stops at ``max_steps``); ``transform`` holds
    :class:`SampleTransform` options (``area_mode``, ``s3_band_fix``)."""
    ds = make_dataset(shards, modalities, seed=seed, transform=transform)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers,
                                       persistent_workers=num_workers > 0, drop_last=True)


# ---------------------------------------------------------------------------------------------------------
# Per-step views (batch-level randomness).
@dataclass
class View:
    """What the model sees for one modality in one step."""

    name: str
    x: torch.Tensor  # (B, C', H, W)
    meta: torch.Tensor  # (B, 4), NaN columns = dropped / unknown
    input_mode: str
    kernel: int
    wavelengths: list[float] | None
    bandwidths: list[float] | None
    channels: list[int]


def channel_subset(n: int, gen: torch.Generator, low: float = 0.75) -> list[int]:
    """A random subset of ``ceil(low·n)``..``n`` channels (sorted), drawn once per step."""
    lo = max(1, math.ceil(low * n))
    k = int(torch.randint(lo, n + 1, (1,), generator=gen))
    return sorted(torch.randperm(n, generator=gen)[:k].tolist())


def drop_meta(meta: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Set each metadata group (location, time, area) to NaN for the whole batch with probability ``p``."""
    meta = meta.clone()
    for cols in META_GROUPS.values():
        if float(torch.rand((), generator=gen)) < p:
            meta[:, list(cols)] = math.nan
    return meta


def step_views(batch: dict[str, torch.Tensor], modalities: tuple[Modality, ...], gen: torch.Generator,
               meta_drop: float = 0.7, subset_low: float = 0.75) -> list[View]:
    """Per-step views: channel subsets for S2/S3 and metadata dropout (batch-level draws)."""
    views = []
    for mod in modalities:
        x = batch[mod.name]
        channels = list(range(x.shape[1]))
        if mod.subset_channels:
            channels = channel_subset(x.shape[1], gen, subset_low)
            x = x[:, channels]
        wl = [mod.wavelengths[c] for c in channels] if mod.input_mode == "spectral" else None
        bw = [mod.bandwidths[c] for c in channels] if mod.input_mode == "spectral" else None
        views.append(View(mod.name, x, drop_meta(batch[f"meta_{mod.name}"], meta_drop, gen), mod.input_mode,
                          mod.kernel, wl, bw, channels))
    return views
