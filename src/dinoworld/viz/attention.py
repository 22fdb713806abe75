"""Cross-attention maps of the predictor's queries (paper Fig. 6)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from .canvas import (
    BAR_AXIS_IN,
    CBAR_GAP_IN,
    CBAR_LABEL_IN,
    CBAR_W_IN,
    GAP_X_IN,
    GAP_Y_IN,
    LABEL_W_IN,
    ImageLike,
    PathLike,
    colour_bar,
    figure_title,
    format_time,
    grid_axes,
    new_figure,
    row_label,
    save_figure,
    to_uint8_image,
)

__all__ = ["render_attention", "attention_figure"]


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
    grid_w = LABEL_W_IN + n_cols * cell_w + (n_cols - 1) * GAP_X_IN + BAR_AXIS_IN
    width = grid_w + CBAR_GAP_IN + CBAR_W_IN + CBAR_LABEL_IN
    height = top_in + n_rows * cell_h + (n_rows - 1) * GAP_Y_IN + 0.25
    fig = new_figure(width, height, dpi)
    grid = grid_axes(fig, n_rows, n_cols, cell_w, cell_h, top_in, LABEL_W_IN)
    for r in range(n_rows):
        for c in range(n_cols):
            grid[r][c].set_label(f"{'frames' if r == 0 else f'block{r - 1}'}/{c}")
        pos = grid[r][t].get_position()  # the last column moves right, making room for the bars' y axis
        grid[r][t].set_position(pos.translated(BAR_AXIS_IN / width, 0))
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
        colour_bar(fig, grid_w + CBAR_GAP_IN, pos.y0, pos.y1, vmax, cmap, "attention weight", f"colorbar/{b}")
        row_label(fig, grid[b + 1][0], f"block {block_ids[b]}")
    row_label(fig, grid[0][0], "frames")
    figure_title(fig, title)
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

