"""Variable-name embeddings for Copernicus-FM's variable hypernetwork (S5P gases, DEM).

The authors ship a torch-saved dict ``{variable name: tensor(2048)}`` (Llama-3.2-1B embeddings of the names)
as ``var_embed_llama3.2_1B.pt`` at the root of the hub repo ``wangyi111/Copernicus-FM`` (their README also
names ``varname_embed/varname_embed_llama3.2_1B.pt``). No pinned revision is known, so the file's sha256 is
recorded wherever it is used (:attr:`VariableEmbeddings.sha256`). How the embeddings were pooled from Llama
is not documented.

For random-init runs only, :func:`random_embedding` draws a labelled stand-in from the run's seed.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from copernicus_bench.errors import CbenchError
from copernicus_bench.weights import WeightsSpec, ensure_weights, file_sha256, load_checkpoint

FILENAME = "var_embed_llama3.2_1B.pt"
URL = f"https://huggingface.co/wangyi111/Copernicus-FM/resolve/main/{FILENAME}"
EMBED_DIM = 2048

SPEC = WeightsSpec(
    model="Copernicus-FM variable embeddings",
    filenames=(FILENAME, "varname_embed_llama3.2_1B.pt"),
    url=URL,
    note="unpinned (resolve/main); its sha256 is recorded with every result that uses it",
    size="<1 MB: one 2048-d vector per variable name; size not published",
)

#: the short keys the reference code adds (``dynamic_hypernetwork*.py``) → names in the file
ALIASES: dict[str, str] = {
    "s5p_co": "Sentinel 5P Carbon Monoxide",
    "s5p_no2": "Sentinel 5P Nitrogen Dioxide",
    "s5p_o3": "Sentinel 5P Ozone",
    "s5p_so2": "Sentinel 5P Sulfur Dioxide",
    "dem": "Copernicus Digital Elevation Model",
}


@dataclass
class VariableEmbeddings:
    """A loaded embedding file: name → (2048,) float tensor, plus where it came from."""

    table: dict[str, Tensor]
    path: str
    sha256: str
    aliases: dict[str, str] = field(default_factory=lambda: dict(ALIASES))

    def names(self) -> list[str]:
        return sorted(set(self.table) | {a for a, n in self.aliases.items() if n in self.table})

    def resolve(self, key: str) -> str:
        """The file's name for ``key`` (itself, or the long name of an alias)."""
        if key in self.table:
            return key
        if key in self.aliases and self.aliases[key] in self.table:
            return self.aliases[key]
        raise CbenchError(f"variable embeddings {self.path}: no entry for '{key}' (known: {self.names()}); "
                          "use one of these keys or compute it with 'cbench embed-variable'")

    def __getitem__(self, key: str) -> Tensor:
        return self.table[self.resolve(key)]

    def __contains__(self, key: str) -> bool:
        try:
            self.resolve(key)
        except CbenchError:
            return False
        return True


_cache: dict[tuple[str, float, int], VariableEmbeddings] = {}


def read_embeddings(path: str | os.PathLike) -> VariableEmbeddings:
    """Read and validate an embedding file (``weights_only``); cached per (path, mtime, size)."""
    p = Path(path)
    if not p.is_file():
        raise CbenchError(f"variable embeddings '{p}' do not exist; pass the path of {FILENAME} or put it in "
                          "the weights folder")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime, st.st_size)
    if key in _cache:
        return _cache[key]
    obj = load_checkpoint(p)
    table: dict[str, Tensor] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, Tensor) or value.numel() != EMBED_DIM:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise CbenchError(f"variable embeddings {p}: entry {name!r} is {shape}, not a {EMBED_DIM}-d tensor; "
                              f"use the released {FILENAME}")
        table[name] = value.detach().reshape(EMBED_DIM).float()
    emb = VariableEmbeddings(table=table, path=str(p), sha256=file_sha256(p))
    _cache[key] = emb
    return emb


def load_embeddings(weights_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                    download: bool = True, others: tuple[WeightsSpec, ...] = ()) -> VariableEmbeddings:
    """The embedding file from ``path`` if given, else from the weights folder (downloaded once when absent).

    Offline with the file absent, raises :class:`~copernicus_bench.errors.WeightsNotFoundError`: one
    sentence naming the file, its URL and the folder.
    """
    if path is not None:
        return read_embeddings(path)
    from copernicus_bench.paths import weights_dir as default_weights_dir

    folder = default_weights_dir(weights_dir)
    return read_embeddings(ensure_weights(SPEC, folder, download=download, model="copernicus-fm", others=others))


def is_random_stand_in(path: str | os.PathLike) -> bool:
    """True when ``cbench pretrain`` wrote this file with random embeddings (its ``.RANDOM.txt`` sidecar)."""
    p = Path(path)
    return p.with_name(p.stem + ".RANDOM.txt").is_file()


def random_embedding(key: str, seed: int) -> Tensor:
    """A standard-normal (2048,) stand-in drawn from ``seed`` and the variable key (random-init runs only;
    the caller must label it as such)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(ALIASES.get(key, key).encode()))
    return torch.randn(EMBED_DIM, generator=g)
