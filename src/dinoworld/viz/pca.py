"""PCA of patch features to RGB, with one fixed projection and colour scale.

The projection is fitted on encoder features (paper Fig. 2/5, App. E.1) and then applied unchanged
to both encoder and predicted features, so equal features always get equal colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

__all__ = ["PCA", "fit_pca", "pca_to_rgb", "upsample_nearest"]


@dataclass(frozen=True)
class PCA:
    """A fitted PCA projection with a fixed per-component colour range.

    ``lo``/``hi`` are low/high percentiles of the projections on the fit data; values outside
    are clipped when mapped to colours.
    """

    mean: Tensor  # (D,) float32
    components: Tensor  # (k, D) float32, orthonormal rows, sorted by explained variance
    lo: Tensor  # (k,) float32
    hi: Tensor  # (k,) float32
    explained_variance: Tensor  # (k,) float32

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def project(self, features: ArrayLike) -> Tensor:
        """Project features ``(..., D)`` to ``(..., k)`` (float32, CPU)."""
        x = _as_float_cpu(features)
        if x.shape[-1] != self.dim:
            raise ValueError(f"features have dim {x.shape[-1]}, the PCA was fitted on dim {self.dim}")
        return (x - self.mean) @ self.components.T  # (..., k)


def _as_float_cpu(x: ArrayLike) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x.detach().to(device="cpu", dtype=torch.float32)


def fit_pca(
    features: ArrayLike,
    k: int = 3,
    max_samples: int = 100_000,
    seed: int = 0,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> PCA:
    """Fit a ``k``-component PCA on features ``(..., D)``.

    Rows containing NaN/inf (e.g. missing frames) are ignored. At most ``max_samples`` rows, drawn
    with a seeded generator, are used. Component signs are fixed (largest-magnitude loading
    positive) so the result is deterministic.
    """
    x = features if isinstance(features, Tensor) else torch.as_tensor(np.asarray(features))
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"features must have shape (..., D), got {tuple(x.shape)}")
    d = int(x.shape[-1])
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, D={d}], got {k}")
    x = x.detach().reshape(-1, d)  # (N, D)
    n = x.shape[0]
    if n > max_samples:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=gen)[:max_samples]
        x = x[idx.to(x.device)]
    x = x.to(device="cpu", dtype=torch.float32)
    x = x[torch.isfinite(x).all(dim=-1)]
    if x.shape[0] < 2:
        raise ValueError("need at least 2 finite feature vectors to fit a PCA")

    mean = x.mean(dim=0)  # (D,)
    xc = x - mean  # (N, D)
    if xc.shape[0] >= d:
        # Covariance route: one (D, D) float32 matmul, eigendecomposition in float64.
        cov = (xc.T @ xc).double() / (xc.shape[0] - 1)  # (D, D)
        var, comps = _top_eigh(cov, k, seed)  # (k,), (k, D)
    else:
        _, s, vh = torch.linalg.svd(xc.double(), full_matrices=False)
        comps = vh[:k].float()  # (k, D)
        var = (s[:k] ** 2 / (xc.shape[0] - 1)).float()
        if comps.shape[0] < k:  # fewer samples than components: pad with zero directions
            comps = torch.cat([comps, comps.new_zeros(k - comps.shape[0], d)])
            var = torch.cat([var, var.new_zeros(k - var.shape[0])])

    # Deterministic sign: the largest-magnitude loading of each component is positive.
    pivot = comps.abs().argmax(dim=1)  # (k,)
    signs = torch.sign(comps[torch.arange(k), pivot])
    signs[signs == 0] = 1.0
    comps = comps * signs[:, None]

    proj = xc @ comps.T  # (N, k)
    q = torch.tensor([percentiles[0] / 100.0, percentiles[1] / 100.0], dtype=torch.float32)
    lo, hi = torch.quantile(proj, q, dim=0)  # (k,), (k,)
    return PCA(mean=mean, components=comps.contiguous(), lo=lo, hi=hi, explained_variance=var)


def _top_eigh(cov: Tensor, k: int, seed: int, iters: int = 40) -> tuple[Tensor, Tensor]:
    """Top-``k`` eigenpairs of a symmetric PSD ``cov`` ``(D, D)``: values ``(k,)``, vectors ``(k, D)``.

    Small ``D``: full ``eigh``. Large ``D``: seeded subspace iteration with ``k + 8`` vectors and a
    Rayleigh-Ritz step (a full ``eigh`` of a 1024x1024 matrix takes seconds on a small CPU).
    """
    d = cov.shape[0]
    if d <= 128:
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(evals, descending=True)[:k]
        return evals[order].clamp_min(0).float(), evecs[:, order].T.float()
    q = min(d, k + 8)
    gen = torch.Generator().manual_seed(seed)
    v, _ = torch.linalg.qr(torch.randn(d, q, generator=gen, dtype=cov.dtype))  # (D, q)
    for _ in range(iters):
        v, _ = torch.linalg.qr(cov @ v)
    evals, w = torch.linalg.eigh(v.T @ cov @ v)  # (q,), (q, q), ascending
    order = torch.argsort(evals, descending=True)[:k]
    return evals[order].clamp_min(0).float(), (v @ w[:, order]).T.float()


def pca_to_rgb(features: ArrayLike, pca: PCA) -> np.ndarray:
    """Map features ``(..., H, W, D)`` to colours ``(..., H, W, 3)`` uint8 with ``pca``.

    Uses the first three components, each scaled by the PCA's fixed ``[lo, hi]`` range and clipped.
    Non-finite feature vectors become black.
    """
    if pca.k < 3:
        raise ValueError(f"pca_to_rgb needs a PCA with at least 3 components, got {pca.k}")
    x = _as_float_cpu(features)
    bad = ~torch.isfinite(x).all(dim=-1)  # (..., H, W)
    x = torch.where(bad[..., None], pca.mean.expand_as(x), x)
    p = pca.project(x)[..., :3]  # (..., H, W, 3)
    lo, hi = pca.lo[:3], pca.hi[:3]
    scale = (hi - lo).clamp_min(1e-12)
    u = ((p - lo) / scale).clamp(0.0, 1.0)
    rgb = torch.round(u * 255.0).to(torch.uint8)
    rgb[bad] = 0
    return rgb.numpy()


def upsample_nearest(img: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of ``img`` ``(h, w, C)`` to ``size=(H, W)`` (any ratio)."""
    h, w = img.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    rows = np.minimum((np.arange(out_h) * h) // out_h, h - 1)  # (H,)
    cols = np.minimum((np.arange(out_w) * w) // out_w, w - 1)  # (W,)
    return img[rows][:, cols]


# --------------------------------------------------------------------------------------------
# Per-column helpers shared by the figures and the video writer.
# --------------------------------------------------------------------------------------------

FeatureColumns = Union[ArrayLike, Sequence[Union[ArrayLike, None]], None]


def feature_columns(feats: FeatureColumns, t: int, name: str = "features") -> list[Tensor | None]:
    """Split ``feats`` ``(T, H, W, D)`` (or a length-``T`` sequence with ``None``) into columns.

    A column is ``None`` when it is missing: given as ``None`` or entirely non-finite (NaN).
    """
    if feats is None:
        return [None] * t
    if len(feats) != t:
        raise ValueError(f"{name} has {len(feats)} time steps, expected {t}")
    out: list[Tensor | None] = []
    for f in feats:
        if f is None:
            out.append(None)
            continue
        x = _as_float_cpu(f)
        if x.ndim != 3:
            raise ValueError(f"each {name} step must have shape (H, W, D), got {tuple(x.shape)}")
        out.append(x if torch.isfinite(x).any() else None)
    return out


def resolve_pca(pca: PCA | None, *column_lists: list[Tensor | None]) -> PCA | None:
    """Return ``pca``, or fit one on the first column list that has any features (encoder first)."""
    if pca is not None:
        return pca
    for cols in column_lists:
        present = [c for c in cols if c is not None]
        if present:
            d = present[0].shape[-1]
            return fit_pca(torch.cat([c.reshape(-1, d) for c in present]), k=3)
    return None


def columns_to_rgb(cols: list[Tensor | None], pca: PCA | None) -> list[np.ndarray | None]:
    """Colour each present column ``(H, W, D)`` as ``(H, W, 3)`` uint8 with ``pca``."""
    return [None if c is None or pca is None else pca_to_rgb(c, pca) for c in cols]
