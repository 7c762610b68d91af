"""``cbench predict``: a head trained with ``cbench run --save-head`` on new GeoTIFFs → prediction rasters.

The frozen encoder is rebuilt from the head file (model, options, seed, tier; its weights must hash to the
ones the head was trained on) and runs through the same windows as ``cbench embed``. Dense tasks
(segmentation, regression) cover every pixel — the last row/column of windows is aligned to the edge, and
where windows overlap their logits are averaged — and write a raster on the input's own grid (same CRS and
transform): class indices (uint8/uint16, ``255``/``65535`` = no window) or values (float32, NaN = none).
Classification tasks write one pixel per window on the embedding grid: the class index (multiclass) or one
probability band per class (multilabel). Outputs are atomic; existing ones are skipped unless
``--overwrite``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import CbenchError


def add_parser(sub) -> None:
    from .embed import add_common_options

    p = sub.add_parser("predict", help="apply a trained probe (--save-head) to GeoTIFFs: prediction rasters",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("inputs", nargs="+", help="GeoTIFF files, folders of them, or .txt lists of paths")
    p.add_argument("--head", required=True, help="head file written by 'cbench run --save-head'")
    p.add_argument("--task-card", help="the task's card (default: the card stored in the head file); must match")
    p.add_argument("--checkpoint", help="encoder checkpoint, when the head was trained on a user checkpoint")
    p.add_argument("--out", required=True, help="folder for <name>.tif prediction rasters")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..api import encoder_for_card, load_head
    from ..provenance import resolve_device
    from ..windows import grid_transform, open_raster, raster_time, window_grid, window_meta, write_geotiff
    from .embed import _progress, collect_inputs, output_names

    record = load_head(args.head)
    card = record["card"]
    if args.task_card:
        from ..tasks.custom import load_user_card

        given = load_user_card(args.task_card)
        if given.digest() != card.digest():
            raise CbenchError(f"--task-card {args.task_card}: differs from the card the head {args.head} was "
                              "trained with; use that card or retrain the head")
    files = collect_inputs(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = output_names(files, out)
    infos = {f: open_raster(f, args.no_geo) for f in files}
    for f, info in infos.items():
        if info.count != card.num_bands:
            raise CbenchError(f"{f}: has {info.count} bands, the task card lists {card.num_bands} "
                              f"({','.join(card.band_names)}); give images with the card's bands in card order")
    device = resolve_device(args.device)
    enc = _encoder(record, args, device, encoder_for_card)
    head = record["head"].to(device)
    for p in head.parameters():
        p.requires_grad_(False)
    size = args.window or card.native_size
    done = skipped = 0
    for f in files:
        info, target = infos[f], targets[f]
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        stride = args.stride or size
        wins, (nr, nc) = window_grid(info.height, info.width, size, stride, cover=card.is_dense, where=str(f))
        meta = window_meta(info, wins, card.kernel_size, raster_time(info, args.time))
        bar = _progress(len(wins), f.name)
        from ..windows import read_windows

        outputs = 1 if card.task_type == "regression" else card.num_classes
        if card.is_dense:
            acc = np.zeros((outputs, info.height, info.width), dtype=np.float32)
            hits = np.zeros((info.height, info.width), dtype=np.float32)
        else:
            per_window = np.zeros((len(wins), outputs), dtype=np.float32)
        for start in range(0, len(wins), args.batch_size):
            chunk = wins[start:start + args.batch_size]
            x = torch.from_numpy(read_windows(f, chunk))
            m = torch.from_numpy(meta[start:start + len(chunk)])
            with torch.no_grad():
                feats = enc(x, meta=m, want_maps=card.is_dense)
                if card.is_dense:
                    logits, _ = head([t.to(device) for t in feats.maps], (size, size))
                else:
                    logits = head(feats.pooled.to(device))
            logits = logits.float().cpu().numpy()
            for k, w in enumerate(chunk):
                if card.is_dense:
                    acc[:, w.row_off:w.row_off + size, w.col_off:w.col_off + size] += logits[k]
                    hits[w.row_off:w.row_off + size, w.col_off:w.col_off + size] += 1
                else:
                    per_window[start + k] = logits[k]
            bar.update(len(chunk))
        bar.close()
        tags = {"CBENCH_HEAD": str(args.head), "CBENCH_TASK": card.slug, "CBENCH_MODEL": record["model"],
                "CBENCH_SOURCE": str(f), "CBENCH_WINDOW": size, "CBENCH_STRIDE": stride,
                "CBENCH_CLASSES": ",".join(card.classes)}
        crs = info.crs if info.georeferenced else None
        if card.is_dense:
            array, nodata = _dense_output(card, acc, hits)
            write_geotiff(target, array, crs, info.transform, tags, nodata=nodata)
        else:
            array, nodata = _window_output(card, per_window, nr, nc)
            write_geotiff(target, array, crs, grid_transform(info.transform, size, stride), tags, nodata=nodata,
                          descriptions=list(card.classes) if card.task_type == "multilabel" else None)
        done += 1
    print(f"cbench predict: {done} predicted, {skipped} skipped (exist; --overwrite to redo) into {out}",
          file=sys.stderr)
    return 0


def _encoder(record: dict, args: argparse.Namespace, device, encoder_for_card):
    """The encoder the head was trained on (same model, options, seed, tier), weights checked by hash."""
    w = record["weights"]
    weights = {"random-init": "random", "released": None}.get(w["source"], args.checkpoint or w.get("file"))
    if weights is None and w["source"] == "user":
        raise CbenchError(f"--head {args.head}: was trained on a user checkpoint; pass it with --checkpoint")
    enc = encoder_for_card(record["model"], record["card"], weights, weights_dir=args.weights_dir,
                           seed=int(record["seed"]), tier=record["tier"], device=device, **record["model_args"])
    if enc.weights.sha256 != w["sha256"]:
        raise CbenchError(f"--head {args.head}: trained on encoder weights sha256 {w['sha256'][:12]}…, but "
                          f"{record['model']} now has {enc.weights.sha256[:12]}…; use the same weights")
    return enc


def _dense_output(card, acc, hits):
    import numpy as np

    from ..probes.train_utils import unzscore

    covered = hits > 0
    mean = acc / np.maximum(hits, 1)[None]
    if card.task_type == "regression":
        import torch

        values = unzscore(card, torch.from_numpy(mean[0])).numpy().astype(np.float32)
        values[~covered] = np.nan
        return values[None], math.nan
    nodata = 255 if card.num_classes < 255 else 65535
    dtype = "uint8" if nodata == 255 else "uint16"
    classes = mean.argmax(axis=0).astype(dtype)
    classes[~covered] = nodata
    return classes[None], nodata


def _window_output(card, per_window, nr, nc):
    import numpy as np

    if card.task_type == "multilabel":
        probs = 1.0 / (1.0 + np.exp(-per_window))
        return probs.reshape(nr, nc, -1).transpose(2, 0, 1).astype(np.float32).copy(), None
    dtype = "uint8" if card.num_classes < 255 else "uint16"
    return per_window.argmax(axis=1).reshape(1, nr, nc).astype(dtype), None
