"""MP4 of a latent rollout: per time step, RGB frame | encoder PCA | prediction PCA, with timestamp."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..data.video import write_video
from .canvas import NO_PREDICTION, PAST_END, FrameColumns, format_time
from .figures import rollout_columns
from .pca import PCA, FeatureColumns, upsample_nearest

__all__ = ["write_rollout_mp4", "render_rollout_frames", "pick_codec"]

PathLike = Union[str, os.PathLike]

CONTEXT_RGB = (153, 153, 153)  # grey square in the prediction panel for context steps
_BLANK_RGB = (235, 235, 235)
_NOTE_RGB = (110, 110, 110)  # text on a blank panel
_GAP = 4  # pixels between panels and around the canvas
_MIN_PANEL = 128  # feature-only rollouts are upsampled to at least this height
#: default panel height of rollout videos: small frames (112 px) and 8x8 feature grids are scaled up
#: to it, so the three panels make a video about 800 px wide
MIN_PANEL_HEIGHT = 256


def pick_codec(preferred: Sequence[str] = ("libx264", "mpeg4")) -> str:
    """First encoder in ``preferred`` that this PyAV/FFmpeg build provides."""
    import av

    for name in preferred:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - codec missing from this build
            continue
    raise RuntimeError(f"none of the video encoders {list(preferred)} is available in this PyAV build")


def label_font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _panel(img: np.ndarray | None, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    h, w = hw
    if img is None:
        return np.full((h, w, 3), _BLANK_RGB, dtype=np.uint8)
    if img.shape[:2] == (h, w):
        return img
    if nearest:
        return upsample_nearest(img, (h, w))
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def render_rollout_frames(
    frames: FrameColumns,
    true_feats: FeatureColumns,
    pred_feats: FeatureColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    is_context: Sequence[bool] | np.ndarray | Tensor,
    pca: PCA | None = None,
    *,
    panel_height: int | None = None,
    min_panel_height: int = MIN_PANEL_HEIGHT,
    show_context_preds: bool = False,
) -> list[np.ndarray]:
    """Compose one uint8 RGB image ``(H, W, 3)`` per time step, with even ``H`` and ``W``.

    Layout: a header with the timestamp and "context"/"predicted", labels above three panels
    (frame | encoder | prediction). Feature maps are PCA-coloured with one shared projection
    (fitted on the encoder features unless ``pca`` is given) and upsampled nearest-neighbour.
    Context steps show a grey "context" square as prediction; missing inputs show a blank panel
    labelled "past the end of the video" (frame, encoder) or "no prediction".
    Panels are ``panel_height`` px high if given, else the frames' height scaled up to at least
    ``min_panel_height``.
    """
    times_l, ctx, frame_cols, true_rgb, pred_rgb = rollout_columns(
        frames, times, true_feats, pred_feats, is_context, pca, "write_rollout_mp4")
    t = len(times_l)

    # Panel size: the first frame's size, else the feature grid scaled up to >= _MIN_PANEL.
    ref = next((f for f in frame_cols if f is not None), None)
    if ref is not None:
        ph, pw = ref.shape[:2]
    else:
        grid = next((f for f in true_rgb + pred_rgb if f is not None), np.zeros((16, 16, 3)))
        s = max(1, -(-_MIN_PANEL // grid.shape[0]))
        ph, pw = grid.shape[0] * s, grid.shape[1] * s
    if panel_height is None and ph < min_panel_height:
        panel_height = min_panel_height
    if panel_height is not None:
        pw, ph = max(1, round(pw * panel_height / ph)), panel_height

    font_px = int(np.clip(ph // 12, 10, 20))
    font = label_font(font_px)
    line_h = font_px + 6
    header = 2 * line_h + 4  # timestamp line + panel-label line + status bar
    width = 3 * pw + 4 * _GAP
    height = header + ph + 2 * _GAP
    width, height = width + width % 2, height + height % 2  # yuv420p needs even sizes
    labels = ("frame", "encoder", "prediction")

    out: list[np.ndarray] = []
    for i in range(t):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        status = "context" if ctx[i] else "predicted"
        draw.text((_GAP, 2), f"{format_time(times_l[i])}   step {i + 1}/{t}   {status}", fill=(0, 0, 0),
                  font=font)
        bar_colour = CONTEXT_RGB if ctx[i] else (230, 120, 20)
        draw.rectangle([0, 2 * line_h, width - 1, 2 * line_h + 3], fill=bar_colour)
        pred_img = pred_rgb[i] if (show_context_preds or not ctx[i]) else None
        panels = [
            _panel(frame_cols[i], (ph, pw), nearest=False),
            _panel(true_rgb[i], (ph, pw), nearest=True),
            _panel(pred_img, (ph, pw), nearest=True),
        ]
        notes = [PAST_END if frame_cols[i] is None else None, PAST_END if true_rgb[i] is None else None,
                 None if pred_img is not None else "context" if ctx[i] else NO_PREDICTION]
        if ctx[i] and pred_img is None:
            panels[2] = np.full((ph, pw, 3), CONTEXT_RGB, dtype=np.uint8)
        for j, (lab, p, note) in enumerate(zip(labels, panels, notes)):
            x0 = _GAP + j * (pw + _GAP)
            draw.text((x0, line_h), lab, fill=(60, 60, 60), font=font)
            canvas.paste(Image.fromarray(np.ascontiguousarray(p)), (x0, header + _GAP))
            if note is not None:
                draw.text((x0 + pw // 2, header + _GAP + ph // 2), note, font=font, anchor="mm", align="center",
                          fill=(255, 255, 255) if note == "context" else _NOTE_RGB)
        out.append(np.asarray(canvas))
    return out


def write_rollout_mp4(
    frames: FrameColumns,
    true_feats: FeatureColumns,
    pred_feats: FeatureColumns,
    times: Sequence[float] | np.ndarray | Tensor,
    is_context: Sequence[bool] | np.ndarray | Tensor,
    path: PathLike,
    pca: PCA | None = None,
    fps: float = 8,
    *,
    seconds_per_step: float = 0.5,
    panel_height: int | None = None,
    min_panel_height: int = MIN_PANEL_HEIGHT,
    show_context_preds: bool = False,
    codec: str | None = None,
) -> Path:
    """Write an MP4 (yuv420p; libx264 if available, else mpeg4) showing each time step for
    ``seconds_per_step`` (its image repeated ``round(fps * seconds_per_step)`` times, at least once),
    at a frame rate players handle well (8 fps by default).

    Inputs are as for :func:`dinoworld.viz.rollout_figure`; see :func:`render_rollout_frames`.
    """
    images = render_rollout_frames(frames, true_feats, pred_feats, times, is_context, pca,
                                   panel_height=panel_height, min_panel_height=min_panel_height,
                                   show_context_preds=show_context_preds)
    hold = max(1, round(fps * seconds_per_step))
    images = [im for im in images for _ in range(hold)]
    codec = codec or pick_codec()
    options = {"crf": "18"} if codec == "libx264" else {"b": "4000000"} if codec == "mpeg4" else None
    p = Path(path)
    write_video(p, np.stack(images), fps, codec=codec, options=options)
    return p
