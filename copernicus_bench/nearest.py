"""Nearest-neighbour resizing with OpenCV's ``INTER_NEAREST`` rule, without OpenCV.

The reference resizes labels with ``cv2.resize(..., interpolation=cv2.INTER_NEAREST)`` (LC100Seg) and dense
targets with the image to the encoder's input resolution (kornia ``Resize`` on ``mask``, nearest; at every
size the benchmark uses the two rules pick the same pixels). OpenCV's rule, per axis: ``fx = dst / src``
and source index ``min(floor(i * (1 / fx)), src - 1)`` in double precision. PyTorch's ``nearest`` computes
``floor(i * (src / dst))`` in single precision, which rounds differently where ``i * src / dst`` is
(nearly) an integer. Resizing is an index gather, so it is exact for every dtype (NaN stays NaN).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["cv2_nearest_indices", "resize_nearest_cv2"]


def cv2_nearest_indices(src: int, dst: int) -> Tensor:
    """Source index of each of ``dst`` output positions along one axis of length ``src`` (cv2's rule)."""
    if src < 1 or dst < 1:
        raise ValueError(f"nearest resize: sizes must be >= 1 (src={src}, dst={dst})")
    inv = 1.0 / (float(dst) / float(src))  # float64, as cv::resize's ifx = 1. / inv_scale_x
    idx = np.minimum(np.floor(np.arange(dst, dtype=np.float64) * inv).astype(np.int64), src - 1)
    return torch.from_numpy(idx)


def resize_nearest_cv2(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize the last two dims of ``x`` (any leading dims, any dtype) to ``size`` as cv2.INTER_NEAREST."""
    h, w = (size, size) if isinstance(size, int) else size
    if tuple(x.shape[-2:]) == (h, w):
        return x
    rows = cv2_nearest_indices(x.shape[-2], h).to(x.device)
    cols = cv2_nearest_indices(x.shape[-1], w).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)
