"""Latent rollouts (paper Fig. 2/5) and motion maps as static figures."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from .canvas import (
    CBAR_GAP_IN,
    CBAR_LABEL_IN,
    CBAR_W_IN,
    GAP_X_IN,
    GAP_Y_IN,
    LABEL_W_IN,
    NO_PREDICTION,
    PAST_END,
    FrameColumns,
    ImageLike,
    PathLike,
    as_floats,
    blank_cell,
    colour_bar,
    context_square,
    figure_title,
    format_time,
    frame_columns,
    grid_axes,
    new_figure,
    row_label,
    save_figure,
    show_image,
)
from .pca import PCA, FeatureColumns, columns_to_rgb, feature_columns, resolve_pca

__all__ = ["rollout_columns", "render_rollout", "rollout_figure", "render_motion", "motion_figure"]


def rollout_columns(frames: FrameColumns, times, true_feats: FeatureColumns, pred_feats: FeatureColumns,
                    is_context, pca: PCA | None, caller: str):
    """Per-time-step inputs of a rollout figure or video, checked and PCA-coloured with one projection.

    Returns ``(times, is_context, frames, true_rgb, pred_rgb)`` as equal-length lists; the PCA is
    fitted on the encoder features when ``pca`` is None (on predictions if there are none).
    """
    times_l = as_floats(times)
    t = len(times_l)
    if t == 0:
        raise ValueError(f"{caller} needs at least one time step")
    ctx = [bool(c) for c in (is_context.tolist() if hasattr(is_context, "tolist") else is_context)]
    if len(ctx) != t:
        raise ValueError(f"is_context has {len(ctx)} entries, expected {t}")
    true_cols = feature_columns(true_feats, t, "true_feats")
    pred_cols = feature_columns(pred_feats, t, "pred_feats")
    pca = resolve_pca(pca, true_cols, pred_cols)
    return times_l, ctx, frame_columns(frames, t), columns_to_rgb(true_cols, pca), columns_to_rgb(pred_cols, pca)


def render_rollout(
    frames: FrameColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    true_feats: FeatureColumns,
    pred_feats: FeatureColumns,
    is_context: Sequence[bool] | np.ndarray | Tensor,
    pca: PCA | None = None,
    title: str | None = None,
    *,
    show_context_preds: bool = False,
    cell_inches: float = 1.3,
    dpi: int = 100,
) -> Figure:
    """Build the rollout figure (see :func:`rollout_figure`) and return it without saving.

    Axes are labelled ``"<row>/<col>"`` with row in ``frames``, ``encoder``, ``predicted``.
    """
    times_l, ctx, frame_cols, true_rgb, pred_rgb = rollout_columns(
        frames, times, true_feats, pred_feats, is_context, pca, "rollout_figure")
    t = len(times_l)

    # Cell aspect from the frames if any, else from the feature grid.
    ref = next((f for f in frame_cols if f is not None), None)
    if ref is None:
        ref = next((f for f in true_rgb + pred_rgb if f is not None), np.zeros((1, 1, 3)))
    aspect = float(np.clip(ref.shape[0] / ref.shape[1], 0.25, 4.0))
    cell_w, cell_h = cell_inches, cell_inches * aspect

    row_names = (["frames"] if any(f is not None for f in frame_cols) else []) + ["encoder", "predicted"]
    n_rows = len(row_names)
    top_in = 0.3 + (0.35 if title else 0.0)
    width = LABEL_W_IN + t * cell_w + (t - 1) * GAP_X_IN + 0.1
    height = top_in + n_rows * cell_h + (n_rows - 1) * GAP_Y_IN + 0.1
    fig = new_figure(width, height, dpi)
    grid = grid_axes(fig, n_rows, t, cell_w, cell_h, top_in, LABEL_W_IN)

    for r, name in enumerate(row_names):
        for c in range(t):
            ax = grid[r][c]
            ax.set_label(f"{name}/{c}")
            if name == "frames":
                img = frame_cols[c]
            elif name == "encoder":
                img = true_rgb[c]
            else:
                img = pred_rgb[c] if (show_context_preds or not ctx[c]) else None
                if ctx[c] and img is None:
                    context_square(ax)
                    continue
            if img is None:
                blank_cell(ax, NO_PREDICTION if name == "predicted" else PAST_END)
            else:
                show_image(ax, img)
        row_label(fig, grid[r][0], name)

    for c in range(t):
        grid[0][c].set_title(format_time(times_l[c]), fontsize=8, pad=3,
                             color="0.35" if ctx[c] else "black")

    # Dashed separator wherever context switches to prediction.
    top_y = grid[0][0].get_position().y1
    bot_y = grid[-1][0].get_position().y0
    for c in range(1, t):
        if ctx[c - 1] and not ctx[c]:
            x = (LABEL_W_IN + c * (cell_w + GAP_X_IN) - GAP_X_IN / 2) / width
            fig.add_artist(Line2D([x, x], [bot_y, top_y], transform=fig.transFigure, color="0.3",
                                  linestyle="--", linewidth=1.0))
    figure_title(fig, title)
    return fig


def rollout_figure(
    frames: FrameColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    true_feats: FeatureColumns,
    pred_feats: FeatureColumns,
    is_context: Sequence[bool] | np.ndarray | Tensor,
    path: PathLike,
    pca: PCA | None = None,
    title: str | None = None,
    *,
    show_context_preds: bool = False,
    cell_inches: float = 1.3,
    dpi: int = 100,
) -> Path:
    """Write a rollout figure like paper Fig. 2/5 and return its path.

    Columns are time steps; rows are RGB ``frames`` ``(T, H', W', 3)`` with timestamps (skipped if
    ``frames`` is None), encoder features ``true_feats`` ``(T, H, W, D)`` and predictions
    ``pred_feats`` ``(T, H, W, D)``, both coloured with the same PCA (fitted on the encoder features
    unless ``pca`` is given). Any input may be a length-``T`` sequence with ``None`` (or an all-NaN
    step) for missing columns, left blank and labelled "past the end of the video" (frames, encoder)
    or "no prediction". Context columns show a grey "context" square in the prediction row (unless
    ``show_context_preds``), and a dashed line separates context from predictions.
    """
    fig = render_rollout(frames, times, true_feats, pred_feats, is_context, pca, title,
                         show_context_preds=show_context_preds, cell_inches=cell_inches, dpi=dpi)
    return save_figure(fig, path)


def render_motion(
    frames: FrameColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    maps: Mapping[str, Sequence[ImageLike | None]],
    title: str | None = None,
    *,
    cell_inches: float = 1.3,
    dpi: int = 100,
) -> Figure:
    """Build the motion figure (see :func:`motion_figure`) and return it without saving.

    Axes are labelled ``"frames/<col>"`` and ``"<row name>/<col>"``; the colour bar ``"colorbar"``.
    """
    times_l = as_floats(times)
    t = len(times_l)
    rows = {k: [None if m is None else np.asarray(m.detach().cpu() if isinstance(m, Tensor) else m, np.float32)
                for m in v] for k, v in maps.items()}
    for name, ms in rows.items():
        if len(ms) != t:
            raise ValueError(f"map row {name!r} has {len(ms)} columns for {t} times")
    frame_cols = frame_columns(frames, t)
    have = [m for ms in rows.values() for m in ms if m is not None]
    first = [m for m in next(iter(rows.values()), []) if m is not None]
    vmax = max((float(m.max()) for m in (first or have)), default=0.0) or 1.0  # the first row's scale
    names = (["frames"] if any(f is not None for f in frame_cols) else []) + list(rows)
    cell_w = cell_h = cell_inches
    top_in = 0.3 + (0.35 if title else 0.0)
    grid_w = LABEL_W_IN + t * cell_w + (t - 1) * GAP_X_IN
    width = grid_w + CBAR_GAP_IN + CBAR_W_IN + CBAR_LABEL_IN
    height = top_in + len(names) * cell_h + (len(names) - 1) * GAP_Y_IN + 0.1
    fig = new_figure(width, height, dpi)
    grid = grid_axes(fig, len(names), t, cell_w, cell_h, top_in, LABEL_W_IN)
    cmap = colormaps["magma"]
    for r, name in enumerate(names):
        for c in range(t):
            ax = grid[r][c]
            ax.set_label(f"{name}/{c}")
            img = frame_cols[c] if name == "frames" else rows[name][c]
            if img is None:
                blank_cell(ax, PAST_END)
            elif name == "frames":
                show_image(ax, img)
            else:
                ax.imshow(img, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="auto",
                          extent=(0, 1, 1, 0))
        row_label(fig, grid[r][0], name, fontsize=8, wrap=True)
    for c in range(t):
        grid[0][c].set_title(format_time(times_l[c]), fontsize=8, pad=3)
    top, bottom = grid[1 if names[0] == "frames" else 0][0].get_position(), grid[-1][0].get_position()
    colour_bar(fig, grid_w + CBAR_GAP_IN, bottom.y0, top.y1, vmax, cmap, "object feature gained", "colorbar")
    figure_title(fig, title)
    return fig


def motion_figure(
    frames: FrameColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    maps: Mapping[str, Sequence[ImageLike | None]],
    path: PathLike,
    title: str | None = None,
    **kwargs,
) -> Path:
    """Write a figure of where things moved and return its path.

    Columns are the predicted times; rows are the true frames ``(T, H', W', 3)`` (skipped if None) and
    one row of ``(h, w)`` heat maps per entry of ``maps`` (e.g. where objects truly arrived since the
    last context frame, and where a prediction puts them), all on the colour scale of the first map row,
    with one colour bar. ``None`` (a time past the end of the video) leaves a cell blank, so labelled.
    """
    return save_figure(render_motion(frames, times, maps, title, **kwargs), path)

