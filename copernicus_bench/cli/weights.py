"""``cbench weights download --model NAME``: fetch every released file a model needs into the weights folder.

Each file is downloaded into ``.<name>.part`` (resumed with an HTTP Range request on the next call),
checked against the sha256 prefix its pinned name carries, and renamed into place only when complete.
Files already present are verified the same way and not downloaded again. Offline, one sentence names
every file still missing with its source, its size and the folder.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CbenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="download the released weights files of a model",
                       description="Manage the weights folder (checkpoints and variable embeddings).")
    wsub = p.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    d = wsub.add_parser("download", help="fetch every file a model needs (resumable, checksummed)",
                        description="Fetch every released file MODEL needs into the weights folder: resumable "
                                    "(.part files), verified against the sha256 prefix in the pinned name.")
    d.add_argument("--model", required=True,
                   help="model name(s), comma-separated, or 'all' (see 'cbench models')")
    d.add_argument("--weights-dir", help="weights folder (default ~/.cache/copernicus-bench/weights, "
                                         "$CBENCH_WEIGHTS_DIR)")
    d.set_defaults(func=download)


def _models(value: str) -> list[str]:
    from ..models_registry import MODELS
    from ..registry import closest

    names = MODELS.names() if value.strip() == "all" else [m.strip() for m in value.split(",") if m.strip()]
    for name in names:
        if name not in MODELS:
            raise CbenchError(f"--model: unknown model '{name}'{closest(name, MODELS.names())}; see 'cbench models'")
    return list(names)


def download(args: argparse.Namespace) -> int:
    from .. import paths
    from ..models_registry import create_model
    from ..weights import (
        _DownloadError,
        download_spec,
        file_sha256,
        find_weights,
        missing_files_message,
        model_weight_files,
        part_path,
    )

    folder = paths.weights_dir(args.weights_dir)
    failed = 0
    for name in _models(args.model):
        specs = model_weight_files(create_model(name, weights_dir=str(folder), seed=0))
        if not specs:
            print(f"cbench weights: {name}: needs no weights files", file=sys.stderr)
            continue
        missing = []
        for spec in specs:
            found = find_weights(spec, folder)
            if found is not None:
                sha = file_sha256(found)
                ok = spec.sha256_prefix is None or found.name != spec.primary or sha.startswith(spec.sha256_prefix)
                state = "present" if ok else "present but its sha256 does not match its name"
                print(f"cbench weights: {name}: {found.name} {state} (sha256 {sha[:12]}…)", file=sys.stderr)
                continue
            resume = part_path(folder / spec.primary)
            how = f"resuming {resume.stat().st_size} bytes" if resume.exists() else spec.size or "size unknown"
            print(f"cbench weights: {name}: downloading {spec.primary} ({how}) from {spec.url}", file=sys.stderr)
            try:
                path = download_spec(spec, folder, progress=True)
            except Exception as exc:  # noqa: BLE001 - any network failure becomes one sentence
                missing.append((spec, exc.reason if isinstance(exc, _DownloadError) else type(exc).__name__))
                continue
            print(f"cbench weights: {name}: {path.name} ok (sha256 {file_sha256(path)[:12]}…)", file=sys.stderr)
        if missing:
            failed += 1
            reason = missing[0][1]
            msg = missing_files_message(name, [s for s, _ in missing], folder, reason)
            # here the first way forward is this very command: say the resumable part instead
            msg = msg.split("; either")[0] + "; run this command again to resume, or put the files in that folder by hand"
            print(f"cbench: error: {msg}", file=sys.stderr)
    return 1 if failed else 0
