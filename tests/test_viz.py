"""Tests for dinoworld.viz: PCA colouring, rollout/attention/horizon figures, rollout MP4."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from dinoworld.viz import (
    attention_figure,
    fit_pca,
    horizon_plot,
    motion_figure,
    pca_to_rgb,
    render_attention,
    render_motion,
    render_rollout,
    render_rollout_frames,
    rollout_figure,
    upsample_nearest,
    write_rollout_mp4,
)

# ----------------------------------------------------------------------------------------------
# PCA
# ----------------------------------------------------------------------------------------------


def _synthetic(n: int = 4000, d: int = 24, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Features with a dominant direction ``u`` (std 5) and a second one ``v`` (std 2), noise std 0.1."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g))
    u, v = q[:, 0], q[:, 1]
    x = (5 * torch.randn(n, 1, generator=g)) * u + (2 * torch.randn(n, 1, generator=g)) * v
    x = x + 0.1 * torch.randn(n, d, generator=g) + 3.0  # non-zero mean
    return x, u, v


@pytest.mark.parametrize("d", [24, 200])  # full eigh / subspace iteration
def test_fit_pca_recovers_dominant_directions(d: int) -> None:
    x, u, v = _synthetic(d=d)
    pca = fit_pca(x.reshape(40, 10, 10, -1), k=3)
    assert pca.components.shape == (3, x.shape[1]) and pca.mean.shape == (x.shape[1],)
    assert abs(float(pca.components[0] @ u)) > 0.99
    assert abs(float(pca.components[1] @ v)) > 0.99
    gram = pca.components @ pca.components.T
    assert torch.allclose(gram, torch.eye(3), atol=1e-4)
    assert torch.allclose(pca.mean, x.mean(0), atol=1e-4)
    proj = (x - pca.mean) @ pca.components.T  # fixed colour range = 1st/99th percentiles
    assert torch.allclose(pca.lo, torch.quantile(proj, 0.01, dim=0), atol=1e-3)
    assert torch.allclose(pca.hi, torch.quantile(proj, 0.99, dim=0), atol=1e-3)
    # Subsampling keeps the answer (and is seeded, hence deterministic).
    sub = fit_pca(x, k=3, max_samples=500, seed=1)
    assert abs(float(sub.components[0] @ u)) > 0.99
    sub2 = fit_pca(x, k=3, max_samples=500, seed=1)
    assert torch.equal(sub.components, sub2.components) and torch.equal(sub.lo, sub2.lo)


def test_fit_pca_ignores_missing_rows_and_is_deterministic() -> None:
    x, _, _ = _synthetic(n=1000)
    a = fit_pca(x)
    b = fit_pca(x)
    assert torch.equal(a.components, b.components) and torch.equal(a.hi, b.hi)
    with_nan = torch.cat([x, torch.full((300, x.shape[1]), float("nan"))])
    c = fit_pca(with_nan)
    assert torch.allclose(a.components, c.components, atol=1e-4)
    assert torch.allclose(a.lo, c.lo, atol=1e-4)
    with pytest.raises(ValueError):
        fit_pca(torch.full((10, 8), float("nan")))
    with pytest.raises(ValueError):
        fit_pca(x, k=x.shape[1] + 1)


def test_pca_to_rgb_shape_dtype_and_full_range() -> None:
    x, _, _ = _synthetic(n=2 * 20 * 25)
    feats = x.reshape(2, 20, 25, -1)  # (T, H, W, D)
    pca = fit_pca(feats)
    rgb = pca_to_rgb(feats, pca)
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.shape == (2, 20, 25, 3)
    # 1st/99th percentile scaling with clipping: every channel spans the full range on the fit data.
    flat = rgb.reshape(-1, 3)
    assert np.all(flat.min(0) == 0) and np.all(flat.max(0) == 255)
    assert np.array_equal(rgb, pca_to_rgb(feats.numpy(), pca))  # numpy input, deterministic
    # The first channel follows the first component monotonically.
    proj = pca.project(feats)[..., 0].flatten()
    order = torch.argsort(proj)
    r = torch.from_numpy(rgb[..., 0].reshape(-1).astype(np.int64))[order]
    assert torch.all(r[1:] >= r[:-1])


def test_same_projection_gives_identical_colours_for_identical_features() -> None:
    x, _, _ = _synthetic(n=3 * 8 * 8)
    true = x.reshape(3, 8, 8, -1)
    pca = fit_pca(true)
    pred = true.clone()
    pred[1:, 2:5] = pred[1:, 2:5] * 0.5 + 1.0  # differs only in a block
    pred[2, 0, 0] = float("nan")
    rgb_t, rgb_p = pca_to_rgb(true, pca), pca_to_rgb(pred, pca)
    same = torch.ones(3, 8, 8, dtype=torch.bool)
    same[1:, 2:5] = False
    same[2, 0, 0] = False
    assert np.array_equal(rgb_t[same.numpy()], rgb_p[same.numpy()])
    assert not np.array_equal(rgb_t[~same.numpy()], rgb_p[~same.numpy()])
    assert np.all(rgb_p[2, 0, 0] == 0)  # non-finite -> black
    # Encoder and prediction alone (each of one frame) still get identical colours.
    assert np.array_equal(pca_to_rgb(true[0], pca), pca_to_rgb(pred[0], pca))


def test_upsample_nearest() -> None:
    img = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    up = upsample_nearest(img, (4, 6))
    assert up.shape == (4, 6, 1)
    assert np.array_equal(up[..., 0], np.repeat(np.repeat(img[..., 0], 2, 0), 2, 1))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _rollout_inputs(t: int = 5, n_ctx: int = 2, n_gt: int | None = None, hw: int = 4, d: int = 16):
    """Frames (T, 32, 32, 3) without grey, features (T, hw, hw, D); GT missing after ``n_gt``."""
    g = torch.Generator().manual_seed(0)
    frames = np.zeros((t, 32, 32, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, None, :]
    frames[..., 2] = 200
    true = torch.randn(t, hw, hw, d, generator=g)
    pred = true + 0.3 * torch.randn(t, hw, hw, d, generator=g)
    n_gt = t if n_gt is None else n_gt
    true[n_gt:] = float("nan")
    frames_l = [f if i < n_gt else None for i, f in enumerate(frames)]
    times = np.arange(t) * 0.5
    ctx = np.arange(t) < n_ctx
    return frames_l, times, true, pred, ctx


def _cell_pixel(fig, label: str, fx: float, fy: float) -> tuple[int, int]:
    """PNG (x, y) of the point at fraction (fx, fy) from the top-left of the axes named ``label``."""
    ax = next(a for a in fig.axes if a.get_label() == label)
    bb = ax.get_window_extent()
    height_px = int(round(fig.get_size_inches()[1] * fig.dpi))
    return int(bb.x0 + fx * bb.width), int(height_px - (bb.y1 - fy * bb.height))


def test_rollout_figure_png_context_marking_and_colours(tmp_path: Path) -> None:
    frames, times, true, pred, ctx = _rollout_inputs(t=5, n_ctx=2, n_gt=4)
    pca = fit_pca(true)  # what the figure must use by default: a PCA of the encoder features
    path = rollout_figure(frames, times, true, pred, ctx, tmp_path / "sub" / "rollout.png", title="demo")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    fig = render_rollout(frames, times, true, pred, ctx, title="demo")
    w_in, h_in = fig.get_size_inches()
    assert img.shape[:2] == (round(h_in * fig.dpi), round(w_in * fig.dpi))

    # Context columns: grey square in the prediction row (sampled away from the "context" label).
    for c in (0, 1):
        x, y = _cell_pixel(fig, f"predicted/{c}", 0.2, 0.2)
        assert np.all(np.abs(img[y, x] - 153) <= 3), img[y, x]
    # Predicted columns: the prediction's PCA colour of the patch under the sample point.
    pred_rgb = pca_to_rgb(pred, pca).astype(int)  # (T, 4, 4, 3)
    enc_rgb = pca_to_rgb(true, pca).astype(int)
    for c, fx, fy in ((2, 0.375, 0.625), (4, 0.27, 0.52)):  # patch (2, 1): centre; near its corner
        x, y = _cell_pixel(fig, f"predicted/{c}", fx, fy)
        assert np.all(np.abs(img[y, x] - pred_rgb[c, 2, 1]) <= 2), (img[y, x], pred_rgb[c, 2, 1])
    x, y = _cell_pixel(fig, "encoder/1", 0.875, 0.125)  # patch (0, 3)
    assert np.all(np.abs(img[y, x] - enc_rgb[1, 0, 3]) <= 2)
    # No ground truth beyond the video: blank (white) encoder and frame cells (sampled above their label).
    for row in ("encoder", "frames"):
        x, y = _cell_pixel(fig, f"{row}/4", 0.5, 0.15)
        assert np.all(img[y, x] == 255)


def test_blank_cells_past_the_end_of_the_video_are_labelled() -> None:
    frames, times, true, pred, ctx = _rollout_inputs(t=5, n_ctx=2, n_gt=3)
    fig = render_rollout(frames, times, true, list(pred[:4]) + [None], ctx)
    texts = {a.get_label(): " ".join(t.get_text() for t in a.texts).replace("\n", " ") for a in fig.axes}
    for label in ("frames/3", "frames/4", "encoder/3", "encoder/4"):
        assert texts[label] == "past the end of the video", label
    assert texts["predicted/4"] == "no prediction"
    assert texts["encoder/2"] == texts["predicted/3"] == ""
    motion = render_motion(np.stack(frames[:3]), times[2:], {"arrived": [np.ones((4, 4)), None, None]})
    assert "past the end" in " ".join(t.get_text() for a in motion.axes if a.get_label() == "arrived/1"
                                      for t in a.texts)

    # In the video, the blank (light grey) frame and encoder panels carry dark text.
    image = render_rollout_frames(frames, true, pred, times, ctx)[4]
    for third in (0, 1):
        panel = image[:, third * image.shape[1] // 3:(third + 1) * image.shape[1] // 3]
        ys, xs = np.nonzero(np.all(panel == 235, axis=-1))
        blank = panel[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert blank.shape[0] > 100 and (blank.max(axis=-1) < 160).sum() > 50, third


def test_motion_figure_draws_each_map_on_the_first_rows_scale(tmp_path: Path) -> None:
    frames = np.full((3, 16, 16, 3), 200, np.uint8)
    true = [np.zeros((4, 4)), np.zeros((4, 4)), None]  # no truth past the video's end: a blank cell
    true[0][1, 2], true[1][2, 3] = 2.0, 4.0
    pred = [np.full((4, 4), 1.0), np.full((4, 4), 8.0), np.zeros((4, 4))]
    maps = {"arrived": true, "predicted": pred}
    fig = render_motion(frames, [1.0, 1.25, 1.5], maps, title="t")
    by_label = {a.get_label(): a for a in fig.axes}
    assert {"frames/0", "arrived/2", "predicted/1", "colorbar"} <= set(by_label)
    img = by_label["arrived/1"].images[0]
    assert np.array_equal(img.get_array(), true[1]) and img.get_clim() == (0.0, 4.0)  # scale: max of the truth
    assert by_label["predicted/1"].images[0].get_clim() == (0.0, 4.0)  # a prediction above it saturates
    assert not by_label["arrived/2"].images  # blank
    path = motion_figure(frames, [1.0, 1.25, 1.5], maps, tmp_path / "m.png")
    assert Image.open(path).size[0] > 300
    with pytest.raises(ValueError, match="columns"):
        render_motion(frames, [1.0, 1.25], maps)


def test_rollout_figure_grows_with_columns(tmp_path: Path) -> None:
    sizes = []
    for t in (3, 6):
        frames, times, true, pred, ctx = _rollout_inputs(t=t, n_ctx=2)
        p = rollout_figure(frames, times, true, pred, ctx, tmp_path / f"r{t}.png")
        with Image.open(p) as im:
            im.verify()
        sizes.append(Image.open(p).size)
    assert sizes[1][0] > sizes[0][0] * 1.5 and sizes[1][1] == sizes[0][1]
    # Without frames (features only) the figure has two rows, so it is shorter.
    _, times, true, pred, ctx = _rollout_inputs(t=3, n_ctx=2)
    p = rollout_figure(None, times, true, [None, None, pred[2]], ctx, tmp_path / "nof.png")
    assert Image.open(p).size[1] < sizes[0][1]


def test_attention_figure_marks_query(tmp_path: Path) -> None:
    frames, times, _, _, _ = _rollout_inputs(t=5)
    frames = np.stack(frames[:4])  # (4, 32, 32, 3) past frames, no saturated red
    attn = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    attn = attn / attn.sum(dim=(1, 2, 3), keepdim=True)
    paths = []
    for n_past in (2, 4):
        paths.append(attention_figure(frames[:n_past], attn[:, :n_past], frames[-1], (1, 2), [6, 16],
                                      tmp_path / f"attn{n_past}.png", times=times[:n_past],
                                      query_time=float(times[4])))
    img = np.asarray(Image.open(paths[1]).convert("RGB")).astype(int)
    fig = render_attention(frames, attn, frames[-1], (1, 2), [6, 16], times=times[:4],
                           query_time=float(times[4]))
    w_in, h_in = fig.get_size_inches()
    assert img.shape[:2] == (round(h_in * fig.dpi), round(w_in * fig.dpi))

    def red_in(label: str, fx: tuple[float, float], fy: tuple[float, float]) -> int:
        (x0, y0), (x1, y1) = _cell_pixel(fig, label, fx[0], fy[0]), _cell_pixel(fig, label, fx[1], fy[1])
        cell = img[y0:y1, x0:x1]
        return int(((cell[..., 0] > 200) & (cell[..., 1] < 60) & (cell[..., 2] < 60)).sum())

    # Query patch (row 1, col 2) of a 4x4 grid = [0.5, 0.75] x [0.25, 0.5] of the cell, outlined in red
    # on the future frame and on the attention maps; nothing red elsewhere in the cell.
    for label in ("frames/4", "block0/0", "block1/3"):
        assert red_in(label, (0.45, 0.8), (0.2, 0.55)) > 20, label
        assert red_in(label, (0.0, 0.4), (0.6, 1.0)) == 0, label
    assert red_in("frames/0", (0.0, 1.0), (0.0, 1.0)) == 0
    assert Image.open(paths[1]).size[0] > Image.open(paths[0]).size[0]
    with pytest.raises(ValueError):
        attention_figure(frames, attn, frames[-1], (1, 2), [6], tmp_path / "bad.png")


def test_attention_figure_has_a_colour_bar_per_block() -> None:
    frames, times, _, _, _ = _rollout_inputs(t=5)
    attn = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    attn = attn / attn.sum(dim=(1, 2, 3), keepdim=True)
    fig = render_attention(np.stack(frames[:4]), attn, frames[4], (1, 2), [6, 16], times=times[:4],
                           query_time=float(times[4]))
    bars = [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert len(bars) == 2
    fig.canvas.draw()
    for b, cax in enumerate(bars):
        # the bar's scale is the block's: 0 .. its largest attention weight, beside that block's row
        lo, hi = cax._colorbar.mappable.get_clim()
        assert lo == 0 and hi == pytest.approx(float(attn[b].max()), rel=1e-5)
        row = next(a for a in fig.axes if a.get_label() == f"block{b}/0").get_window_extent()
        last = next(a for a in fig.axes if a.get_label() == f"block{b}/4").get_window_extent()
        box = cax.get_window_extent()
        assert box.x0 > last.x1 and abs(box.y0 - row.y0) < 1 and abs(box.y1 - row.y1) < 1
    assert fig.get_tightbbox().x1 <= fig.bbox.x1 + 1  # tick labels stay inside the figure


def test_attention_mass_bars_have_a_labelled_y_axis() -> None:
    frames, times, _, _, _ = _rollout_inputs(t=5)
    attn = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    fig = render_attention(np.stack(frames[:4]), attn, frames[4], (1, 2), [6, 16], times=times[:4])
    fig.canvas.draw()
    by_label = {a.get_label(): a for a in fig.axes}
    for b in range(2):
        bars, left = by_label[f"block{b}/4"], by_label[f"block{b}/3"]
        assert bars.get_ylabel() == "attention mass"
        ticks = [t for t in bars.get_yticklabels() if t.get_text()]
        assert [t.get_text() for t in ticks] == ["0", "0.5", "1"]
        # tick labels and axis label sit between the bars and the attention map on their left
        for artist in ticks + [bars.yaxis.label]:
            box = artist.get_window_extent()
            assert left.get_window_extent().x1 < box.x0 and box.x1 < bars.get_window_extent().x0


def test_horizon_plot_ylim_starts_rates_at_zero(tmp_path: Path) -> None:
    from dinoworld.viz import render_horizon_plot

    hs, rates = [1, 2, 4, 8], {"cem": [0.0, 0.0, 0.5, 1.0], "random": [0.0, 0.0, 0.0, 0.25]}
    assert render_horizon_plot(hs, rates, "success rate").axes[0].get_ylim()[0] < 0  # the default: autoscale
    assert render_horizon_plot(hs, rates, "success rate", ylim=(0, 1)).axes[0].get_ylim() == (0, 1)
    assert render_horizon_plot(hs, rates, "success rate", ylim=(0, None)).axes[0].get_ylim()[0] == 0
    p = horizon_plot(hs, rates, tmp_path / "budget_sweep.png", ylabel="success rate", ylim=(0, 1))
    with Image.open(p) as im:
        im.verify()


def _full_disk(target) -> None:
    """Write some bytes to a path or file object, then fail as a full disk does."""
    if isinstance(target, (str, os.PathLike)):
        Path(target).write_bytes(b"partial")
    else:
        target.write(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("kind", ["figure", "video"])
def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    frames, times, true, pred, ctx = _rollout_inputs(t=3, n_ctx=1)
    if kind == "figure":
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        path = tmp_path / "rollout.png"
        write = lambda: rollout_figure(frames, times, true, pred, ctx, path)  # noqa: E731
        monkeypatch.setattr(FigureCanvasAgg, "print_png", lambda self, target, *a, **k: _full_disk(target))
    else:
        path = tmp_path / "rollout.mp4"
        write = lambda: write_rollout_mp4(frames, true, pred, times, ctx, path, min_panel_height=16)  # noqa: E731
        monkeypatch.setattr(av, "open", lambda target, *a, **k: _full_disk(target))
    with pytest.raises(OSError, match="No space"):
        write()
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    path.write_bytes(b"previous")
    with pytest.raises(OSError, match="No space"):
        write()
    assert list(tmp_path.iterdir()) == [path] and path.read_bytes() == b"previous"
    monkeypatch.undo()
    write()
    assert list(tmp_path.iterdir()) == [path] and path.stat().st_size > 1000


def test_horizon_plot(tmp_path: Path) -> None:
    hs = [0.2, 0.4, 0.6, 0.8]
    curves = {"direct": [0.3, 0.4, 0.5, 0.6], "autoregressive": [0.32, 0.4, 0.45, 0.5],
              "copy-last": [0.5, 0.6, 0.7, 0.8]}
    p = horizon_plot(hs, curves, tmp_path / "h.png")
    with Image.open(p) as im:
        im.verify()
    with pytest.raises(ValueError):
        horizon_plot(hs, {"direct": [0.1, 0.2]}, tmp_path / "bad.png")


def test_horizon_plot_legend_never_covers_the_copy_last_curve() -> None:
    """The real-clip plot: copy-last was a dashed line hidden under the model curves and the legend."""
    from dinoworld.viz import render_horizon_plot

    hs = [0.25 * (i + 1) for i in range(8)]
    model = [0.03 + 0.02 * i for i in range(8)]
    curves = {"autoregressive": model, "direct": [m + 1e-4 for m in model],
              "copy-last": [m - 1e-4 for m in model], "context-mean": [0.09 - 0.001 * i for i in range(8)]}
    fig = render_horizon_plot(hs, curves, "L1")
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == list(curves)
    # the legend is outside the axes, and inside the figure
    lb, ab = legend.get_window_extent(), ax.get_window_extent()
    assert lb.x0 >= ab.x1 and lb.x1 <= fig.bbox.x1
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    copy = lines["copy-last"]
    # copy-last is drawn above the model curves it overlaps, in a style of its own
    assert all(copy.get_zorder() > lines[k].get_zorder() for k in ("autoregressive", "direct"))
    styles = {k: (ln.get_color(), ln.get_linestyle(), ln.get_marker()) for k, ln in lines.items()}
    assert len(set(styles.values())) == len(styles)
    assert copy.get_linestyle() != lines["autoregressive"].get_linestyle()


# ----------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------


def test_rollout_mp4_is_large_and_plays_at_4fps_or_more(tmp_path: Path) -> None:
    """A 112-px rollout used to give a 352x156 video at 2 fps; now panels are >= 256 px high and each
    step is held 0.5 s in an 8-fps video."""
    t = 6
    g = torch.Generator().manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 255, (t, 112, 112, 3), dtype=np.uint8)
    true = torch.randn(t, 8, 8, 16, generator=g)
    pred = true + 0.3 * torch.randn(t, 8, 8, 16, generator=g)
    p = write_rollout_mp4(list(frames), true, pred, np.arange(t) * 0.25, np.arange(t) < 2, tmp_path / "r.mp4")
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert s.codec_context.width >= 512 and s.codec_context.height >= 256
        assert float(s.average_rate) >= 4
        n = sum(1 for _ in c.decode(video=0))
    assert n / float(s.average_rate) == pytest.approx(0.5 * t)  # each step on screen for 0.5 s


def test_write_rollout_mp4_decodes(tmp_path: Path) -> None:
    t = 5
    frames, times, true, pred, ctx = _rollout_inputs(t=t, n_ctx=2, n_gt=4)
    frames = [None if f is None else f[:31, :29] for f in frames]  # odd sizes -> padded to even
    expected = render_rollout_frames(frames, true, pred, times, ctx)
    eh, ew = expected[0].shape[:2]
    assert eh % 2 == 0 and ew % 2 == 0
    p = write_rollout_mp4(frames, true, pred, times, ctx, tmp_path / "v" / "r.mp4", fps=2)
    with av.open(str(p)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == t
    assert all(d.shape == (eh, ew, 3) for d in decoded)
    # Decoded content matches what was rendered (lossy codec: loose bound on the mean error).
    for d, e in zip(decoded, expected):
        assert np.abs(d.astype(int) - e.astype(int)).mean() < 8
    # Context steps show a grey prediction panel (most of a 31x29 panel); predicted steps do not.
    def n_grey(im: np.ndarray) -> int:
        return int(np.all(im == 153, axis=-1).sum())

    assert n_grey(expected[0]) > 0.7 * 31 * 29 and n_grey(expected[1]) > 0.7 * 31 * 29
    assert n_grey(expected[3]) < 0.1 * 31 * 29
    assert n_grey(expected[0]) - n_grey(expected[3]) > 0.7 * 31 * 29
