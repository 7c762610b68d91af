"""Copernicus-FM pretraining: shards, data pipeline, MAE objective, distillation, CLI run/resume/export."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from copernicus_bench.cli import main as cbench
from copernicus_bench.models.copernicusfm import mae as mae_mod
from copernicus_bench.models.copernicusfm.mae import (
    DECODER_CONFIGS,
    CopernicusFMMAE,
    DynamicDecoderHead,
    Teacher,
    load_teachers,
    mae_loss,
    patchify,
)
from copernicus_bench.models.copernicusfm.model import copernicusfm_tiny
from copernicus_bench.models.copernicusfm.pretrain import lr_factor, param_groups
from copernicus_bench.models.copernicusfm.pretrain_data import (
    MODALITIES,
    S2_WAVELENGTHS,
    make_loader,
    parse_id,
    scaled_modalities,
    step_views,
)
from copernicus_bench.models.copernicusfm.pretrain_sample import write_sample_shards
from copernicus_bench.models.copernicusfm.varembed import ALIASES, random_embedding

SCALE = 0.25  # S1/S2 64 px, S3 24, S5P 8, DEM 256: same kernels as the paper, 4×4 tokens for S1/S2
VAR = {k: random_embedding(k, 0) for k in ALIASES}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain_shards")
    write_sample_shards(out, shards=2, grids_per_shard=3, seed=0)
    return out


@pytest.fixture(scope="module")
def batch(shards) -> dict:
    torch.manual_seed(0)
    return next(iter(make_loader(str(shards), 2, scaled_modalities(SCALE), seed=0)))


class TinyTeacher(nn.Module):
    """A random frozen 'teacher': strided conv + mean pool → (B, 8)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


# ------------------------------------------------------------------------------------------- shards
def test_sample_shards_are_read_by_torchgeo_copernicus_pretrain(shards):
    from torchgeo.datasets import CopernicusPretrain

    assert sorted(p.name for p in shards.glob("*.tar")) == ["example-000000.tar", "example-000001.tar"]
    ds = CopernicusPretrain(urls=str(shards / "example-{000000..000001}.tar"), shardshuffle=False)
    samples = list(ds)
    assert len(samples) == 6
    s = samples[0]
    assert s["s1_grd.pth"].dtype == torch.float32 and s["s1_grd.pth"].shape[0] == 2  # one patch, one date: (2,H,W)
    assert s["s2_toa.pth"].dtype == torch.int16 and s["s2_toa.pth"].shape[0] == 13
    assert s["s3_olci.pth"].shape[0] == 21
    for gas in ("co", "no2", "o3", "so2"):
        assert s[f"s5p_{gas}.pth"].shape == (1, 28, 28)
    assert s["dem.pth"].ndim == 2
    # torchgeo reduced the json ids to one string per modality, parseable into centre + date
    lon, lat, days = parse_id(s["json"]["s2_toa"])
    assert -180 <= lon <= 180 and -90 <= lat <= 90 and 18262 <= days <= 18262 + 3 * 365
    assert math.isnan(parse_id(s["json"]["dem"])[2])


def test_parse_id_reads_centre_and_days_since_1970():
    assert parse_id("0772176/0865831_-95.92_43.96/20210101") == (-95.92, 43.96, 18628.0)
    assert parse_id("0772176_-96.00_44.00/19700102") == (-96.0, 44.0, 1.0)
    lon, lat, days = parse_id("0772176_-96.00_44.00")
    assert (lon, lat) == (-96.0, 44.0) and math.isnan(days)


# ------------------------------------------------------------------------------------------- pipeline
def test_batches_have_every_modality_at_its_size_normalised_with_metadata(batch):
    for mod in scaled_modalities(SCALE):
        x = batch[mod.name]
        assert x.shape[0] == 2 and x.shape[-1] == x.shape[-2] == mod.size and x.shape[-1] % mod.kernel == 0
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
        meta = batch[f"meta_{mod.name}"]
        assert meta.shape == (2, 4) and (meta[:, 3] > 0).all()
    # S2 L1C normalised with the pretraining stats: the sample draws within ±1.5 std of the mean
    assert batch["s2"].abs().max() < 3
    assert {m.size for m in scaled_modalities(1.0)} == {224, 96, 28, 960}


def test_step_views_subset_channels_and_drop_metadata_per_batch(batch):
    mods = scaled_modalities(SCALE)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        views = {v.name: v for v in step_views(batch, mods, gen, meta_drop=0.0)}
        s2 = views["s2"]
        assert 10 <= len(s2.channels) <= 13 and s2.x.shape[1] == len(s2.channels)  # ceil(0.75·13) = 10
        assert s2.wavelengths == [S2_WAVELENGTHS[c] for c in s2.channels]
        assert 16 <= views["s3"].x.shape[1] <= 21
        assert views["s1"].x.shape[1] == 2 and views["dem"].wavelengths is None
        assert not torch.isnan(views["s1"].meta[:, :2]).any()
    dropped = step_views(batch, mods, gen, meta_drop=1.0)
    assert all(torch.isnan(v.meta).all() for v in dropped)


# ------------------------------------------------------------------------------------------- objective
def test_mask_ratio_is_exact_and_masked_tokens_never_reach_the_blocks(batch):
    model = CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"], mask_ratio=0.7)
    seen: list[int] = []
    model.encoder.blocks[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    view = step_views(batch, scaled_modalities(SCALE), torch.Generator().manual_seed(0))[1]
    assert view.name == "s2"
    n = (view.x.shape[-1] // 16) ** 2  # 16 tokens
    latent, mask, ids_restore, _ = model.encoder.forward_encoder(view.x, view.meta, view.wavelengths,
                                                                 view.bandwidths, None, "spectral", 16,
                                                                 mask_ratio=0.7)
    keep = int(n * (1 - 0.7))
    assert seen == [1 + keep]
    assert latent.shape[1] == 1 + keep
    assert (mask.sum(dim=1) == n - keep).all()
    # the loss counts masked patches only: a perfect prediction on masked patches gives 0
    target = torch.randn(2, n, 3, 4, 4)
    pred = target.clone()
    pred[mask == 0] += 5.0
    assert mae_loss(pred, target, mask, norm_pix=False) == 0


def test_dynamic_head_generates_per_band_projections_at_any_kernel():
    head = DynamicDecoderHead(hyper_dim=32, decoder_dim=16)
    nn.init.normal_(head.fc_bias.weight)
    bands = torch.randn(3, 32)
    h = torch.randn(2, 5, 16)
    for k in (4, 8, 16, 64):
        out = head(h, bands, k)
        assert out.shape == (2, 5, 3, k, k)
    # band c's output depends only on band c's embedding
    bands2 = bands.clone()
    bands2[1] += 1
    a, b = head(h, bands, 8), head(h, bands2, 8)
    assert torch.allclose(a[:, :, [0, 2]], b[:, :, [0, 2]]) and not torch.allclose(a[:, :, 1], b[:, :, 1])


def test_patchify_matches_token_grid_order():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 1, 4, 4)
    assert torch.equal(p[0, 1, 0], x[0, 0, :4, 4:])  # token 1 = top-right patch
    assert torch.equal(p[1, 2, 0], x[1, 0, 4:, :4])


def test_tiny_config_overfits_a_fixed_batch(batch):
    torch.manual_seed(0)
    model = CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"], mask_ratio=0.7)
    mods = scaled_modalities(SCALE)
    views = [v for v in step_views(batch, mods, torch.Generator().manual_seed(1), meta_drop=0.0)
             if v.name == "s2"]
    opt = torch.optim.AdamW(param_groups(model, 0.0), lr=2e-3, betas=(0.9, 0.95))
    losses = []
    for _ in range(50):
        gen = torch.Generator().manual_seed(123)  # the same masks every step: a fixed problem to memorise
        loss = model(views, None, VAR, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_distillation_uses_injected_teachers_and_trains_student_proj(batch):
    teachers = [Teacher("dinov2", TinyTeacher(3), 8, 0.1), Teacher("softcon_s2", TinyTeacher(13), 8, 0.2),
                Teacher("softcon_s1", TinyTeacher(2), 8, 0.2)]
    model = CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"], teachers=teachers)
    views = step_views(batch, scaled_modalities(SCALE), torch.Generator().manual_seed(0))
    losses = model(views, batch, VAR)
    for name, w in (("dinov2", 0.1), ("softcon_s2", 0.2), ("softcon_s1", 0.2)):
        assert 0 <= float(losses[f"distill_{name}"]) <= 2 * w + 1e-6
    expected = losses["mae"] + sum(losses[f"distill_{n}"] for n in ("dinov2", "softcon_s2", "softcon_s1"))
    assert torch.allclose(losses["loss"], expected)
    losses["loss"].backward()
    assert model.student_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for t in teachers for p in t.module.parameters())  # frozen
    assert not any(k.startswith("teacher") for k in model.state_dict())  # teachers stay out of checkpoints


def test_teachers_are_off_when_their_weights_are_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(mae_mod, "_dinov2_from_hub_cache", lambda: None)
    teachers, status = load_teachers(tmp_path)
    assert teachers == []
    assert set(status) == {"dinov2", "softcon_s2", "softcon_s1"} and all(s.startswith("off") for s in status.values())


def test_lr_schedule_warms_up_then_cosine_decays_and_norms_biases_are_not_decayed():
    assert lr_factor(0, 100, 10, 1.0, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, 1.0, 0.0) == pytest.approx(0.0)
    model = CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"])
    decay, no_decay = param_groups(model, 0.05)
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.norm.weight) in ids and id(model.decoder_embed.bias) in ids
    assert id(model.decoder_embed.weight) not in ids and decay["weight_decay"] == 0.05
    assert id(model.encoder.pos_embed) not in ids | {id(p) for p in decay["params"]}  # frozen


# ------------------------------------------------------------------------------------------- CLI end to end
def _logged_steps(out: Path) -> list[int]:
    steps = []
    for path in sorted((out / "logs").glob("version_*/metrics.csv")):  # one version per (re)start
        with open(path) as f:
            steps += [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    return steps


def test_cli_pretrain_runs_saves_resumes_and_exports_a_loadable_encoder(tmp_path, capsys):
    shards = tmp_path / "shards"
    assert cbench(["pretrain-sample", "--out", str(shards), "--shards", "2", "--grids-per-shard", "2"]) == 0
    out = tmp_path / "run"
    common = ["pretrain", "--shards", str(shards), "--out", str(out), "--config", "tiny", "--batch-size", "2",
              "--save-every", "5", "--size-scale", str(SCALE), "--num-workers", "0", "--log-every", "1",
              "--weights-dir", str(tmp_path / "no_weights")]
    assert cbench(common + ["--max-steps", "10"]) == 0
    ckpts = out / "checkpoints"
    assert {p.name for p in ckpts.glob("*.ckpt")} >= {"step-00000005.ckpt", "step-00000010.ckpt", "last.ckpt"}
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 10
    first = _logged_steps(out)

    assert cbench(common + ["--max-steps", "20"]) == 0  # resumes from last.ckpt automatically
    assert "resuming from" in capsys.readouterr().err
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 20
    resumed = [s for s in _logged_steps(out) if s not in first]
    assert resumed and min(resumed) >= 10 and max(resumed) <= 19  # continued, did not restart at 0
    assert (ckpts / "step-00000015.ckpt").is_file()

    from copernicus_bench.models.copernicusfm.checkpoint import load_checkpoint_file
    from copernicus_bench.models.copernicusfm.varembed import read_embeddings

    weights = out / "weights" / "CopernicusFM_ViT_base_varlang_e100.pth"
    info = torch.load(weights, weights_only=True)["cbench"]
    assert info["config"] == "tiny" and info["step"] == 20
    assert info["teachers"] == [] and all(s.startswith("off") for s in info["teacher_status"].values())
    assert info["random_var_embeddings"] is True
    assert (out / "weights" / "var_embed_llama3.2_1B.RANDOM.txt").is_file()
    encoder = copernicusfm_tiny()
    ignored = load_checkpoint_file(encoder, weights)
    assert any(k.startswith("decoder_") for k in ignored) and "norm.weight" in ignored
    emb = read_embeddings(out / "weights" / "var_embed_llama3.2_1B.pt")
    assert all(k in emb for k in ("s5p_co", "s5p_no2", "s5p_o3", "s5p_so2", "dem"))
    assert torch.equal(emb["s5p_no2"], random_embedding("s5p_no2", 0))


def test_modalities_cover_the_paper_sizes_and_kernels():
    spec = {m.name: (m.size, m.kernel) for m in MODALITIES}
    assert spec == {"s1": (224, 16), "s2": (224, 16), "s3": (96, 8), "s5p_co": (28, 4), "s5p_no2": (28, 4),
                    "s5p_o3": (28, 4), "s5p_so2": (28, 4), "dem": (960, 64)}

