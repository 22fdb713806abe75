"""What every figure shares: figure and grid layout in inches, image cells, labels, colour bars, atomic saving.

All figures use matplotlib's object API (``Figure`` + ``FigureCanvasAgg``): no pyplot state, no display.
Layouts are fixed in inches, so figure size grows linearly with the number of columns.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ..files import atomic_write

PathLike = Union[str, os.PathLike]
ImageLike = Union[Tensor, np.ndarray]
FrameColumns = Union[ImageLike, Sequence[Union[ImageLike, None]], None]

CONTEXT_GREY = 0.6  # matplotlib grey level of the "context" squares in the prediction row
BLANK_EDGE = "0.85"
PAST_END = "past the end\nof the video"  # label of a blank cell where the video has no frame
NO_PREDICTION = "no prediction"
LABEL_W_IN = 0.95  # left margin for row labels (inches)
GAP_X_IN = 0.06
GAP_Y_IN = 0.08
CBAR_GAP_IN, CBAR_W_IN, CBAR_LABEL_IN = 0.1, 0.12, 0.75  # attention colour bars, right of the grid
BAR_AXIS_IN = 0.42  # room left of the attention-mass column for its y axis


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


def new_figure(width_in: float, height_in: float, dpi: int) -> Figure:
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


def grid_axes(
    fig: Figure, n_rows: int, n_cols: int, cell_w: float, cell_h: float, top_in: float, label_w: float
) -> list[list[Axes]]:
    """Place an ``n_rows x n_cols`` grid of axes at fixed inch positions."""
    fw, fh = fig.get_size_inches()
    rows = []
    for r in range(n_rows):
        row = []
        for c in range(n_cols):
            x0 = label_w + c * (cell_w + GAP_X_IN)
            y0 = fh - top_in - (r + 1) * cell_h - r * GAP_Y_IN
            ax = fig.add_axes((x0 / fw, y0 / fh, cell_w / fw, cell_h / fh))
            ax.set_xticks([])
            ax.set_yticks([])
            row.append(ax)
        rows.append(row)
    return rows


def blank_cell(ax: Axes, label: str) -> None:
    """An empty cell with a light frame and ``label`` in its middle."""
    for s in ax.spines.values():
        s.set_edgecolor(BLANK_EDGE)
    ax.text(0.5, 0.5, label, transform=ax.transAxes, ha="center", va="center", color="0.45", fontsize=7)


def show_image(ax: Axes, img: np.ndarray) -> None:
    """Show an image filling the axes; feature maps are upsampled nearest-neighbour."""
    ax.imshow(img, interpolation="nearest", aspect="auto", extent=(0, 1, 1, 0))
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)


def context_square(ax: Axes) -> None:
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, color=str(CONTEXT_GREY), zorder=3))
    ax.text(0.5, 0.5, "context", transform=ax.transAxes, ha="center", va="center", color="white",
            fontsize=7, zorder=4)


def row_label(fig: Figure, ax: Axes, text: str, fontsize: int = 9, **kw) -> None:
    """A row's label, right-aligned in the left margin at the height of the row's first axes ``ax``."""
    pos = ax.get_position()
    fig.text((LABEL_W_IN - 0.08) / fig.get_size_inches()[0], pos.y0 + pos.height / 2, text, ha="right",
             va="center", fontsize=fontsize, **kw)


def colour_bar(fig: Figure, x_in: float, y0: float, y1: float, vmax: float, cmap, label: str, name: str) -> None:
    """A colour bar of ``cmap`` on ``[0, vmax]`` at ``x_in`` inches from the left, spanning figure
    fractions ``y0..y1``; its axes are labelled ``name``."""
    fw = fig.get_size_inches()[0]
    cax = fig.add_axes((x_in / fw, y0, CBAR_W_IN / fw, y1 - y0))
    cax.set_label(name)
    cbar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax), cmap), cax=cax)
    cbar.ax.tick_params(labelsize=6)
    cbar.set_label(label, fontsize=6)


def figure_title(fig: Figure, title: str | None) -> None:
    """The figure's title (if any), 0.12 in below its top edge."""
    if title:
        fig.suptitle(title, y=1 - 0.12 / fig.get_size_inches()[1], va="top", fontsize=10)


def as_floats(xs) -> list[float]:
    """A sequence, array or tensor of numbers as a list of floats."""
    return [float(x) for x in (xs.tolist() if hasattr(xs, "tolist") else xs)]

