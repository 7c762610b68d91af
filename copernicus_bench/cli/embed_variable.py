"""``cbench embed-variable``: compute a Copernicus-FM variable-name embedding with a local Llama-3.2-1B.

The released embeddings (``var_embed_llama3.2_1B.pt``) come from Llama-3.2-1B, but how they were pooled is
not documented; this command mean-pools the last hidden state over the name's tokens, so its vectors are
not guaranteed to match the released ones (docs/conventions.md, "Facts resolved").
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CAVEAT = ("mean of Llama's last hidden state over the name's tokens; the released embeddings' pooling is "
          "undocumented, so this vector may not match them")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed-variable",
        help="compute a variable-name embedding for Copernicus-FM's variable hypernetwork (needs transformers)",
        description=f"Embed a variable name with a local Llama-3.2-1B ({CAVEAT}). The result is added to an "
                    "embedding file usable with --model-args var_embed=FILE.",
    )
    p.add_argument("name", help='variable name, e.g. "Sentinel 5P Methane"')
    p.add_argument("--model-path", required=True, metavar="DIR",
                   help="local folder of a Hugging Face Llama-3.2-1B (config, tokenizer, weights)")
    p.add_argument("--key", default=None, metavar="K", help="short alias stored beside the name (e.g. s5p_ch4)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="embedding file to add to (default: var_embed_custom.pt in the weights folder; it starts "
                        "as a copy of the released file's entries when that file is present)")
    p.add_argument("--weights-dir", default=None, metavar="DIR", help="weights folder (default: see README)")
    p.set_defaults(func=run)


def embed_name(name: str, model_path: str) -> torch.Tensor:
    """(hidden,) mean-pooled last hidden state of ``name`` (no special tokens)."""
    import importlib.util
    from pathlib import Path

    import torch

    from copernicus_bench.errors import CbenchError

    if importlib.util.find_spec("transformers") is None:
        raise CbenchError("cbench embed-variable: the 'transformers' package is not installed; "
                          "pip install transformers (and put a Llama-3.2-1B in --model-path)")
    if not Path(model_path).is_dir():
        raise CbenchError(f"--model-path '{model_path}': not a folder; point it at a local Llama-3.2-1B")
    from transformers import AutoModel, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = AutoModel.from_pretrained(model_path, local_files_only=True, torch_dtype=torch.float32).eval()
    except Exception as exc:  # noqa: BLE001
        raise CbenchError(f"--model-path '{model_path}': cannot load a model and tokenizer "
                          f"({type(exc).__name__}); point it at a Hugging Face Llama-3.2-1B folder") from None
    ids = tok(name, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        hidden = model(**ids).last_hidden_state[0]  # (T, hidden)
    return hidden.mean(dim=0).float()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from copernicus_bench.errors import CbenchError
    from copernicus_bench.models.copernicusfm import varembed
    from copernicus_bench.paths import weights_dir
    from copernicus_bench.weights import load_checkpoint

    vec = embed_name(args.name, args.model_path)
    if vec.numel() != varembed.EMBED_DIM:
        raise CbenchError(f"--model-path '{args.model_path}': hidden size {vec.numel()} is not "
                          f"{varembed.EMBED_DIM}; Copernicus-FM's language_proj expects a Llama-3.2-1B")
    folder = weights_dir(args.weights_dir)
    out = Path(args.out) if args.out else folder / "var_embed_custom.pt"
    table: dict[str, torch.Tensor] = {}
    if out.is_file():
        table.update(load_checkpoint(out))
    elif (folder / varembed.FILENAME).is_file():
        table.update(varembed.read_embeddings(folder / varembed.FILENAME).table)
    table[args.name] = vec
    if args.key:
        table[args.key] = vec
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    torch.save(table, tmp)
    tmp.replace(out)
    print(f"cbench embed-variable: wrote '{args.name}' to {out} ({CAVEAT})", file=sys.stderr)
    print(out)
    return 0
