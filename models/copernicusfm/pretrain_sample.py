"""Write tiny Copernicus-Pretrain WebDataset shards (docs/models.md) for tests and demos.

Members, dtypes, axis layout, json ids (each a one-element list, as released) and shard names are those of
the release (``example-000000.tar`` …); one sample per 0.25° grid cell keyed by a 7-digit grid number.
Spatial sizes are smaller than the release by default (S1/S2 66 px instead of 264, S3 24 instead of 96, DEM
120 instead of 960; S5P 28 as released) so a shard is a few MB: torchgeo's ``CopernicusPretrain`` reader does not look at spatial sizes, and the
pretraining pipeline random-resized-crops every modality to its model size anyway. ``full_size=True``
writes the released sizes (≈ 7 MB per grid and date).

The images are smooth random fields in each sensor's physical range (S2 L1C DN as int16, S1 dB, OLCI raw
counts that the scale factors turn into radiance, S5P column densities, DEM metres) so that an MAE has
structure to learn.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import torch
import torch.nn.functional as F

SMALL_SIZES = {"s12": 66, "s3": 24, "s5p": 28, "dem": 120}
FULL_SIZES = {"s12": 264, "s3": 96, "s5p": 28, "dem": 960}
S5P_RANGES = {"co": (0.02, 0.05), "no2": (0.0, 3e-4), "o3": (0.11, 0.14), "so2": (0.0, 5e-4)}


def _field(gen: torch.Generator, shape: tuple[int, ...], size: int, lo: float, hi: float) -> torch.Tensor:
    """A smooth random field (bicubic upsampling of a coarse grid) in ``[lo, hi]``; shape (..., size, size)."""
    coarse = torch.rand(*shape, 4, 4, generator=gen)
    flat = coarse.reshape(-1, 1, 4, 4)
    up = F.interpolate(flat, size=(size, size), mode="bicubic", align_corners=True).clamp(0, 1)
    return (lo + (hi - lo) * up).reshape(*shape, size, size)


def _date(rng: random.Random) -> str:
    d = 18262 + rng.randint(0, 3 * 365)  # 2020-01-01 .. 2022-12-31
    from datetime import date, timedelta

    return (date(1970, 1, 1) + timedelta(days=d)).strftime("%Y%m%d")


def make_grid_sample(grid_num: int, gen: torch.Generator, rng: random.Random, patches: int = 2, dates: int = 2,
                     full_size: bool = False) -> dict:
    """One Copernicus-Pretrain grid sample: ``{member: tensor, 'json': ids}`` keyed by ``__key__``."""
    sz = FULL_SIZES if full_size else SMALL_SIZES
    # grid centres on multiples of 0.25°, as the released ids (``0772176_-96.00_44.00``): the ERA5 lattice
    lon = round(rng.uniform(-179.0, 179.0) * 4) / 4
    lat = round(rng.uniform(-55.0, 70.0) * 4) / 4
    gid = f"{grid_num:07d}"
    grid_ident = f"{gid}_{lon:.2f}_{lat:.2f}"
    s2_mean = torch.tensor([1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0,
                            2195.2, 1537.4]).view(13, 1, 1)
    s2_std = torch.tensor([791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5,
                           1340.0, 1142.9]).view(13, 1, 1)
    P, T, S = patches, dates, sz["s12"]
    s2 = _field(gen, (P, T, 1), S, -1.5, 1.5) * s2_std + s2_mean + torch.randn(P, T, 13, S, S, generator=gen) * 20
    s1 = torch.cat([_field(gen, (P, T, 1), S, -20, -5), _field(gen, (P, T, 1), S, -28, -12)], dim=2)
    s3 = _field(gen, (T, 1), sz["s3"], 2000, 9000).expand(T, 21, sz["s3"], sz["s3"]).clone()
    s3 = s3 * (1 + 0.1 * torch.randn(1, 21, 1, 1, generator=gen))
    out: dict = {"__key__": gid}
    out["s1_grd.pth"] = s1.float().contiguous()
    out["s2_toa.pth"] = s2.round().clamp(0, 32767).to(torch.int16).contiguous()
    out["s3_olci.pth"] = s3.float().contiguous()
    for gas, (lo, hi) in S5P_RANGES.items():
        out[f"s5p_{gas}.pth"] = _field(gen, (T, 1), sz["s5p"], lo, hi).float().contiguous()
    out["dem.pth"] = _field(gen, (), sz["dem"], 0, 3000).float().contiguous()

    patch_ids = []
    for p in range(P):
        plon = lon - 0.125 + 0.25 * (p + 0.5) / P
        plat = lat - 0.125 + 0.25 * (p + 0.5) / P
        patch_ids.append(f"{grid_num * 10 + p:07d}_{plon:.2f}_{plat:.2f}")
    # every id is a one-element list, as in the released shards (their writer collated the ids through a
    # batch-1 DataLoader; the reference reads meta[key][0] and meta['dem'][0][0])
    ids: dict = {}
    for key in ("s1_grd", "s2_toa"):
        ids[key] = [[[f"{gid}/{pid}/{_date(rng)}"] for _ in range(T)] for pid in patch_ids]
    for key in ("s3_olci", "s5p_co", "s5p_no2", "s5p_o3", "s5p_so2"):
        ids[key] = [[f"{grid_ident}/{_date(rng)}"] for _ in range(T)]
    ids["dem"] = [[grid_ident]]
    out["json"] = json.dumps(ids).encode()
    return out


def write_sample_shards(out: str | os.PathLike, shards: int = 2, grids_per_shard: int = 4, seed: int = 0,
                        patches: int = 2, dates: int = 2, full_size: bool = False) -> list[Path]:
    """Write ``example-{000000..}.tar`` shards into ``out``; returns their paths."""
    import webdataset as wds

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    paths = []
    for s in range(shards):
        path = out / f"example-{s:06d}.tar"
        tmp = path.with_suffix(".tar.part")
        with wds.TarWriter(str(tmp)) as sink:
            for g in range(grids_per_shard):
                sink.write(make_grid_sample(1_000_000 + s * grids_per_shard + g, gen, rng, patches, dates,
                                            full_size))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def shard_size_mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 2**20 / max(1, len(paths)) if paths else math.nan
