"""``cbench run``: score models on tasks with frozen-encoder probing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CbenchError


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in _csv(value)]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"--seeds {value!r} is malformed; use integers like 0,1,2") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {value!r}: seeds must be distinct non-negative integers")
    return seeds


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive integer")
    return n


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-workers {value!r}: use an integer >= 0 or 'auto'") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--num-workers {value!r}: use an integer >= 0 or 'auto'")
    return n


def _model_args(value: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _csv(value):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"--model-args item {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        pairs.append((k.strip(), v.strip()))
    from ..modelargs import check_pairs

    try:
        return check_pairs(pairs)
    except CbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--model-args ")) from None


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``demo``-like commands."""
    p.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated seeds (default 0; 0,1,2 for a table)")
    p.add_argument("--tier", choices=("full", "smoke"), default="full",
                   help="full = the paper's protocol (default); smoke = a handful of samples, 2 epochs, ~64 px")
    p.add_argument("--protocol", choices=("cached", "paper", "knn", "finetune"), default="cached",
                   help="cached = flip views encoded once (default); paper = re-encode augmented inputs each epoch; "
                        "knn = weighted kNN on cached features (classification); finetune = encoder trained end to end")
    p.add_argument("--limit", type=_positive, help="use the first N samples of each split (stamped in the result)")
    p.add_argument("--epochs", type=_positive, help="override the card's epochs (stamped in the result)")
    p.add_argument("--batch-size", type=_positive, help="override the card's batch size (stamped in the result)")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--num-workers", type=_workers, default="auto",
                   help="DataLoader workers for reading and encoding: N, or auto (default: one per free core, "
                        "max 8; 0 under 256 samples)")
    p.add_argument("--input-cache-budget", type=float, default=64.0, metavar="GB",
                   help="dense tasks over --cache-budget: keep decoded inputs on disk up to this size (0: off)")
    p.add_argument("--head-precision", choices=("fp32", "bf16"), default="fp32",
                   help="probe head precision: fp32 (default, paper-compatible) or bf16 autocast (own results)")
    p.add_argument("--compile-head", action="store_true", help="run the probe head through torch.compile")
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/copernicus-bench/features, $CBENCH_CACHE_DIR)")
    p.add_argument("--cache-budget", type=float, default=8.0, metavar="GB",
                   help="largest dense feature cache per job in GB; above it maps are encoded on the fly")
    p.add_argument("--cache-dtype", choices=("float16", "float32"), default="float16",
                   help="precision of cached features (default float16)")
    p.add_argument("--weights-dir", help="checkpoints folder (default ~/.cache/copernicus-bench/weights)")
    p.add_argument("--model-args", type=_model_args, default=(), metavar="K=V,...",
                   help="keyword arguments for the model factory, e.g. config=tiny,random_init=true")
    p.add_argument("--out", default="results", help="results folder (default ./results)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo results that already exist (reads cached features unless --refresh-cache)")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--refresh-cache", action="store_true",
                       help="recompute the features of every job that runs, replacing their cache entries")
    cache.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the feature cache (features kept in a temporary folder "
                            "for the job)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the jobs, which are done, and a rough time and disk estimate; run nothing")


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="probe frozen encoders on tasks and write result files",
                       description="Freeze each encoder, train the paper's probe on each task, write one JSON "
                                   "per (model, weights, task, tier, protocol, seed, overrides).")
    p.add_argument("--model", required=True, type=_csv, help="model name(s), comma-separated (see 'cbench models')")
    p.add_argument("--task", help="'all' or comma-separated task slugs (see 'cbench tasks')")
    p.add_argument("--task-card", metavar="FILE", help="your own task: its card file (layout: README 'Your own "
                                                        "data'); its folder is the data root")
    p.add_argument("--save-head", metavar="PATH", help="store the trained head (for 'cbench predict'); one job only")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data-root", help="data root (default ./data or $CBENCH_DATA_ROOT)")
    src.add_argument("--sample", action="store_true", help="use the built-in generated sample (numbers mean nothing)")
    add_run_options(p)
    p.add_argument("--train-fraction", default="1.0", metavar="F[,F2]",
                   help="stratified subsets of the training split, e.g. 0.01,0.1,1.0 (same subset for every model)")
    p.add_argument("--layer-decay", type=float, default=1.0, help="--protocol finetune: layer-wise lr decay (e.g. 0.75)")
    p.add_argument("--freeze-patch-embed", action="store_true", help="--protocol finetune: keep patch embeddings fixed")
    p.add_argument("--launcher", default="local", help="local (default) or ray")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import paths
    from ..dryrun import check_writable, dry_run
    from ..models_registry import MODELS
    from ..registry import closest
    from ..runner import expand_grid, make_adapter
    from ..tasks import resolve_tasks

    if args.launcher not in ("local", "ray"):
        raise CbenchError(f"--launcher {args.launcher!r} is unknown; use 'local' or 'ray'")
    for name in args.model:
        if name not in MODELS:
            raise CbenchError(f"--model: unknown model '{name}'{closest(name, MODELS.names())}; "
                              "see 'cbench models'")
    if args.task_card:
        from ..tasks.custom import load_user_card

        if args.task or args.sample or args.data_root:
            raise CbenchError("--task-card: names its own task and data; drop --task/--sample/--data-root")
        cards = [load_user_card(args.task_card)]
    elif not args.task:
        raise CbenchError("--task: required (a slug, a list or 'all'), or give --task-card FILE for your own task")
    else:
        cards = resolve_tasks(args.task)
    check_writable(args.out)  # a refused command creates no folder: the runner creates --out when a job runs
    from ..provenance import resolve_device

    resolve_device(args.device)  # --device cuda without CUDA: one line before any job starts
    if not args.sample and not args.task_card:
        root = paths.data_root(args.data_root)
        if not root.is_dir():
            raise CbenchError(f"--data-root {root} does not exist; download with 'cbench download --task all "
                              f"--data-root {root}' or use --sample")
    common = dict(tier=args.tier, protocol=args.protocol, data_root=args.data_root, sample=args.sample,
                  weights_dir=args.weights_dir, cache_dir=args.cache_dir, out_dir=args.out, device=args.device,
                  batch_size=args.batch_size, epochs=args.epochs, limit=args.limit, num_workers=args.num_workers,
                  input_cache_gb=args.input_cache_budget, head_precision=args.head_precision,
                  compile_head=args.compile_head,
                  cache_budget_gb=args.cache_budget, cache_dtype=args.cache_dtype, model_args=args.model_args, overwrite=args.overwrite,
                  cache_mode="off" if args.no_cache else "refresh" if args.refresh_cache else "use",
                  task_card=str(Path(args.task_card).resolve()) if args.task_card else None, save_head=args.save_head)
    if args.save_head and len(args.model) * len(args.seeds) != 1:
        raise CbenchError("--save-head: stores one head; give one --model and one --seeds value")
    explicit = bool(args.task_card) or args.task.strip() != "all"
    from ..fractions import parse_fractions
    from ..protocols import precheck

    fractions = parse_fractions(args.train_fraction)
    specs = []
    for name in args.model:
        probe = expand_grid([name], [cards[0].slug], [args.seeds[0]], **common)[0]
        adapter = make_adapter(probe)
        for card in cards:
            reason = adapter.applicability(card)
            if reason and explicit:
                raise CbenchError(f"model '{name}' does not apply to task '{card.slug}': {reason}")
            precheck(args.protocol, name, adapter, card, explicit)
        for f in fractions:
            tasks = [c.slug for c in cards if not (args.protocol == "knn" and c.is_dense)]  # knn: classification
            specs += expand_grid([name], tasks, args.seeds, **common, train_fraction=f,
                                 layer_decay=args.layer_decay, freeze_patch_embed=args.freeze_patch_embed)
    for spec in specs[:1]:
        spec.validate()  # the runner validates every job too; this fails the whole command before any job
    if args.sample:
        print("cbench: using the built-in generated sample: the numbers say nothing about the models",
              file=sys.stderr)
    if getattr(args, "dry_run", False):
        return dry_run(specs)
    outcomes = _launch(specs, args)
    _summary(outcomes)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _launch(specs, args):
    from ..launchers import launch

    return launch(specs, launcher=args.launcher, ray_address=args.ray_address)


def _summary(outcomes) -> None:
    from collections import Counter

    from tabulate import tabulate

    rows = []
    for o in outcomes:
        if o.status in ("done", "skipped", "failed"):
            metric = f"{o.metric:.3f}" if o.metric is not None else ""
            rows.append([o.spec.model, o.spec.task, o.spec.seed, o.status, metric,
                         o.message if o.status == "failed" else (o.path or "")])
    counts = Counter(o.status for o in outcomes)
    if rows and len(rows) <= 60:
        print(tabulate(rows, headers=["model", "task", "seed", "status", "metric", "file / message"],
                       tablefmt="simple", maxcolwidths=[None, None, None, None, None, 70]), file=sys.stderr)
    print("cbench run: " + ", ".join(f"{counts[k]} {k}" for k in ("done", "skipped", "not-applicable", "failed")
                                     if counts[k]), file=sys.stderr)
