"""The Python API: any registered encoder (built-in or plug-in) as a plain frozen ``nn.Module``.

>>> enc = create_encoder("copernicus-fm", bands=["B02", "B03", "B04", "B08"])       # doctest: +SKIP
>>> out = enc(image, lon=11.6, lat=48.1, time="2021-07-01")                         # doctest: +SKIP
>>> out.pooled.shape, [m.shape for m in out.maps]                                   # doctest: +SKIP

``image`` is (B, C, H, W) in **physical units** (Sentinel-2 L1C digital numbers, Sentinel-1 dB, OLCI
radiances, S5P column densities) in the order of ``bands``. The encoder applies the model's own input
pipeline (normalisation, band placement, resize to its native size) exactly as ``cbench run`` does, and
returns :class:`~copernicus_bench.encoder.EncoderOutput` (``pooled`` (B, D), ``maps`` 4 × (B, D, h, w)).

A **band spec** is one of

* band names of a Copernicus sensor (``["B02", "B03", "B04", "B08"]``, ``["VV", "VH"]``, ``["Oa01", ...]``):
  wavelengths, bandwidths and normalisation statistics come from a built-in task card of that sensor
  (:data:`REFERENCE_CARDS`);
* a variable (``"s5p_no2"``, ``"s5p_o3"``, or the S5P band names ``NO2``/``O3``);
* your own spectral bands: :class:`~copernicus_bench.cards.Band` objects or dicts with ``name``,
  ``wavelength_nm`` and ``bandwidth_nm`` (then pass ``mean``/``std`` per band, or ``normalize=False``).

The same code builds the encoders of ``cbench embed`` and ``cbench predict`` (:func:`encoder_for_card`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .cards import Band, Normalization, TaskCard
from .encoder import EncoderAdapter, EncoderOutput, InputPipeline, Tier, WeightsInfo
from .errors import CbenchError

__all__ = ["Encoder", "create_encoder", "encoder_for_card", "embedding_card", "days_since_epoch",
           "REFERENCE_CARDS"]

#: per sensor, the built-in card whose band facts (wavelengths, bandwidths, mean/std) describe user data
REFERENCE_CARDS: dict[str, str] = {"s2": "eurosat-s2", "s1": "eurosat-s1", "s3": "cloud-s3", "s5p": "aq-no2-s5p"}
#: variable keys of the released variable-embedding file, by S5P band name
VARIABLES: dict[str, str] = {"NO2": "s5p_no2", "O3": "s5p_o3"}
_DEFAULTS: dict[str, dict[str, float]] = {  # native sizes of the benchmark's cards per sensor
    "s1": {"resolution": 224, "kernel": 16, "gsd": 10.0},
    "s2": {"resolution": 224, "kernel": 16, "gsd": 10.0},
    "s3": {"resolution": 224, "kernel": 8, "gsd": 300.0},
    "s5p": {"resolution": 56, "kernel": 4, "gsd": 1000.0},
}


# ----------------------------------------------------------------------------------------- band specs
def _canonical(name: str) -> str:
    from .baselines.common import canonical_band

    return canonical_band(name)


def _sensor_bands() -> dict[str, dict[str, tuple[Band, float | None, float | None]]]:
    """sensor → canonical band name → (Band, mean, std) from the reference cards."""
    from .tasks import get_card

    table: dict[str, dict[str, tuple[Band, float | None, float | None]]] = {}
    for sensor, slug in REFERENCE_CARDS.items():
        card = get_card(slug)
        mean = card.normalization.mean[0] if card.normalization.mean else None
        std = card.normalization.std[0] if card.normalization.std else None
        table[sensor] = {_canonical(b.name): (b, mean[i] if mean else None, std[i] if std else None)
                         for i, b in enumerate(card.bands)}
    table["s5p"] = {name: (Band(name=name, variable=var), None, None) for name, var in VARIABLES.items()}
    return table


def _resolve_bands(bands: str | Sequence[Any], sensor: str | None, mean: Sequence[float] | None,
                   std: Sequence[float] | None, normalize: bool
                   ) -> tuple[str, str, tuple[Band, ...], tuple[float, ...] | None, tuple[float, ...] | None]:
    """A band spec → (sensor, input mode, bands, mean, std)."""
    table = _sensor_bands()
    if isinstance(bands, str):
        key = bands.strip()
        by_var = {v: n for n, v in VARIABLES.items()}
        if key in by_var or key.upper() in VARIABLES:
            name = by_var.get(key, key.upper())
            return "s5p", "variable", (Band(name=name, variable=VARIABLES[name]),), None, None
        bands = [b for b in key.split(",") if b.strip()]
    items = list(bands)
    if not items:
        raise CbenchError("bands: empty band spec; give band names (e.g. B02,B03,B04,B08), a variable "
                          "(s5p_no2) or Band(name, wavelength_nm, bandwidth_nm) entries")
    if all(isinstance(b, str) for b in items):
        names = [_canonical(b) for b in items]
        if len(set(names)) != len(names):
            raise CbenchError(f"bands {','.join(items)}: a band is listed twice; list each band once")
        candidates = [s for s in (sensor,) if s] or [s for s, t in table.items() if all(n in t for n in names)]
        if sensor and sensor not in table:
            raise CbenchError(f"sensor '{sensor}': unknown; use one of {sorted(table)}")
        if not candidates or not all(n in table[candidates[0]] for n in names):
            known = {s: sorted(t) for s, t in table.items()}
            where = table[candidates[0]] if candidates else {}
            unknown = [b for b, n in zip(items, names) if n not in where] if candidates else items
            raise CbenchError(f"bands: unknown band name(s) {unknown} for "
                              f"{('sensor ' + candidates[0]) if candidates else 'any Copernicus sensor'}; "
                              f"known: {known} (or describe your bands with wavelengths, fix --bands)")
        sensor = candidates[0]
        entries = [table[sensor][n] for n in names]
        if sensor == "s5p":
            if len(entries) != 1:
                raise CbenchError("bands: Copernicus-FM's variable mode takes one variable per image; "
                                  "give one of NO2, O3")
            return "s5p", "variable", (entries[0][0],), None, None
        out = tuple(e[0] for e in entries)
        ref_mean = tuple(e[1] for e in entries)
        ref_std = tuple(e[2] for e in entries)
        if mean is None and std is None and normalize:
            if all(m is None for m in ref_mean):  # the benchmark does not normalise this sensor (S3)
                return sensor, "spectral", out, None, None
            return sensor, "spectral", out, ref_mean, ref_std  # type: ignore[return-value]
        return sensor, "spectral", out, *_stats(len(out), mean, std, normalize)
    spectral: list[Band] = []
    for i, b in enumerate(items):
        if isinstance(b, Band):
            spectral.append(b)
        elif isinstance(b, dict):
            try:
                spectral.append(Band(**b))
            except TypeError as exc:
                raise CbenchError(f"bands[{i}]: {exc}; give name, wavelength_nm, bandwidth_nm") from None
        else:
            raise CbenchError(f"bands[{i}]: {b!r} is not a band name, Band or dict")
        if spectral[-1].wavelength_nm is None or spectral[-1].bandwidth_nm is None:
            raise CbenchError(f"bands[{i}] ({spectral[-1].name}): needs wavelength_nm and bandwidth_nm")
    sensor = sensor or "s2"
    if sensor not in _DEFAULTS:
        raise CbenchError(f"sensor '{sensor}': unknown; use one of {sorted(_DEFAULTS)}")
    return sensor, "spectral", tuple(spectral), *_stats(len(spectral), mean, std, normalize)


def _stats(n: int, mean: Sequence[float] | None, std: Sequence[float] | None, normalize: bool
           ) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    if not normalize:
        return None, None
    if mean is None or std is None:
        raise CbenchError("mean/std: these bands have no built-in statistics; pass mean= and std= (one value "
                          "per band, physical units) or normalize=False")
    if len(mean) != n or len(std) != n:
        raise CbenchError(f"mean/std: need {n} values each (one per band), got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise CbenchError("std: every value must be positive")
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def embedding_card(bands: str | Sequence[Any], sensor: str | None = None, size: int | None = None,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   normalize: bool = True, gsd_m: float | None = None) -> TaskCard:
    """A task card describing the user's input (bands, sensor, native size) for an adapter.

    Its task type is ``segmentation`` so that every adapter builds the map outputs too; classes, metric and
    probe are placeholders no probe ever reads.
    """
    from .tasks import get_card

    sensor, mode, band_tuple, mu, sd = _resolve_bands(bands, sensor, mean, std, normalize)
    d = _DEFAULTS[sensor]
    kernel = int(d["kernel"])
    resolution = int(size or d["resolution"])
    if resolution < kernel or resolution % kernel:
        raise CbenchError(f"size {resolution}: must be a positive multiple of the patch size {kernel}")
    gsd = float(gsd_m or d["gsd"])
    template = get_card("dfc2020-s2")
    return dataclasses.replace(
        template, slug="user-input", version=1, name="user input", level=0, level_name="user input",
        sensor=sensor, product="user data", loader="custom", archive_dir=".", bands=band_tuple,
        normalization=Normalization(mean=(mu,) if mu is not None else None, std=(sd,) if sd is not None else None),
        native_size=resolution, loader_size=None, resolution=resolution, kernel_size=kernel, gsd_m=gsd,
        patch_area_km2=(kernel * gsd / 1000.0) ** 2, metadata=("lon", "lat", "time", "area"), input_mode=mode,
        num_dates=1, paper={}, source="user", license="user", notes=())


# ----------------------------------------------------------------------------------------- metadata
def days_since_epoch(value: Any) -> float:
    """Days since 1970-01-01 (Copernicus-FM's time unit, whole days as the reference) of a date.

    Accepts ``None``/NaN (unknown → NaN), a number (already days), ``datetime``/``date``, ``numpy.datetime64``
    or an ISO string (``2021-07-01``, ``2021-07-01T10:30:00``, TIFF's ``2021:07:01 10:30:00``).
    """
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[D]").astype(object)
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 10 and text[4] == ":" and text[7] == ":":  # TIFFTAG_DATETIME
            text = text[:10].replace(":", "-") + text[10:]
        try:
            value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            raise CbenchError(f"time {value!r}: not a date; use ISO format such as 2021-07-01") from None
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return float((value - _dt.date(1970, 1, 1)).days)
    raise CbenchError(f"time {value!r}: not a date; use ISO format such as 2021-07-01")


def _meta_column(value: Any, batch: int, name: str, convert=float) -> Tensor:
    if value is None:
        return torch.full((batch,), math.nan)
    if isinstance(value, Tensor):
        t = value.detach().float().reshape(-1).cpu()
    elif isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, str):
        t = torch.tensor([convert(v) for v in value], dtype=torch.float32)
    else:
        t = torch.tensor([convert(value)], dtype=torch.float32)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise CbenchError(f"{name}: {t.numel()} values for a batch of {batch}; give one value or one per image")
    return t


# ----------------------------------------------------------------------------------------- encoder
class Encoder(nn.Module):
    """A frozen encoder with its input pipeline: physical image in, :class:`EncoderOutput` out.

    Attributes: ``embed_dim``, ``patch_size`` (the kernel the model runs at), ``input_size`` (the native
    window the pipeline resizes to), ``bands`` (names, input order), ``weights``
    (:class:`~copernicus_bench.encoder.WeightsInfo`), ``adaptations`` (every padded/duplicated/dropped band),
    ``card`` and ``pipeline``.
    """

    def __init__(self, model: str, adapter: EncoderAdapter, card: TaskCard, pipeline: InputPipeline,
                 encoder: nn.Module, autocast: bool = True) -> None:
        super().__init__()
        self.model_name = model
        self.adapter = adapter
        self.card = card
        self.pipeline = pipeline
        self.encoder = encoder
        self.autocast = autocast
        self.embed_dim: int = int(encoder.embed_dim)
        self.patch_size: int = card.kernel_size
        self.input_size: int = pipeline.resolution
        self.bands: tuple[str, ...] = card.band_names
        self.weights: WeightsInfo = encoder.weights
        self.adaptations: tuple[str, ...] = tuple(pipeline.adaptations)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Encoder:  # noqa: ARG002 - frozen: always eval
        return super().train(False)

    def meta(self, batch: int, lon: Any = None, lat: Any = None, time: Any = None, area: Any = None) -> Tensor:
        """(B, 4) = [lon°, lat°, days since 1970, patch area km²], NaN where unknown."""
        cols = [_meta_column(lon, batch, "lon"), _meta_column(lat, batch, "lat"),
                _meta_column(time, batch, "time", days_since_epoch), _meta_column(area, batch, "area")]
        return torch.stack(cols, dim=1)

    @torch.no_grad()
    def forward(self, image: Tensor, lon: Any = None, lat: Any = None, time: Any = None, area: Any = None,
                want_maps: bool = True, meta: Tensor | None = None) -> EncoderOutput:
        """``image`` (B, C, H, W) physical values in ``bands`` order → pooled (B, D) and 4 maps (B, D, h, w).

        ``lon``/``lat`` (degrees WGS84), ``time`` (date, ISO string or days since 1970) and ``area`` (km² of
        one patch) are scalars or one value per image; ``meta`` (B, 4) replaces all four.
        """
        if image.ndim != 4:
            raise CbenchError(f"image: expected (B, C, H, W), got shape {tuple(image.shape)}")
        if image.shape[1] != len(self.bands):
            raise CbenchError(f"image: has {image.shape[1]} channels but the band spec lists {len(self.bands)} "
                              f"({','.join(self.bands)}); fix the bands")
        tensor = next(iter(self.encoder.parameters()), None)
        dev = tensor.device if tensor is not None else torch.device("cpu")
        if meta is None:
            meta = self.meta(image.shape[0], lon, lat, time, area)
        x = self.pipeline.apply(image.to(dev).float())
        from .features import autocast_for

        ctx = autocast_for(dev) if self.autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            out = self.encoder(x, meta.to(dev, torch.float32), want_maps=want_maps)
        maps = [m.float() for m in out.maps] if out.maps is not None else None
        return EncoderOutput(pooled=out.pooled.float(), maps=maps)


def _factory_kwargs(name: str, weights: str | Path | None, weights_dir: str | Path | None, seed: int,
                    options: dict[str, Any]) -> dict[str, Any]:
    from . import paths
    from .models_registry import MODELS

    kwargs: dict[str, Any] = {"weights_dir": str(paths.weights_dir(weights_dir)), "seed": seed, **options}
    if weights is None or weights == "released":
        return kwargs
    params = inspect.signature(MODELS.get(name)).parameters
    takes = lambda key: key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())  # noqa: E731
    if weights == "random":
        if name != "random" and not takes("random_init"):
            raise CbenchError(f"weights='random': model '{name}' has no random_init option")
        if takes("random_init"):
            kwargs["random_init"] = True
        return kwargs
    path = Path(weights)
    if not path.is_file():
        raise CbenchError(f"weights {path}: no such file; give 'released', 'random' or a checkpoint path")
    if not takes("checkpoint"):
        raise CbenchError(f"weights {path}: model '{name}' takes no checkpoint option; put the file under its "
                          "released name into the weights folder (--weights-dir) instead")
    kwargs["checkpoint"] = str(path)
    return kwargs


def encoder_for_card(name: str, card: TaskCard, weights: str | Path | None = None, *,
                     weights_dir: str | Path | None = None, seed: int = 0, tier: Tier = "full",
                     device: str | torch.device | None = None, **options: Any) -> Encoder:
    """The frozen encoder ``cbench run`` builds for ``card`` (same adapter, pipeline and seed rules)."""
    from .models_registry import create_model

    adapter = create_model(name, **_factory_kwargs(name, weights, weights_dir, seed, options))
    reason = adapter.applicability(card)
    if reason:
        raise CbenchError(f"model '{name}' does not accept this input: {reason}")
    pipeline = adapter.input_pipeline(card, tier)
    torch.manual_seed(seed)  # as the runner, before model creation
    task_encoder = adapter.build(card, pipeline, seed)
    enc = Encoder(name, adapter, card, pipeline, task_encoder)
    if device is not None:
        enc = enc.to(device)
    return enc


def create_encoder(name: str, weights: str | Path | None = None, *, bands: str | Sequence[Any],
                   sensor: str | None = None, size: int | None = None, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None, normalize: bool = True, weights_dir: str | Path | None = None,
                   seed: int = 0, device: str | torch.device | None = None, **options: Any) -> Encoder:
    """A frozen encoder for your own images.

    Args:
        name: a registered encoder (``cbench models``): ``copernicus-fm``, ``dofa``, ``softcon``, ``croma``,
            ``random`` or a plug-in.
        weights: ``None``/``"released"`` (the released checkpoint, downloaded once into the weights
            folder), ``"random"`` (random weights drawn from ``seed``) or a checkpoint file.
        bands: the band spec of the image's channels (module docstring).
        sensor: ``s1``/``s2``/``s3``/``s5p`` when the band names alone are ambiguous (default: inferred).
        size: the model's native window in pixels (default: the benchmark's, 224 for S1/S2/S3, 56 for S5P);
            inputs of another size are resized to it, as in the benchmark.
        mean, std, normalize: statistics for bands without built-in ones (physical units).
        options: the model factory's options (``cbench run --model-args``), e.g. ``config="tiny"``.
    """
    card = embedding_card(bands, sensor=sensor, size=size, mean=mean, std=std, normalize=normalize)
    return encoder_for_card(name, card, weights, weights_dir=weights_dir, seed=seed, device=device, **options)


# ----------------------------------------------------------------------------------------- trained heads
HEAD_FORMAT = "cbench-head/1"


def save_head(path: str | Path, head: nn.Module, *, card: TaskCard, model: str, model_args: dict[str, Any],
              weights: WeightsInfo, seed: int, tier: str, head_kind: str, embed_dim: int,
              metric: dict[str, Any] | None = None) -> Path:
    """Store a trained probe with everything ``cbench predict`` needs to rebuild its encoder (atomic)."""
    import json

    from .atomic import atomic_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": HEAD_FORMAT, "state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()},
        "card": json.dumps(card.to_dict(), default=list), "model": model,
        "model_args": json.dumps(model_args, default=str), "weights": dataclasses.asdict(weights),
        "seed": int(seed), "tier": tier, "head_kind": head_kind, "embed_dim": int(embed_dim),
        "metric": json.dumps(metric or {}),
    }
    with atomic_file(path) as tmp:
        torch.save(record, tmp)
    return path


def load_head(path: str | Path) -> dict[str, Any]:
    """A head file written by :func:`save_head` (``weights_only=True``): the record with ``card`` (TaskCard),
    ``model_args`` (dict) and ``head`` (the probe module with its trained weights, eval mode)."""
    import json

    from .cards import card_from_dict
    from .probing import build_head

    path = Path(path)
    if not path.is_file():
        raise CbenchError(f"--head {path}: no such file; train one with 'cbench run --task-card CARD --save-head "
                          f"{path.name}'")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CbenchError(f"--head {path}: not a head file ({type(exc).__name__}); give a file written by "
                          "--save-head") from None
    if not isinstance(record, dict) or record.get("format") != HEAD_FORMAT:
        raise CbenchError(f"--head {path}: not a {HEAD_FORMAT} file; give a file written by --save-head")
    card = card_from_dict(json.loads(record["card"]), str(path))
    head = build_head(card, int(record["embed_dim"]), record["head_kind"])
    head.load_state_dict(record["state_dict"])
    return {**record, "card": card, "model_args": json.loads(record["model_args"]), "head": head.eval(),
            "metric": json.loads(record["metric"])}
