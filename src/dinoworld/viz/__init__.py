"""Visualisation: PCA-to-RGB latent rollouts, motion maps, cross-attention maps, horizon plots, rollout videos."""

from .figures import (
    attention_figure,
    bar_plot,
    horizon_plot,
    motion_figure,
    render_attention,
    render_horizon_plot,
    render_motion,
    render_rollout,
    rollout_figure,
    save_figure,
)
from .pca import PCA, fit_pca, pca_to_rgb, upsample_nearest
from .video import render_rollout_frames, write_rollout_mp4

__all__ = [
    "PCA",
    "fit_pca",
    "pca_to_rgb",
    "upsample_nearest",
    "rollout_figure",
    "render_rollout",
    "attention_figure",
    "render_attention",
    "horizon_plot",
    "render_horizon_plot",
    "bar_plot",
    "motion_figure",
    "render_motion",
    "save_figure",
    "render_rollout_frames",
    "write_rollout_mp4",
]
