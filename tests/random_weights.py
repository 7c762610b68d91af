"""Write randomly initialised checkpoints under the released file names (the acceptance runs of the
baselines and Copernicus-FM issues: `--weights-dir` holding files saved from random models)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_released_names(folder: str | Path, models: tuple[str, ...] = ("softcon", "croma", "dofa",
                                                                        "copernicus-fm"), seed: int = 0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if "softcon" in models:
        import timm

        from copernicus_bench.baselines import softcon

        for key, chans in (("s2", 13), ("s1", 2)):
            m = timm.create_model("vit_base_patch14_dinov2", img_size=224, in_chans=chans, num_classes=0,
                                  init_values=1e-5)
            torch.save(m.state_dict(), folder / softcon.WEIGHTS[key].primary)
    if "croma" in models:
        from torchgeo.models import CROMA

        from copernicus_bench.baselines import croma

        m = CROMA(modalities=["sar", "optical"], image_size=120)
        torch.save({name: getattr(m, name).state_dict() for name in croma.KNOWN_SUBDICTS},
                   folder / croma.WEIGHTS.primary)
    if "dofa" in models:
        from torchgeo.models.dofa import dofa_base_patch16_224

        from copernicus_bench.baselines import dofa

        torch.save(dofa_base_patch16_224().state_dict(), folder / dofa.WEIGHTS.primary)
    if "copernicus-fm" in models:
        from copernicus_bench.models.copernicusfm import varembed
        from copernicus_bench.models.copernicusfm.checkpoint import SPEC
        from copernicus_bench.models.copernicusfm.model import copernicusfm_base

        torch.save({"model": copernicusfm_base().state_dict()}, folder / SPEC.primary)
        names = ["Sentinel 5P Carbon Monoxide", "Sentinel 5P Nitrogen Dioxide", "Sentinel 5P Ozone",
                 "Sentinel 5P Sulfur Dioxide", "Copernicus Digital Elevation Model"]
        torch.save({n: torch.randn(2048) for n in names}, folder / varembed.FILENAME)
    return folder
