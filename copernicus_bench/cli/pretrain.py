"""``cbench pretrain``: Copernicus-FM pretraining (MAE over 8 Sentinel modalities + distillation)."""

from __future__ import annotations

import argparse
import sys


def _teacher_weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{part}' is not NAME=WEIGHT") from None
    unknown = set(out) - {"dinov2", "softcon_s2", "softcon_s1"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown teacher(s) {sorted(unknown)}; use dinov2, softcon_s2, softcon_s1")
    return out


# choices of the parity options (kept here so the parser needs no torch import)
LOSS_PAIRINGS = ("consistent", "reference")
STUDENT_FEATURES = ("reference", "normed-patch")
AREA_MODES = ("fixed", "crop")
S3_FIX_MODES = ("auto", "reference", "off")
REFERENCE_CHOICES = {"meta_drop": 0.0, "loss_pairing": "reference", "student_feature": "reference",
                     "area_mode": "fixed", "s3_band_fix": "reference", "oa21_nm": 1029.0}


def parity_options(args: argparse.Namespace) -> dict:
    """The parity fields of ``PretrainConfig`` from the flags: explicit flag > ``--reference`` > our default."""
    out = {}
    for key, ref in REFERENCE_CHOICES.items():
        value = getattr(args, key, None)
        if value is None and getattr(args, "reference", False):
            value = ref
        if value is not None:
            out[key] = value
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain Copernicus-FM on Copernicus-Pretrain shards (MAE + distillation), export for 'cbench run'",
        description="Pretrain Copernicus-FM (arXiv 2503.11849) on Copernicus-Pretrain WebDataset shards. "
                    "Checkpoints go to OUT/checkpoints (resumed automatically), the encoder is exported to "
                    "OUT/weights/CopernicusFM_ViT_base_varlang_e100.pth with the variable embeddings used, so "
                    "'cbench run --model copernicus-fm --weights-dir OUT/weights' can score it.",
    )
    p.add_argument("--shards", required=True, metavar="GLOB_OR_DIR",
                   help="folder of *.tar shards, a glob, a brace pattern or a comma-separated list")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoints, logs, weights)")
    p.add_argument("--config", default="base", choices=("tiny", "base"), help="model size (default base)")
    p.add_argument("--max-steps", type=int, default=1000, metavar="N", help="optimizer steps in total")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="per-device batch size")
    p.add_argument("--lr", type=float, default=None, help="absolute lr (default 1.5e-4 × effective batch / 256)")
    p.add_argument("--base-lr", type=float, default=1.5e-4, help="base lr scaled by effective batch / 256")
    p.add_argument("--warmup-steps", type=int, default=None, metavar="N", help="default 5%% of --max-steps")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--mask-ratio", type=float, default=0.7)
    p.add_argument("--meta-drop", type=float, default=None, metavar="P",
                   help="probability to drop each metadata group (location, time, area) per step (default 0.7, "
                        "the paper's; the reference code's default is 0)")
    p.add_argument("--reference", action="store_true",
                   help="the reference code's choices (zhu-xlab/Copernicus-FM main_pretrain.py) wherever ours "
                        "differ: --meta-drop 0 --loss-pairing reference --s3-band-fix reference --oa21-nm 1029 "
                        "(explicit flags still win)")
    p.add_argument("--loss-pairing", choices=LOSS_PAIRINGS, default=None,
                   help="MAE target flattening: consistent (default) or reference ((i,j,c) target vs (c,i,j) "
                        "prediction, the reference's mismatch)")
    p.add_argument("--student-feature", choices=STUDENT_FEATURES, default=None,
                   help="distillation student pooling: reference (default: un-normed mean of all tokens incl. "
                        "CLS) or normed-patch")
    p.add_argument("--area-mode", choices=AREA_MODES, default=None,
                   help="patch-area metadata: fixed (default, (kernel·GSD)²) or crop (× crop area fraction)")
    p.add_argument("--s3-band-fix", choices=S3_FIX_MODES, default=None,
                   help="S3 Oa01/Oa10 ×1e-9: auto (default, only where stored ~1e9 too large), reference "
                        "(always), off")
    p.add_argument("--oa21-nm", type=float, default=None, metavar="NM",
                   help="Oa21 centre wavelength (default 1020, ESA; the reference's pretraining uses 1029)")
    p.add_argument("--teacher-weights", type=_teacher_weights, default={}, metavar="NAME=W,...",
                   help="distillation weights (default dinov2=0.1,softcon_s2=0.2,softcon_s1=0.2; 0 = off). A "
                        "teacher is off when its weights are not in --weights-dir")
    p.add_argument("--size-scale", type=float, default=1.0, metavar="F",
                   help="scale every modality's input size (1 = the paper's; smaller for quick CPU checks)")
    p.add_argument("--save-every", type=int, default=500, metavar="N", help="checkpoint every N steps")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="resume from this checkpoint (default: OUT/checkpoints/last.ckpt when present)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="initialise the encoder from a Copernicus-FM checkpoint (continual pretraining)")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="where teachers and var_embed_llama3.2_1B.pt are looked up (no downloads)")
    p.add_argument("--var-embed", default=None, metavar="FILE", help="variable-embedding file to use")
    p.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    p.add_argument("--strategy", default="auto", choices=("auto", "ddp", "fsdp"))
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--num-workers", type=int, default=2, metavar="N", help="data-loading workers per device")
    p.add_argument("--log-every", type=int, default=10, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from copernicus_bench.errors import CbenchError
    from copernicus_bench.models.copernicusfm.pretrain import PretrainConfig, run_pretraining

    if args.max_steps < 1 or args.batch_size < 1 or args.save_every < 1:
        raise CbenchError("--max-steps, --batch-size and --save-every must be ≥ 1")
    if not 0.0 <= args.mask_ratio < 1.0:
        raise CbenchError(f"--mask-ratio {args.mask_ratio}: must be in [0, 1)")
    if args.meta_drop is not None and not 0.0 <= args.meta_drop <= 1.0:
        raise CbenchError(f"--meta-drop {args.meta_drop}: must be in [0, 1]")
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    defaults = PretrainConfig().teacher_weights
    cfg = PretrainConfig(config=args.config, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                         base_lr=args.base_lr, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
                         mask_ratio=args.mask_ratio, size_scale=args.size_scale, seed=args.seed,
                         teacher_weights={**defaults, **args.teacher_weights}, **parity_options(args))
    summary = run_pretraining(args.shards, args.out, cfg, save_every=args.save_every, resume=args.resume,
                              init=args.init, weights_dir=args.weights_dir, var_embed=args.var_embed,
                              devices=devices, strategy=args.strategy, num_nodes=args.num_nodes,
                              num_workers=args.num_workers, accelerator=args.accelerator, log_every=args.log_every)
    print(f"cbench pretrain: step {summary['step']}, teachers {summary['teachers'] or 'none'}, "
          f"random variable embeddings: {summary['random_var_embeddings']}", file=sys.stderr)
    print(json.dumps({k: summary.get(k) for k in ("step", "checkpoint", "weights")}))
    return 0
