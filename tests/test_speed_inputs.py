"""Issue 13: the input cache (decoded, pipeline-applied inputs), DataLoader worker settings and the head's
efficiency options (precision, channels-last) — all fast, CPU only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from copernicus_bench.cards import TaskCard
from copernicus_bench.encoder import InputPipeline
from copernicus_bench.features import (
    AUTO_WORKERS_MIN_SAMPLES,
    OnTheFlySource,
    collate_loader,
    encode_batch,
    resolve_num_workers,
)
from copernicus_bench.input_cache import InputCacheDataset, cached_inputs, identity_pipeline, input_bytes


class _Counting(Dataset):
    """Physical-unit samples (C=3, 20×20) that count how often they are decoded."""

    def __init__(self, n: int, dates: int = 1, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        shape = (n, dates, 3, 20, 20) if dates > 1 else (n, 3, 20, 20)
        self.images = 1000 + 300 * torch.randn(shape, generator=g)
        self.targets = torch.randint(0, 4, (n, 20, 20), generator=g)
        self.meta = torch.tensor([[10.0, 50.0, 19000.0 + i, 0.0256] for i in range(n)])
        if dates > 1:
            self.meta = self.meta[:, None].repeat(1, dates, 1)
        self.reads = 0
        self.root = "/synthetic"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        return {"image": self.images[i], "target": self.targets[i], "meta": self.meta[i]}


def _card(dates: int = 1) -> TaskCard:
    from copernicus_bench.tasks import get_card

    return get_card("flood-s1" if dates > 1 else "dfc2020-s1")


def _pipeline(dates: int = 1) -> InputPipeline:
    mean = tuple((900.0 + 10 * d, 1000.0, 1100.0) for d in range(dates))
    std = tuple((250.0, 300.0, 350.0) for _ in range(dates))
    return InputPipeline(slots=(2, 0, None, 1), norm="meanstd", mean=mean, std=std, resolution=32)


@pytest.mark.parametrize("dates", [1, 2])
def test_cached_inputs_equal_the_pipeline_applied_decoded_inputs(tmp_path, dates):
    card, pipe, ds = _card(dates), _pipeline(dates), _Counting(6, dates)
    cached, hit = cached_inputs(tmp_path, card, pipe, "train", ds, {"split.csv": "abc"}, None, "float32")
    assert not hit and len(cached) == 6 and ds.reads == 6
    for i in (0, 5):
        want = (torch.stack([pipe.apply(ds.images[i][None, t], date=t)[0] for t in range(dates)])
                if dates > 1 else pipe.apply(ds.images[i][None])[0])
        got = cached[i]
        torch.testing.assert_close(got["image"], want, rtol=1e-6, atol=1e-6)
        assert torch.equal(got["target"], ds.targets[i]) and got["target"].dtype == ds.targets.dtype
        torch.testing.assert_close(got["meta"], ds.meta[i])  # float32: days since 1970 stay exact
    # identity pipeline on cached inputs == the real pipeline on decoded inputs
    ident = identity_pipeline(pipe)
    x = torch.stack([cached[i]["image"] for i in range(2)])
    if dates > 1:
        x = x[:, 0]
    torch.testing.assert_close(ident.apply(x), pipe.apply(ds.images[:2, 0] if dates > 1 else ds.images[:2]),
                               rtol=1e-6, atol=1e-6)
    # second call: a hit, nothing decoded again
    again, hit = cached_inputs(tmp_path, card, pipe, "train", ds, {"split.csv": "abc"}, None, "float32")
    assert hit and ds.reads == 6 and again.folder == cached.folder


def test_input_cache_key_follows_content_and_float16_rounds_only_the_image(tmp_path):
    card, pipe, ds = _card(), _pipeline(), _Counting(4)
    a, _ = cached_inputs(tmp_path, card, pipe, "train", ds, {"f": "1"}, None, "float16")
    b, hit_b = cached_inputs(tmp_path, card, pipe, "train", ds, {"f": "2"}, None, "float16")  # other files
    c, hit_c = cached_inputs(tmp_path, card, _pipeline().__class__(**{**_pipeline().__dict__, "resolution": 16}),
                             "train", ds, {"f": "1"}, None, "float16")
    assert not hit_b and not hit_c and len({a.folder, b.folder, c.folder}) == 3
    arr = np.load(a.folder / "image.npy", mmap_mode="r")
    assert arr.dtype == np.float16 and arr.shape == (4, 4, 32, 32)
    assert np.load(a.folder / "meta.npy").dtype == np.float32
    want = pipe.apply(ds.images[:1])[0]
    torch.testing.assert_close(a[0]["image"], want, rtol=2e-3, atol=2e-3)
    assert input_bytes(card, pipe, 4) == arr.nbytes


def test_input_cache_dataset_pickles_without_its_arrays(tmp_path):
    import pickle

    cached, _ = cached_inputs(tmp_path, _card(), _pipeline(), "val", _Counting(3), {}, None)
    cached[0]
    clone = pickle.loads(pickle.dumps(cached))
    assert isinstance(clone, InputCacheDataset) and clone._arrays is None
    assert torch.equal(clone[2]["image"], cached[2]["image"])


class _TinyEncoder(torch.nn.Module):
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(4, 8, 8, stride=8)

    def forward(self, x, meta, want_maps=False):
        from copernicus_bench.encoder import EncoderOutput

        f = self.proj(x)
        return EncoderOutput(f.mean((2, 3)), [f] * 4)


def test_on_the_fly_epochs_from_cached_inputs_match_decoding(tmp_path):
    """Same seed → the same batches, views and encoded maps whether the epoch decodes or reads the cache."""
    torch.manual_seed(0)
    card, pipe, ds, enc = _card(), _pipeline(), _Counting(8), _TinyEncoder().eval()
    cached, _ = cached_inputs(tmp_path, card, pipe, "train", ds, {}, None, "float32")
    dev = torch.device("cpu")
    fly = OnTheFlySource(enc, pipe, card, ds, dev, augment="flips")
    fast = OnTheFlySource(enc, identity_pipeline(pipe), card, cached, dev, augment="flips")
    reads = ds.reads
    for epoch in range(2):
        a = list(fly.train_batches(np.random.default_rng(epoch), 3, drop_last=True))
        b = list(fast.train_batches(np.random.default_rng(epoch), 3, drop_last=True))
        assert len(a) == len(b) == 2
        for x, y in zip(a, b):
            assert torch.equal(x.target, y.target)
            torch.testing.assert_close(x.maps[0], y.maps[0], rtol=1e-5, atol=1e-5)
    assert ds.reads - reads == 2 * 6  # only the decoding source read the files again


def test_num_workers_auto_and_explicit():
    assert resolve_num_workers(3) == 3 and resolve_num_workers("2") == 2
    assert resolve_num_workers("auto", AUTO_WORKERS_MIN_SAMPLES - 1) == 0
    n = resolve_num_workers("auto", 10**6)
    assert 0 <= n <= 8
    with pytest.raises(ValueError, match="num-workers"):
        resolve_num_workers("many")
    with pytest.raises(ValueError, match="num-workers"):
        resolve_num_workers(-1)


def test_persistent_loader_keeps_its_workers_and_the_shuffle_follows_the_seed():
    ds = _Counting(12)
    loader = collate_loader(ds, 4, 1, shuffle=True, generator=torch.Generator(), persistent=True)
    assert loader.persistent_workers and loader.num_workers == 1
    assert not collate_loader(ds, 4, 0, persistent=True).persistent_workers

    card, pipe, enc = _card(), _pipeline(), _TinyEncoder().eval()
    src = OnTheFlySource(enc, pipe, card, ds, torch.device("cpu"), augment="flips", num_workers=0)
    t1 = [b.target for b in src.train_batches(np.random.default_rng(5), 4, True)]
    src2 = OnTheFlySource(enc, pipe, card, ds, torch.device("cpu"), augment="flips", num_workers=0)
    t2 = [b.target for b in src2.train_batches(np.random.default_rng(5), 4, True)]
    assert all(torch.equal(a, b) for a, b in zip(t1, t2))
    assert len(src._loaders) == 1
    list(src.train_batches(np.random.default_rng(6), 4, True))
    assert len(src._loaders) == 1  # the same loader object serves every epoch


def test_encode_batch_on_identity_pipeline_matches(tmp_path):
    card, pipe, ds, enc = _card(), _pipeline(), _Counting(2), _TinyEncoder().eval()
    cached, _ = cached_inputs(tmp_path, card, pipe, "test", ds, {}, None, "float32")
    x = torch.stack([cached[i]["image"] for i in range(2)])
    a = encode_batch(enc, pipe, card, ds.images[:2], ds.meta[:2], True, torch.device("cpu"), view=3)
    b = encode_batch(enc, identity_pipeline(pipe), card, x, ds.meta[:2], True, torch.device("cpu"), view=3)
    torch.testing.assert_close(a.maps[2], b.maps[2], rtol=1e-5, atol=1e-5)
