"""``cbench grid-embed``: one embedding per ERA5 0.25° grid cell (Copernicus-Embed) as a GeoTIFF.

Inputs are Copernicus-Pretrain shards (``--shards``: every S1/S2 patch and date, every S3/S5P date and the DEM
of each grid sample, placed in the sample's grid cell) or per-cell GeoTIFFs (files, folders, .txt lists; each
image is resized whole to the encoder's native size and placed in the cell of its centre). The cell's vector
is the mean of its images' pooled embeddings (:mod:`copernicus_bench.grid`). Output: torchgeo's
``CopernicusEmbed`` layout (EPSG:4326, 0.25° cell-centred, one band per dimension, empty cells 0) — the cells'
bounding box, or the full 1440 × 721 globe with ``--full-globe``; ``--table`` adds one Parquet row per cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import CbenchError


def add_parser(sub) -> None:
    from .run import _model_args

    p = sub.add_parser("grid-embed", help="0.25° grid-cell embeddings (Copernicus-Embed) from shards or GeoTIFFs",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("inputs", nargs="*", help="per-cell GeoTIFFs, folders of them, or .txt lists of paths")
    p.add_argument("--shards", help="Copernicus-Pretrain shards instead: a folder of *.tar, a glob or a brace "
                                    "pattern (e.g. from 'cbench pretrain-sample --out DIR')")
    p.add_argument("--modalities", help="with --shards: which of s1,s2,s3,s5p_co,s5p_no2,s5p_o3,s5p_so2,dem "
                                        "(default: every one the model accepts)")
    p.add_argument("--model", required=True, help="encoder name (see 'cbench models')")
    p.add_argument("--weights", default="released",
                   help="'released' (default, downloaded once), 'random' (drawn from --seed) or a checkpoint file")
    p.add_argument("--bands", help="GeoTIFF band names in file order (default: the band descriptions)")
    p.add_argument("--sensor", choices=("s1", "s2", "s3", "s5p"), help="sensor when band names are ambiguous")
    p.add_argument("--time", help="acquisition date for every GeoTIFF (default: the file's tags, else unknown)")
    p.add_argument("--out", required=True, help="output GeoTIFF; name it embed_map_<name>.tif for torchgeo")
    p.add_argument("--full-globe", action="store_true", help="write the whole 1440 × 721 grid (default: the "
                                                             "bounding box of the cells present)")
    p.add_argument("--average", choices=("images", "modalities"), default="images",
                   help="cell vector = mean over its images (default) or mean of per-modality means")
    p.add_argument("--table", help="also write one row per cell to this Parquet file")
    p.add_argument("--seed", type=int, default=0, help="seed (random weights; default 0)")
    p.add_argument("--model-args", type=_model_args, default=(), metavar="K=V,...",
                   help="model factory options, e.g. config=tiny")
    p.add_argument("--batch-size", type=int, default=16, help="images per encoder batch (default 16)")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu; bf16 on CUDA)")
    p.add_argument("--weights-dir", help="checkpoints folder (default ~/.cache/copernicus-bench/weights)")
    p.add_argument("--overwrite", action="store_true", help="redo an output that already exists")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------- checks
def _check_outputs(args: argparse.Namespace) -> list[Path]:
    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise CbenchError(f"--out {out}: must end in .tif (a GeoTIFF; embed_map_<name>.tif for torchgeo)")
    targets = [out]
    if args.table:
        if Path(args.table).suffix.lower() != ".parquet":
            raise CbenchError(f"--table {args.table}: must end in .parquet")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CbenchError("--table needs pyarrow; pip install pyarrow") from None
        targets.append(Path(args.table))
    for t in targets:
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CbenchError(f"{t}: its folder cannot be created ({exc.strerror}); choose a writable path") from None
    if args.batch_size < 1:
        raise CbenchError(f"--batch-size {args.batch_size}: must be ≥ 1")
    return targets


def _check_source(args: argparse.Namespace) -> None:
    if args.shards and args.inputs:
        raise CbenchError("grid-embed: give GeoTIFF inputs or --shards, not both")
    if not args.shards and not args.inputs:
        raise CbenchError("grid-embed: no input; give per-cell GeoTIFFs (files, folders, .txt lists) or --shards DIR")
    if args.modalities and not args.shards:
        raise CbenchError("--modalities: only for --shards (GeoTIFF inputs are described by --bands)")
    if args.shards and (args.bands or args.time):
        raise CbenchError("--bands/--time: only for GeoTIFF inputs (shards carry their bands and dates)")
    if args.modalities:
        from ..models.copernicusfm.pretrain_data import MODALITY_BY_NAME

        for m in args.modalities.split(","):
            if m.strip() not in MODALITY_BY_NAME:
                raise CbenchError(f"--modalities: unknown modality '{m.strip()}'; use some of "
                                  f"{', '.join(MODALITY_BY_NAME)}")


def _pooled(enc: Any, images: list, metas: list, where: str):
    """Pooled embeddings (N, D) of same-shaped images; NaN/inf is an error naming the input."""
    import numpy as np
    import torch

    x = torch.stack([torch.as_tensor(i, dtype=torch.float32) for i in images])
    out = enc(x, meta=torch.as_tensor(np.asarray(metas, dtype=np.float32)), want_maps=False).pooled.cpu().numpy()
    if not np.isfinite(out).all():
        raise CbenchError(f"{where}: the encoder returned NaN/inf embeddings; check the images for NaN or no-data")
    return out


# ----------------------------------------------------------------------------------------------- sources
def embed_geotiffs(args: argparse.Namespace, means, device) -> tuple[int, Any]:
    """Each GeoTIFF's pooled embedding into the cell of its centre; returns (images, an encoder)."""
    from ..grid import cell_index, image_meta, read_image
    from ..windows import open_raster, raster_time
    from .embed import EncoderPool, _progress, collect_inputs, file_bands

    files = collect_inputs(args.inputs)
    infos = {}
    for f in files:  # every header checked before any work
        info = open_raster(f, no_geo=True)
        if not info.georeferenced:
            raise CbenchError(f"{f}: has no CRS/georeference, so it cannot be placed on a 0.25° cell; "
                              "georeference the file (e.g. gdal_edit.py -a_srs EPSG:32632 -a_ullr ...)")
        infos[f] = info
    pool = EncoderPool(args, device)
    groups: dict[tuple, list] = {}
    specs: dict[tuple, Any] = {}
    enc = None
    for f in files:
        info = infos[f]
        bands = file_bands(info, args.bands)
        enc = pool.get(bands)
        meta, (lon, lat) = image_meta(info, enc.patch_size, raster_time(info, args.time))
        row, col = cell_index(lon, lat, str(f))
        key = ((bands,) if isinstance(bands, str) else tuple(bands), info.height, info.width)
        specs[key] = bands
        groups.setdefault(key, []).append((f, meta, int(row[0]), int(col[0])))
    bar = _progress(len(files), "grid-embed")
    for key, items in groups.items():
        enc = pool.get(specs[key])
        for start in range(0, len(items), args.batch_size):
            chunk = items[start:start + args.batch_size]
            emb = _pooled(enc, [read_image(f) for f, *_ in chunk], [m for _, m, *_ in chunk],
                          ", ".join(str(f) for f, *_ in chunk[:3]))
            means.add([r for *_, r, _ in chunk], [c for *_, c in chunk], emb, enc.card.sensor)
            bar.update(len(chunk))
    bar.close()
    return len(files), enc


def _shard_encoders(args: argparse.Namespace, device) -> dict[str, Any]:
    from ..api import encoder_for_card
    from ..grid import modality_card
    from ..models.copernicusfm.pretrain_data import MODALITY_BY_NAME
    from ..runner import parse_model_args

    options = parse_model_args(args.model_args)
    named = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    encoders: dict[str, Any] = {}
    for m in named or list(MODALITY_BY_NAME):
        try:
            encoders[m] = encoder_for_card(args.model, modality_card(m), args.weights, weights_dir=args.weights_dir,
                                           seed=args.seed, device=device, **options)
        except CbenchError as exc:
            if named or "does not accept this input" not in str(exc):
                raise
            print(f"cbench grid-embed: {m}: skipped ({exc})", file=sys.stderr)
    if not encoders:
        raise CbenchError(f"--model {args.model}: accepts none of the shards' modalities; use copernicus-fm or "
                          "name --modalities it accepts")
    for m, enc in encoders.items():
        for note in enc.adaptations:
            print(f"cbench grid-embed: {args.model}: {m}: {note}", file=sys.stderr)
    return encoders


def embed_shards(args: argparse.Namespace, means, device) -> tuple[int, Any]:
    """Every image of every shard sample into the sample's grid cell; returns (images, an encoder)."""
    from ..grid import cell_index, iter_shard_images
    from ..models.copernicusfm.pretrain_data import resolve_shards
    from .embed import _progress

    urls = resolve_shards(args.shards)  # no shards is one line before any model is built
    encoders = _shard_encoders(args, device)
    buffers: dict[tuple, list] = {}
    bar = _progress(0, "grid-embed")
    bar.total = None
    done = 0

    def flush(key: tuple) -> None:
        nonlocal done
        items = buffers.pop(key, [])
        if not items:
            return
        emb = _pooled(encoders[key[0]], [i.image for i in items], [i.meta for i in items],
                      f"--shards {args.shards}: {key[0]} of grid {items[0].grid!r}")
        rows, cols = cell_index([i.lon for i in items], [i.lat for i in items], f"--shards {args.shards}")
        means.add(rows, cols, emb, key[0])
        done += len(items)
        bar.update(len(items))

    for img in iter_shard_images(urls, list(encoders)):
        key = (img.modality, tuple(img.image.shape))
        buffers.setdefault(key, []).append(img)
        if len(buffers[key]) >= args.batch_size:
            flush(key)
    for key in list(buffers):
        flush(key)
    bar.close()
    if not done:
        raise CbenchError(f"--shards {args.shards}: no sample holds any of the modalities {', '.join(encoders)}; "
                          "pass Copernicus-Pretrain shards (e.g. 'cbench pretrain-sample --out DIR')")
    return done, next(iter(encoders.values()))


# ----------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    from ..grid import CellMeans, write_grid_geotiff, write_grid_table
    from ..models_registry import MODELS
    from ..provenance import resolve_device

    _check_source(args)
    targets = _check_outputs(args)
    MODELS.get(args.model)  # an unknown model is one line before anything is read
    if all(t.exists() for t in targets) and not args.overwrite:
        print(f"cbench grid-embed: {args.out} exists; skipped (--overwrite to redo)", file=sys.stderr)
        return 0
    device = resolve_device(args.device)
    means = CellMeans(args.average)
    n, enc = embed_shards(args, means, device) if args.shards else embed_geotiffs(args, means, device)
    tags = {"CBENCH_MODEL": args.model, "CBENCH_WEIGHTS": enc.weights.label,
            "CBENCH_WEIGHTS_SHA256": enc.weights.sha256, "CBENCH_SOURCE": args.shards or " ".join(args.inputs),
            "CBENCH_POOLING": "encoder pooled output (copernicus-fm: mean of last-block patch tokens, no CLS)",
            "CBENCH_AVERAGE": args.average, "CBENCH_IMAGES": n, "CBENCH_CELLS": len(means),
            "CBENCH_GRID": "ERA5 0.25 deg, cell-centred, lon -180..179.75, lat 90..-90; empty cells 0"}
    h, w = write_grid_geotiff(targets[0], means, args.full_globe, tags)
    if args.table:
        write_grid_table(targets[1], means, args.model)
    row0, col0, *_ = means.bounds()
    where = "full globe" if args.full_globe else f"rows {row0}.., cols {col0}.. of the 721 × 1440 grid"
    print(f"cbench grid-embed: {n} images → {len(means)} cells, {int(means.dim or 0)} dims; wrote {args.out} "
          f"({h} × {w}, {where})" + (f" and {args.table}" if args.table else ""), file=sys.stderr)
    return 0
