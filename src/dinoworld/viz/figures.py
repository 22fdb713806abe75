"""Static figures: latent rollouts (paper Fig. 2/5), cross-attention maps (Fig. 6), horizon curves (Fig. 3).

All figures use matplotlib's object API (``Figure`` + ``FigureCanvasAgg``): no pyplot state, no display.
Layouts are fixed in inches, so figure size grows linearly with the number of columns.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import Tensor

from ..files import atomic_write
from .pca import PCA, FeatureColumns, columns_to_rgb, feature_columns, resolve_pca

__all__ = [
    "rollout_figure",
    "render_rollout",
    "attention_figure",
    "render_attention",
    "horizon_plot",
    "render_horizon_plot",
    "bar_plot",
    "motion_figure",
    "render_motion",
    "to_uint8_image",
    "format_time",
    "frame_columns",
    "CONTEXT_GREY",
    "PAST_END",
    "NO_PREDICTION",
]

PathLike = Union[str, os.PathLike]
ImageLike = Union[Tensor, np.ndarray]
FrameColumns = Union[ImageLike, Sequence[Union[ImageLike, None]], None]

CONTEXT_GREY = 0.6  # matplotlib grey level of the "context" squares in the prediction row
_BLANK_EDGE = "0.85"
PAST_END = "past the end\nof the video"  # label of a blank cell where the video has no frame
NO_PREDICTION = "no prediction"
_LABEL_W_IN = 0.95  # left margin for row labels (inches)
_GAP_X_IN = 0.06
_GAP_Y_IN = 0.08
_CBAR_GAP_IN, _CBAR_W_IN, _CBAR_LABEL_IN = 0.1, 0.12, 0.75  # attention colour bars, right of the grid
_BAR_AXIS_IN = 0.42  # room left of the attention-mass column for its y axis


def format_time(t: float) -> str:
    """Timestamp label, e.g. ``t=0.50s``."""
    return f"t={float(t):.2f}s"


def to_uint8_image(img: ImageLike) -> np.ndarray:
    """Convert an image ``(H, W, 3|4)`` or ``(H, W)`` (uint8, or float in [0, 1] or [0, 255]) to RGB uint8."""
    a = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"expected an image of shape (H, W, 3), got {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    if np.nanmax(a) <= 1.0 + 1e-6:
        a = a * 255.0
    return np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)


def frame_columns(frames: FrameColumns, t: int) -> list[np.ndarray | None]:
    """Split ``frames`` ``(T, H', W', 3)`` (or a length-``T`` sequence with ``None``) into uint8 images."""
    if frames is None:
        return [None] * t
    if len(frames) != t:
        raise ValueError(f"frames has {len(frames)} time steps, expected {t}")
    return [None if f is None else to_uint8_image(f) for f in frames]


def _new_figure(width_in: float, height_in: float, dpi: int) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix, PNG if none) through a temporary sibling,
    so ``path`` never holds a partial image."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = p.suffix[1:].lower() or "png"
    # no bbox_inches="tight": keep the fixed layout
    return atomic_write(p, lambda fh: fig.savefig(fh, format=fmt, dpi=fig.dpi, facecolor="white"))


def _grid_axes(
    fig: Figure, n_rows: int, n_cols: int, cell_w: float, cell_h: float, top_in: float, label_w: float
) -> list[list[Axes]]:
    """Place an ``n_rows x n_cols`` grid of axes at fixed inch positions."""
    fw, fh = fig.get_size_inches()
    rows = []
    for r in range(n_rows):
        row = []
        for c in range(n_cols):
            x0 = label_w + c * (cell_w + _GAP_X_IN)
            y0 = fh - top_in - (r + 1) * cell_h - r * _GAP_Y_IN
            ax = fig.add_axes((x0 / fw, y0 / fh, cell_w / fw, cell_h / fh))
            ax.set_xticks([])
            ax.set_yticks([])
            row.append(ax)
        rows.append(row)
    return rows


def _blank(ax: Axes, label: str) -> None:
    """An empty cell with a light frame and ``label`` in its middle."""
    for s in ax.spines.values():
        s.set_edgecolor(_BLANK_EDGE)
    ax.text(0.5, 0.5, label, transform=ax.transAxes, ha="center", va="center", color="0.45", fontsize=7)


def _show(ax: Axes, img: np.ndarray) -> None:
    """Show an image filling the axes; feature maps are upsampled nearest-neighbour."""
    ax.imshow(img, interpolation="nearest", aspect="auto", extent=(0, 1, 1, 0))
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)


def _context_square(ax: Axes) -> None:
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, color=str(CONTEXT_GREY), zorder=3))
    ax.text(0.5, 0.5, "context", transform=ax.transAxes, ha="center", va="center", color="white",
            fontsize=7, zorder=4)


def _row_label(fig: Figure, ax: Axes, text: str, fontsize: int = 9, **kw) -> None:
    """A row's label, right-aligned in the left margin at the height of the row's first axes ``ax``."""
    pos = ax.get_position()
    fig.text((_LABEL_W_IN - 0.08) / fig.get_size_inches()[0], pos.y0 + pos.height / 2, text, ha="right",
             va="center", fontsize=fontsize, **kw)


def _colour_bar(fig: Figure, x_in: float, y0: float, y1: float, vmax: float, cmap, label: str, name: str) -> None:
    """A colour bar of ``cmap`` on ``[0, vmax]`` at ``x_in`` inches from the left, spanning figure
    fractions ``y0..y1``; its axes are labelled ``name``."""
    fw = fig.get_size_inches()[0]
    cax = fig.add_axes((x_in / fw, y0, _CBAR_W_IN / fw, y1 - y0))
    cax.set_label(name)
    cbar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax), cmap), cax=cax)
    cbar.ax.tick_params(labelsize=6)
    cbar.set_label(label, fontsize=6)


def _title(fig: Figure, title: str | None) -> None:
    """The figure's title (if any), 0.12 in below its top edge."""
    if title:
        fig.suptitle(title, y=1 - 0.12 / fig.get_size_inches()[1], va="top", fontsize=10)


def _floats(xs) -> list[float]:
    """A sequence, array or tensor of numbers as a list of floats."""
    return [float(x) for x in (xs.tolist() if hasattr(xs, "tolist") else xs)]


def rollout_columns(frames: FrameColumns, times, true_feats: FeatureColumns, pred_feats: FeatureColumns,
                    is_context, pca: PCA | None, caller: str):
    """Per-time-step inputs of a rollout figure or video, checked and PCA-coloured with one projection.

    Returns ``(times, is_context, frames, true_rgb, pred_rgb)`` as equal-length lists; the PCA is
    fitted on the encoder features when ``pca`` is None (on predictions if there are none).
    """
    times_l = _floats(times)
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
    width = _LABEL_W_IN + t * cell_w + (t - 1) * _GAP_X_IN + 0.1
    height = top_in + n_rows * cell_h + (n_rows - 1) * _GAP_Y_IN + 0.1
    fig = _new_figure(width, height, dpi)
    grid = _grid_axes(fig, n_rows, t, cell_w, cell_h, top_in, _LABEL_W_IN)

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
                    _context_square(ax)
                    continue
            if img is None:
                _blank(ax, NO_PREDICTION if name == "predicted" else PAST_END)
            else:
                _show(ax, img)
        _row_label(fig, grid[r][0], name)

    for c in range(t):
        grid[0][c].set_title(format_time(times_l[c]), fontsize=8, pad=3,
                             color="0.35" if ctx[c] else "black")

    # Dashed separator wherever context switches to prediction.
    top_y = grid[0][0].get_position().y1
    bot_y = grid[-1][0].get_position().y0
    for c in range(1, t):
        if ctx[c - 1] and not ctx[c]:
            x = (_LABEL_W_IN + c * (cell_w + _GAP_X_IN) - _GAP_X_IN / 2) / width
            fig.add_artist(Line2D([x, x], [bot_y, top_y], transform=fig.transFigure, color="0.3",
                                  linestyle="--", linewidth=1.0))
    _title(fig, title)
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
    times_l = _floats(times)
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
    grid_w = _LABEL_W_IN + t * cell_w + (t - 1) * _GAP_X_IN
    width = grid_w + _CBAR_GAP_IN + _CBAR_W_IN + _CBAR_LABEL_IN
    height = top_in + len(names) * cell_h + (len(names) - 1) * _GAP_Y_IN + 0.1
    fig = _new_figure(width, height, dpi)
    grid = _grid_axes(fig, len(names), t, cell_w, cell_h, top_in, _LABEL_W_IN)
    cmap = colormaps["magma"]
    for r, name in enumerate(names):
        for c in range(t):
            ax = grid[r][c]
            ax.set_label(f"{name}/{c}")
            img = frame_cols[c] if name == "frames" else rows[name][c]
            if img is None:
                _blank(ax, PAST_END)
            elif name == "frames":
                _show(ax, img)
            else:
                ax.imshow(img, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="auto",
                          extent=(0, 1, 1, 0))
        _row_label(fig, grid[r][0], name, fontsize=8, wrap=True)
    for c in range(t):
        grid[0][c].set_title(format_time(times_l[c]), fontsize=8, pad=3)
    top, bottom = grid[1 if names[0] == "frames" else 0][0].get_position(), grid[-1][0].get_position()
    _colour_bar(fig, grid_w + _CBAR_GAP_IN, bottom.y0, top.y1, vmax, cmap, "object feature gained", "colorbar")
    _title(fig, title)
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


def _grey(img: np.ndarray) -> np.ndarray:
    """Luma of a uint8 RGB image, float ``(H, W)`` in [0, 255]."""
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _mark_query(ax: Axes, rc: tuple[int, int], grid_hw: tuple[int, int], img_hw: tuple[int, int]) -> None:
    ph, pw = img_hw[0] / grid_hw[0], img_hw[1] / grid_hw[1]
    r, c = rc
    ax.add_patch(Rectangle((c * pw, r * ph), pw, ph, fill=False, edgecolor="red", linewidth=1.5, zorder=5))


def render_attention(
    frames: ImageLike | Sequence[ImageLike],
    attn: ImageLike,
    query_frame_img: ImageLike,
    query_rc: tuple[int, int],
    block_ids: Sequence[int],
    *,
    times: Sequence[float] | None = None,
    query_time: float | None = None,
    title: str | None = None,
    cell_inches: float = 1.3,
    dpi: int = 100,
) -> Figure:
    """Build the cross-attention figure (see :func:`attention_figure`) and return it without saving.

    Axes are labelled ``"frames/<col>"`` and ``"block<i>/<col>"`` (``i`` indexes ``block_ids``).
    """
    a = attn.detach().float().cpu().numpy() if isinstance(attn, Tensor) else np.asarray(attn, np.float32)
    if a.ndim != 4:
        raise ValueError(f"attn must have shape (num_blocks, T, H, W), got {a.shape}")
    nb, t, gh, gw = a.shape
    if len(block_ids) != nb:
        raise ValueError(f"{len(block_ids)} block_ids for {nb} attention blocks")
    if len(frames) != t:
        raise ValueError(f"{len(frames)} frames for attention over {t} past frames")
    if not (0 <= query_rc[0] < gh and 0 <= query_rc[1] < gw):
        raise ValueError(f"query_rc {tuple(query_rc)} outside the {gh}x{gw} patch grid")
    imgs = [to_uint8_image(f) for f in frames]
    qimg = to_uint8_image(query_frame_img)
    fh_px, fw_px = imgs[0].shape[:2]
    aspect = float(np.clip(fh_px / fw_px, 0.25, 4.0))
    cell_w, cell_h = cell_inches, cell_inches * aspect
    n_cols, n_rows = t + 1, nb + 1
    top_in = 0.3 + (0.35 if title else 0.0)
    grid_w = _LABEL_W_IN + n_cols * cell_w + (n_cols - 1) * _GAP_X_IN + _BAR_AXIS_IN
    width = grid_w + _CBAR_GAP_IN + _CBAR_W_IN + _CBAR_LABEL_IN
    height = top_in + n_rows * cell_h + (n_rows - 1) * _GAP_Y_IN + 0.25
    fig = _new_figure(width, height, dpi)
    grid = _grid_axes(fig, n_rows, n_cols, cell_w, cell_h, top_in, _LABEL_W_IN)
    for r in range(n_rows):
        for c in range(n_cols):
            grid[r][c].set_label(f"{'frames' if r == 0 else f'block{r - 1}'}/{c}")
        pos = grid[r][t].get_position()  # the last column moves right, making room for the bars' y axis
        grid[r][t].set_position(pos.translated(_BAR_AXIS_IN / width, 0))
    cmap = colormaps["turbo"]

    # Top row: past frames in colour, the future (query) frame in grey with the query patch in red.
    for c in range(t):
        ax = grid[0][c]
        ax.imshow(imgs[c], interpolation="bilinear", aspect="auto", extent=(0, fw_px, fh_px, 0))
        ax.set_title(format_time(times[c]) if times is not None else f"frame {c - t}", fontsize=8, pad=3)
    ax = grid[0][t]
    qh, qw = qimg.shape[:2]
    ax.imshow(_grey(qimg), cmap="gray", vmin=0, vmax=255, interpolation="bilinear", aspect="auto",
              extent=(0, qw, qh, 0))
    _mark_query(ax, tuple(query_rc), (gh, gw), (qh, qw))
    ax.set_title((format_time(query_time) + " (query)") if query_time is not None else "query",
                 fontsize=8, pad=3, color="red")

    # One row per block: attention overlaid on each past frame, one colour scale per block.
    for b in range(nb):
        amap = np.nan_to_num(a[b])  # (T, H, W)
        vmax = float(amap.max()) if amap.max() > 0 else 1.0
        for c in range(t):
            ax = grid[b + 1][c]
            ax.imshow(_grey(imgs[c]) * 0.75, cmap="gray", vmin=0, vmax=255, interpolation="bilinear",
                      aspect="auto", extent=(0, fw_px, fh_px, 0))
            norm = np.clip(amap[c] / vmax, 0.0, 1.0)  # (H, W)
            ax.imshow(cmap(norm), alpha=0.9 * np.sqrt(norm), interpolation="nearest",
                      aspect="auto", extent=(0, fw_px, fh_px, 0))
            _mark_query(ax, tuple(query_rc), (gh, gw), (fh_px, fw_px))
            ax.set_xlim(0, fw_px)
            ax.set_ylim(fh_px, 0)
        # Last column: attention mass per past frame (frame labels drawn inside the cell).
        ax = grid[b + 1][t]
        mass = amap.reshape(t, -1).sum(axis=1)
        mass = mass / mass.sum() if mass.sum() > 0 else mass
        ax.bar(np.arange(t), mass, color="0.4", width=0.7)
        ax.set_xlim(-0.6, t - 0.4)
        ax.set_ylim(-0.16, 1.05)
        ax.axhline(0, color="0.6", linewidth=0.5)
        for i in range(t):
            ax.text(i, -0.08, str(i - t), ha="center", va="center", fontsize=6)
        ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])
        ax.tick_params(axis="y", labelsize=6, length=2, pad=1)
        ax.set_ylabel("attention mass", fontsize=6, labelpad=1)
        # Colour bar of this block's scale (the overlay's colours; weights near 0 are also transparent).
        pos = grid[b + 1][0].get_position()
        _colour_bar(fig, grid_w + _CBAR_GAP_IN, pos.y0, pos.y1, vmax, cmap, "attention weight", f"colorbar/{b}")
        _row_label(fig, grid[b + 1][0], f"block {block_ids[b]}")
    _row_label(fig, grid[0][0], "frames")
    _title(fig, title)
    return fig


def attention_figure(
    frames: ImageLike | Sequence[ImageLike],
    attn: ImageLike,
    query_frame_img: ImageLike,
    query_rc: tuple[int, int],
    block_ids: Sequence[int],
    path: PathLike,
    *,
    times: Sequence[float] | None = None,
    query_time: float | None = None,
    title: str | None = None,
    cell_inches: float = 1.3,
    dpi: int = 100,
) -> Path:
    """Write a cross-attention figure like paper Fig. 6 and return its path.

    ``frames`` ``(T, H', W', 3)`` are the past frames, ``attn`` ``(num_blocks, T, H, W)`` the
    attention weights of one query (patch ``query_rc=(row, col)`` of the future frame
    ``query_frame_img`` ``(H', W', 3)``) over all past patches, one map per block in ``block_ids``.
    Top row: past frames and the future frame in grey with the query patch in red. Then one row per
    block: attention overlaid on the frames (one colour scale per block, query patch outlined in red)
    and, in the last column, the attention mass per past frame; a colour bar per block gives its scale.
    """
    fig = render_attention(frames, attn, query_frame_img, query_rc, block_ids, times=times,
                           query_time=query_time, title=title, cell_inches=cell_inches, dpi=dpi)
    return save_figure(fig, path)


#: line style per method name (baselines dashed/dotted and drawn on top, so no model curve hides them)
_CURVE_STYLES = {
    "autoregressive": dict(color="tab:blue", linestyle="-", marker="o", zorder=2),
    "model": dict(color="tab:blue", linestyle="-", marker="o", zorder=2),
    "direct": dict(color="tab:green", linestyle="-", marker="s", zorder=2),
    "copy-last": dict(color="black", linestyle="--", marker="D", zorder=4),
    "context-mean": dict(color="tab:orange", linestyle=":", marker="^", zorder=3),
}


def render_horizon_plot(
    horizons: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    ylabel: str = "L1 error",
    *,
    xlabel: str = "prediction horizon (s)",
    title: str | None = None,
    ylim: tuple[float | None, float | None] | None = None,
    dpi: int = 120,
) -> Figure:
    """The figure of :func:`horizon_plot`, not saved. The legend sits outside the axes (right), so it
    never covers a curve; known methods get fixed, distinct styles, baselines drawn above the model."""
    hs = [float(h) for h in horizons]
    fig = _new_figure(6.4, 3.4, dpi)
    ax = fig.add_axes((0.12, 0.15, 0.58, 0.72 if title else 0.78))
    markers = "osD^vP*X"
    for i, (name, ys) in enumerate(curves.items()):
        ys_f = [float("nan") if y is None else float(y) for y in ys]
        if len(ys_f) != len(hs):
            raise ValueError(f"curve {name!r} has {len(ys_f)} points for {len(hs)} horizons")
        style = _CURVE_STYLES.get(name.lower(), dict(
            marker=markers[i % len(markers)], zorder=2,
            linestyle="--" if "copy" in name.lower() or "baseline" in name.lower() else "-"))
        ax.plot(hs, ys_f, markersize=4, linewidth=1.5, label=name, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return fig


def horizon_plot(
    horizons: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: PathLike,
    ylabel: str = "L1 error",
    *,
    xlabel: str = "prediction horizon (s)",
    title: str | None = None,
    ylim: tuple[float | None, float | None] | None = None,
    dpi: int = 120,
) -> Path:
    """Line plot of a metric against prediction horizon, one line per method (paper Fig. 3).

    ``ylim=(bottom, top)`` fixes the y range, e.g. ``(0, 1)`` for rates; ``None`` for either end, or
    for ``ylim``, leaves it to the data.
    """
    fig = render_horizon_plot(horizons, curves, ylabel, xlabel=xlabel, title=title, ylim=ylim, dpi=dpi)
    return save_figure(fig, path)


def bar_plot(
    values: Mapping[str, float],
    path: PathLike,
    errors: Mapping[str, float] | None = None,
    ylabel: str = "",
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Bar chart of one number per label (optionally with ± error bars), e.g. for a report table."""
    names = list(values)
    ys = [float(values[n]) for n in names]
    err = None if errors is None else [float(errors.get(n, math.nan)) for n in names]
    fig = _new_figure(max(3.0, 0.8 * len(names) + 1.5), 3.2, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(np.arange(len(names)), ys, yerr=err, capsize=3, color="tab:blue", alpha=0.85)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=20 if max((len(n) for n in names), default=0) > 8 else 0,
                       ha="right" if max((len(n) for n in names), default=0) > 8 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)

