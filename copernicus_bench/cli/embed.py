"""``cbench embed``: GeoTIFFs → window embeddings (a georeferenced GeoTIFF per file, and/or a table).

Each input raster is cut into windows (``--window``, default the encoder's native size; ``--stride``, default
the window) with their own lon/lat/time/area (:mod:`copernicus_bench.windows`); the pooled embedding of window
(i, j) becomes pixel (i, j) of ``<out>/<name>.tif`` (D bands, float32, same CRS, a transform that puts each
pixel's centre on its window's centre). ``--table FILE.parquet`` also writes one row per window of every
file (GeoParquet with WGS84 window polygons when all inputs are georeferenced). Outputs are written
atomically; a rerun skips files whose embedding raster exists (``--overwrite`` redoes them).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import CbenchError

RASTER_SUFFIXES = (".tif", ".tiff")


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``embed`` and ``predict``: windows, metadata, device."""
    p.add_argument("--window", type=int, help="window size in pixels (default: the encoder's native size)")
    p.add_argument("--stride", type=int, help="step between windows in pixels (default: the window size)")
    p.add_argument("--time", help="acquisition date for every input (ISO, e.g. 2021-07-01); default: the "
                                  "file's tags (ACQUISITION_DATE, TIFFTAG_DATETIME, ...), else unknown")
    p.add_argument("--no-geo", action="store_true",
                   help="accept rasters without CRS (location and patch area then unknown to the model)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per encoder batch (default 16)")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu; bf16 on CUDA)")
    p.add_argument("--weights-dir", help="checkpoints folder (default ~/.cache/copernicus-bench/weights)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")


def add_parser(sub) -> None:
    from .run import _model_args

    p = sub.add_parser("embed", help="embed GeoTIFFs (sliding windows) with any registered encoder",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("inputs", nargs="+", help="GeoTIFF files, folders of them, or .txt lists of paths")
    p.add_argument("--model", required=True, help="encoder name (see 'cbench models')")
    p.add_argument("--weights", default="released",
                   help="'released' (default, downloaded once), 'random' (drawn from --seed) or a checkpoint file")
    p.add_argument("--bands", help="band names in file order, e.g. B02,B03,B04,B08 (default: the raster's band "
                                   "descriptions); or a variable such as s5p_no2")
    p.add_argument("--sensor", choices=("s1", "s2", "s3", "s5p"), help="sensor when band names are ambiguous")
    p.add_argument("--out", required=True, help="folder for <name>.tif embedding rasters")
    p.add_argument("--table", help="also write every window as a row of this Parquet/GeoParquet file")
    p.add_argument("--no-raster", action="store_true", help="write only --table, no embedding rasters")
    p.add_argument("--seed", type=int, default=0, help="seed (random weights; default 0)")
    p.add_argument("--model-args", type=_model_args, default=(), metavar="K=V,...",
                   help="model factory options, e.g. config=tiny")
    add_common_options(p)
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------- helpers
def collect_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their *.tif/*.tiff, sorted, recursive) and .txt lists (one path a line, relative to
    the list's folder) → a de-duplicated list of rasters."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES and f.is_file())
            if not found:
                raise CbenchError(f"{p}: folder holds no .tif/.tiff files; point at GeoTIFFs")
            out += found
        elif p.suffix.lower() in (".txt", ".lst") and p.is_file():
            for line in p.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    f = Path(line.strip())
                    out.append(f if f.is_absolute() else p.parent / f)
        elif p.is_file():
            out.append(p)
        else:
            raise CbenchError(f"{p}: no such file or folder; give GeoTIFFs, folders or a .txt list")
    seen: dict[Path, None] = {}
    for f in out:
        seen.setdefault(f, None)
    return list(seen)


def output_names(files: list[Path], out: Path, suffix: str = ".tif") -> dict[Path, Path]:
    """``<out>/<stem><suffix>`` per input; two inputs with the same stem are an error."""
    names: dict[Path, Path] = {}
    taken: dict[str, Path] = {}
    for f in files:
        if f.stem in taken:
            raise CbenchError(f"{f} and {taken[f.stem]}: same file name, so their outputs would collide; "
                              "embed them into separate --out folders")
        taken[f.stem] = f
        names[f] = out / f"{f.stem}{suffix}"
    return names


def file_bands(info, option: str | None) -> str | list[str]:
    """The band spec of one raster: ``--bands`` (must name every band) or the band descriptions."""
    if option:
        names = [b.strip() for b in option.split(",") if b.strip()]
        if len(names) == 1 and names[0].lower().startswith("s5p_"):
            names_spec: str | list[str] = names[0]
        else:
            names_spec = names
        if len(names) != info.count:
            raise CbenchError(f"{info.path}: has {info.count} bands but --bands names {len(names)}; name every "
                              "band of the file in file order")
        return names_spec
    if any(not d for d in info.descriptions):
        raise CbenchError(f"{info.path}: bands have no descriptions to map them to the model; pass --bands "
                          f"with {info.count} names in file order (e.g. B02,B03,B04,B08)")
    return [str(d) for d in info.descriptions]


class EncoderPool:
    """One encoder per distinct band spec (files may differ)."""

    def __init__(self, args: argparse.Namespace, device) -> None:
        from ..runner import parse_model_args

        self.args, self.device = args, device
        self.options = parse_model_args(args.model_args)
        self._by_bands: dict[tuple, Any] = {}

    def get(self, bands: str | list[str]):
        from ..api import create_encoder

        key = (bands,) if isinstance(bands, str) else tuple(bands)
        if key not in self._by_bands:
            enc = create_encoder(self.args.model, self.args.weights, bands=bands, sensor=self.args.sensor,
                                 weights_dir=self.args.weights_dir, seed=self.args.seed, device=self.device,
                                 **self.options)
            for note in enc.adaptations:
                print(f"cbench embed: {self.args.model}: {note}", file=sys.stderr)
            self._by_bands[key] = enc
        return self._by_bands[key]


def embed_windows(enc, info, wins, meta, batch_size: int, bar=None):
    """Pooled embeddings (N, D) float32 of the windows of one raster."""
    import numpy as np
    import torch

    from ..windows import read_windows

    out = np.empty((len(wins), enc.embed_dim), dtype=np.float32)
    for start in range(0, len(wins), batch_size):
        chunk = wins[start:start + batch_size]
        x = torch.from_numpy(read_windows(info.path, chunk))
        m = torch.from_numpy(meta[start:start + len(chunk)])
        res = enc(x, meta=m, want_maps=False)
        out[start:start + len(chunk)] = res.pooled.cpu().numpy()
        if bar is not None:
            bar.update(len(chunk))
    if not np.isfinite(out).all():
        raise CbenchError(f"{info.path}: the encoder returned NaN/inf embeddings; check the file for NaN or "
                          "no-data pixels")
    return out


def _progress(total: int, desc: str):
    from ..progress_bar import progress_bar

    return progress_bar(total, desc, enabled=True, unit="win")


# ----------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    from ..provenance import resolve_device
    from ..windows import grid_transform, open_raster, raster_time, window_grid, window_meta, write_geotiff

    files = collect_inputs(args.inputs)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CbenchError(f"--out {out}: cannot be created ({exc.strerror}); choose a writable folder") from None
    if args.table and Path(args.table).suffix.lower() != ".parquet":
        raise CbenchError(f"--table {args.table}: must end in .parquet")
    targets = output_names(files, out)
    infos = {f: open_raster(f, args.no_geo) for f in files}  # every header checked before any work
    pool = EncoderPool(args, resolve_device(args.device))
    done = skipped = 0
    for f in files:
        info, target = infos[f], targets[f]
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        enc = pool.get(file_bands(info, args.bands))
        size = args.window or enc.input_size
        stride = args.stride or size
        wins, (nr, nc) = window_grid(info.height, info.width, size, stride, where=str(f))
        meta = window_meta(info, wins, enc.patch_size, raster_time(info, args.time))
        bar = _progress(len(wins), f.name)
        emb = embed_windows(enc, info, wins, meta, args.batch_size, bar)
        bar.close()
        left = (info.height - (wins[-1].row_off + size), info.width - (wins[-1].col_off + size))
        if any(left):
            print(f"cbench embed: {f.name}: last {left[0]} rows / {left[1]} columns are not covered by a full "
                  f"window (grid {nr}×{nc}, window {size}, stride {stride})", file=sys.stderr)
        tags = {"CBENCH_MODEL": args.model, "CBENCH_WEIGHTS": enc.weights.label,
                "CBENCH_WEIGHTS_SHA256": enc.weights.sha256, "CBENCH_SOURCE": str(f), "CBENCH_WINDOW": size,
                "CBENCH_STRIDE": stride, "CBENCH_BANDS": ",".join(enc.bands),
                "CBENCH_TIME_DAYS": "" if math.isnan(float(meta[0, 2])) else float(meta[0, 2]),
                "CBENCH_PATCH_AREA_KM2": float(meta[0, 3]), "CBENCH_ADAPTATIONS": " | ".join(enc.adaptations)}
        write_geotiff(target, emb.reshape(nr, nc, -1).transpose(2, 0, 1).copy(),
                      info.crs if info.georeferenced else None, grid_transform(info.transform, size, stride), tags)
        done += 1
    if args.table:
        n = write_table([targets[f] for f in files], Path(args.table))
        print(f"cbench embed: wrote {n} windows to {args.table}", file=sys.stderr)
    print(f"cbench embed: {done} embedded, {skipped} skipped (exist; --overwrite to redo) into {out}",
          file=sys.stderr)
    return 0


def _apply(t, cols, rows):
    """Affine transform of pixel coordinates (arrays) → CRS coordinates."""
    return t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f


def write_table(rasters: list[Path], path: Path) -> int:
    """One row per window of every embedding raster: file, row, col, window bounds (raster CRS), lon/lat of
    the centre, time, embedding. GeoParquet (WGS84 polygons) when every raster is georeferenced."""
    import json

    import numpy as np
    import pandas as pd

    from ..atomic import atomic_file

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CbenchError("--table needs pyarrow; pip install pyarrow") from None
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from shapely.geometry import Polygon

    from ..windows import to_lonlat

    frames, geoms, all_geo = [], [], True
    for r in rasters:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(r) as src:
                emb, t, crs, tags = src.read(), src.transform, src.crs, src.tags()
        d, h, w = emb.shape
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        rows, cols = rows.ravel(), cols.ravel()
        size, stride = float(tags["CBENCH_WINDOW"]), float(tags["CBENCH_STRIDE"])
        half = size / stride / 2  # half a window in grid pixels
        cx, cy = _apply(t, cols + 0.5, rows + 0.5)
        x0, y0 = _apply(t, cols + 0.5 - half, rows + 0.5 - half)
        x1, y1 = _apply(t, cols + 0.5 + half, rows + 0.5 + half)
        frame = pd.DataFrame({"file": tags.get("CBENCH_SOURCE", str(r)), "row": rows, "col": cols,
                              "minx": np.minimum(x0, x1), "miny": np.minimum(y0, y1),
                              "maxx": np.maximum(x0, x1), "maxy": np.maximum(y0, y1),
                              "crs": crs.to_string() if crs else None})
        if crs is not None:
            lon, lat = to_lonlat(crs, np.asarray(cx), np.asarray(cy))
            for a, b, c, e in zip(frame.minx, frame.miny, frame.maxx, frame.maxy):
                xs, ys = to_lonlat(crs, np.array([a, c, c, a]), np.array([b, b, e, e]))
                geoms.append(Polygon(zip(xs, ys)).wkb)
        else:
            all_geo = False
            lon = lat = np.full(len(rows), np.nan)
        tday = tags.get("CBENCH_TIME_DAYS", "")
        frame["lon"], frame["lat"] = lon, lat
        frame["time_days"] = float(tday) if tday else np.nan
        frame["model"] = tags.get("CBENCH_MODEL")
        frame["embedding"] = list(emb.reshape(d, -1).T.astype(np.float32))
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if all_geo:
        table = table.append_column("geometry", pa.array(geoms, type=pa.binary()))
        geo = {"version": "1.0.0", "primary_column": "geometry",
               "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}}}  # CRS: OGC:CRS84
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    with atomic_file(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp)
    return len(df)
