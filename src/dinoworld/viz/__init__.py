"""Visualisation: PCA-to-RGB latent rollouts, motion maps, cross-attention maps, horizon plots, rollout videos."""

from .attention import attention_figure, render_attention
from .canvas import save_figure
from .figures import motion_figure, render_motion, render_rollout, rollout_figure
from .pca import PCA, fit_pca, pca_to_rgb, upsample_nearest
from .plots import bar_plot, horizon_plot, render_horizon_plot
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
