"""Dense forecasting: scoring by hand, protocols, readers on fake official layouts, the synthetic
probe, present-time heads and the CLI end to end (tiny predictor, pixel-pyramid stand-in)."""

import argparse
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dinoworld.cli import main
from dinoworld.cli.eval import add_forecast_args, run_forecast
from dinoworld.cli.make_probe import MAKE_FORECAST_PROBE
from dinoworld.data.synthetic import make_moving_objects_video
from dinoworld.encoders import load_encoder
from dinoworld.errors import UserError
from dinoworld.eval.forecast import (
    PROTOCOLS,
    Scoring,
    TaskScore,
    confusion_matrix,
    evaluate_forecast,
    forecast_features,
    iou_per_class,
    mean_iou,
    paired_bootstrap_ci,
    rmse,
    sliding_average,
    sliding_windows,
    windows_of,
)
from dinoworld.eval.forecast.heads import HeadConfig, load_head, save_head, to_tensor, train_head
from dinoworld.eval.forecast.probe import render_labelled_scene
from dinoworld.eval.forecast.readers import (
    read_cityscapes,
    read_dense,
    read_kitti,
    read_synthetic,
    read_vspw,
    write_depth_png,
    write_index_png,
)
from dinoworld.model import WorldModel, build_predictor, copy_last_prediction


# -- scoring by hand -------------------------------------------------------------------------------
def test_confusion_and_miou_by_hand():
    label = np.array([[0, 0, 1, 255],
                      [2, 2, 1, 0]])
    pred = np.array([[0, 1, 1, 2],
                     [2, 0, 1, 0]])
    conf = confusion_matrix(pred, label, num_classes=4)  # class 3 absent from both
    want = np.zeros((4, 4), np.int64)
    # truth 0 at (0,0)->0, (0,1)->1, (1,3)->0 ; truth 1 at (0,2)->1, (1,2)->1 ; truth 2 at (1,0)->2, (1,1)->0
    want[0, 0], want[0, 1], want[1, 1], want[2, 2], want[2, 0] = 2, 1, 2, 1, 1
    assert (conf == want).all()  # the 255 pixel (predicted 2) is not counted anywhere
    iou = iou_per_class(conf)
    # class 0: tp 2, fp 1 (truth 2 -> 0), fn 1 -> 2/4 ; class 1: tp 2, fp 1, fn 0 -> 2/3 ; class 2: tp 1, fn 1 -> 1/2
    assert iou[:3] == pytest.approx([0.5, 2 / 3, 0.5]) and math.isnan(iou[3])
    assert mean_iou(conf) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    # one matrix summed over the split, not a mean of per-image mIoUs
    c2 = confusion_matrix(np.array([3, 3]), np.array([3, 255]), 4)
    total = conf + c2
    assert mean_iou(total) == pytest.approx((0.5 + 2 / 3 + 0.5 + 1.0) / 4)
    assert mean_iou(c2) == pytest.approx(1.0)
    assert mean_iou(np.stack([conf, c2, total])) == pytest.approx([mean_iou(conf), 1.0, mean_iou(total)])  # a stack
    with pytest.raises(ValueError):
        confusion_matrix(np.array([4]), np.array([0]), 4)


def test_rmse_by_hand():
    gt = np.array([[2.0, 0.0], [4.0, 100.0]])  # 0 = no measurement, 100 > 80 m cap
    pred = np.array([[3.0, 50.0], [1.0, 0.0]])
    assert rmse(pred, gt) == pytest.approx(math.sqrt((1.0 + 9.0) / 2))
    assert math.isnan(rmse(pred, np.zeros((2, 2))))


def _logits(classes: np.ndarray, num_classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(classes), num_classes).permute(2, 0, 1).float()


def test_paired_bootstrap_resamples_whole_sequences():
    """model - copy-last intervals: exactly 0 for equal predictions, above 0 when the model is better in
    every sequence, straddling 0 when sequences disagree; whole sequences are resampled."""
    truth = np.array([[0, 1], [2, 2]])
    wrong = np.array([[0, 0], [0, 2]])

    def score(model_right: list[bool]) -> TaskScore:
        ts = TaskScore("segmentation", 3)
        for g, right in enumerate(model_right):
            for _ in range(3):  # several windows per sequence, pooled into the sequence's group
                ts.add({"mid/model": _logits(truth if right else wrong),
                        "mid/copy_last": _logits(wrong if right else truth)}, truth, group=g)
        return ts

    better = score([True] * 5)
    lo, hi = paired_bootstrap_ci(better.score, "mid/model", "mid/copy_last", 5, draws=200)
    gain = better.score("mid/model") - better.score("mid/copy_last")
    assert gain > 0 and lo == pytest.approx(gain) and hi == pytest.approx(gain)
    assert paired_bootstrap_ci(better.score, "mid/model", "mid/model", 5, draws=50) == [0.0, 0.0]
    mixed = score([True, False, True, False, True, False])
    lo, hi = paired_bootstrap_ci(mixed.score, "mid/model", "mid/copy_last", 6, draws=400)
    assert lo < 0 < hi
    assert paired_bootstrap_ci(mixed.score, "mid/model", "mid/copy_last", 1, draws=10) is None
    # a bootstrap draw counts a sequence any number of times: its confusion is summed that often
    assert mixed.score("mid/model", [2, 0, 0, 0, 0, 0]) == pytest.approx(100.0)
    assert mixed.score("mid/model", [0, 1, 0, 0, 0, 0]) < 100
    draws = np.array([[2, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [1] * 6])  # many draws at once, one score each
    assert mixed.score("mid/model", draws) == pytest.approx([mixed.score("mid/model", w) for w in draws])
    assert mixed.score("mid/model", draws)[2] == pytest.approx(mixed.score("mid/model"))
    assert mixed.confusion["mid/model"].sum() == 6 * 3 * 4
    # depth: the mean per-image RMSE, the interval of a constant 0.5 m gain is [-0.5, -0.5]
    depth = TaskScore("depth")
    for g in range(4):
        gt = np.full((2, 2), 3.0 + g)
        depth.add({"short/model": torch.as_tensor(gt + 0.5)[None], "short/copy_last": torch.as_tensor(gt + 1.0)[None]},
                  gt, group=g)
    assert depth.intervals(draws=100)["short"]["model_minus_copy_last"] == pytest.approx([-0.5, -0.5])
    assert depth.intervals(draws=10)["mid"]["model_minus_copy_last"] is None  # nothing scored there


def test_sliding_windows_on_a_size_that_is_not_a_multiple_of_the_stride():
    boxes = sliding_windows(500, 1000, 448, 300)
    tops = sorted({b[0] for b in boxes})
    lefts = sorted({b[1] for b in boxes})
    assert tops == [0, 52] and lefts == [0, 300, 552]  # last window moved back to the border
    assert all(h == 448 and w == 448 for _, _, h, w in boxes)
    assert sliding_windows(448, 600, 448, 300) == [(0, 0, 448, 448), (0, 152, 448, 448)]
    assert sliding_windows(100, 120, 448, 300) == [(0, 0, 100, 120)]  # window shrinks to the image
    assert sliding_windows(37, 51, 0, 0) == [(0, 0, 37, 51)]

    # averaging: windows that agree give the map back exactly; overlaps average
    full = torch.arange(2 * 500 * 1000, dtype=torch.float64).view(2, 500, 1000)
    out = sliding_average(lambda bs: torch.stack([full[:, t : t + h, l : l + w] for t, l, h, w in bs]),
                          500, 1000, 448, 300)
    assert torch.equal(out, full)
    ones = sliding_average(lambda bs: torch.stack([torch.full((1, h, w), float(k))
                                                   for k, (t, l, h, w) in enumerate(bs)]),
                           500, 1000, 448, 300)
    assert ones[0, 0, 0] == 0.0 and ones[0, 499, 999] == 5.0
    assert ones[0, 0, 400] == pytest.approx(0.5)  # covered by windows 0 and 1 (columns 300..447)
    assert ones[0, 100, 400] == pytest.approx((0 + 1 + 3 + 4) / 4)  # rows 52..447 are in both rows of windows


# -- protocols -------------------------------------------------------------------------------------
def test_protocols_are_app_c1():
    cs, vs, ki = PROTOCOLS["cityscapes"], PROTOCOLS["vspw"], PROTOCOLS["kitti"]
    assert (cs.fps, vs.fps, ki.fps) == (16.0, 15.0, 10.0)
    for p in (cs, vs):
        assert p.short_context == (7, 10, 13, 16) and p.short_target == 19
        assert p.mid_context == (1, 4, 7, 10) and p.mid_queries == (13, 16, 19)
    assert ki.short_context == (5, 7, 9, 11) and ki.short_target == 13
    assert ki.mid_context == (1, 3, 5, 7) and ki.mid_queries == (9, 11, 13)
    assert 1000 * cs.horizon_s("short") == pytest.approx(187.5) and 1000 * cs.horizon_s("mid") == pytest.approx(562.5)
    assert 1000 * vs.horizon_s("short") == pytest.approx(200) and 1000 * vs.horizon_s("mid") == pytest.approx(600)
    assert 1000 * ki.horizon_s("short") == pytest.approx(200) and 1000 * ki.horizon_s("mid") == pytest.approx(600)


class _Recorder:
    """A stand-in world model: records the timestamps it is given; predicts the last context frame + 1."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def predict(self, ctx, t, q):
        self.calls.append(("predict", t.clone(), q.clone()))
        return ctx[:, -1:].expand(-1, q.shape[1], -1, -1, -1) + 1

    def rollout(self, ctx, t, q):
        self.calls.append(("rollout", t.clone(), q.clone()))
        return ctx[:, -1:].expand(-1, q.shape[1], -1, -1, -1) + 2


def test_forecast_features_use_real_timestamps_and_the_right_frames():
    p = PROTOCOLS["cityscapes"]
    idx = p.indices()
    index = {i: k for k, i in enumerate(idx)}
    start = 40
    feats = torch.tensor([float(i) for i in idx]).view(1, -1, 1, 1, 1).expand(1, -1, 2, 2, 3).clone()
    times = torch.tensor([[(start + i) / p.fps for i in idx]])
    wm = _Recorder()
    out = forecast_features(wm, feats, times, p, index)
    assert out["present"].unique().tolist() == [19.0]
    assert out["short/copy_last"].unique().tolist() == [16.0] and out["mid/copy_last"].unique().tolist() == [10.0]
    assert out["short/model"].unique().tolist() == [17.0] and out["mid/model"].unique().tolist() == [12.0]
    # the hedging baseline: the mean of the context frames (short [7, 10, 13, 16], mid [1, 4, 7, 10])
    assert out["short/context_mean"].unique().tolist() == [11.5] and out["mid/context_mean"].unique().tolist() == [5.5]
    (k1, t1, q1), (k2, t2, q2) = wm.calls
    assert k1 == "predict" and torch.allclose(t1, torch.tensor([[47, 50, 53, 56]]) / 16.0)
    assert torch.allclose(q1, torch.tensor([[59 / 16.0]]))
    assert k2 == "rollout" and torch.allclose(t2, torch.tensor([[41, 44, 47, 50]]) / 16.0)
    assert torch.allclose(q2, torch.tensor([[53, 56, 59]]) / 16.0)
    # the same helper as the rest of the project
    assert torch.equal(copy_last_prediction(feats[:, [index[i] for i in p.short_context]], t1, q1)[:, 0],
                       out["short/copy_last"])


# -- readers on fake official layouts --------------------------------------------------------------
def _png(path, h=8, w=16, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def test_cityscapes_reader(tmp_path):
    root = tmp_path / "cs"
    for f in range(275, 305):  # a 30-frame snippet; the annotated frame is the 20th: 294
        _png(root / "leftImg8bit_sequence" / "val" / "frankfurt" / f"frankfurt_000000_{f:06d}_leftImg8bit.png",
             value=f - 275)
    gt = root / "gtFine" / "val" / "frankfurt"
    write_index_png(gt / "frankfurt_000000_000294_gtFine_labelTrainIds.png", np.full((8, 16), 13, np.uint8))
    write_index_png(gt / "frankfurt_000000_000294_gtFine_labelIds.png", np.full((8, 16), 26, np.uint8))
    # a second sample with only labelIds (mapped to train ids here) and a missing sequence frame
    write_index_png(gt / "frankfurt_000001_000019_gtFine_labelIds.png", np.array([[7, 26, 0, 33]] * 2, np.uint8))
    for f in range(0, 20):
        _png(root / "leftImg8bit_sequence" / "val" / "frankfurt" / f"frankfurt_000001_{f:06d}_leftImg8bit.png")
    ds = read_cityscapes(root, "val")
    assert [s.name for s in ds.sequences] == ["frankfurt_000000_000294", "frankfurt_000001_000019"]
    s = ds.sequences[0]
    assert len(s.frames) == 30 and s.fps == 16.0 and list(s.labels) == [19]
    assert s.frames[19].name == "frankfurt_000000_000294_leftImg8bit.png"
    assert ds.load_frame(s.frames[7])[0, 0, 0] == 7
    assert (ds.load_label(s.labels[19]) == 13).all()
    assert ds.load_label(ds.sequences[1].labels[19]).tolist()[0] == [0, 13, 255, 18]
    assert len(ds.sequences[1].frames) == 20
    assert len(windows_of(ds, PROTOCOLS["cityscapes"])) == 2
    with pytest.raises(UserError, match="split 'test'"):
        read_cityscapes(root, "test")
    with pytest.raises(UserError, match="does not exist"):
        read_cityscapes(tmp_path / "nope")


def test_vspw_reader(tmp_path):
    root = tmp_path / "vspw"
    (root / "val.txt").parent.mkdir(parents=True)
    (root / "val.txt").write_text("127_abc\n")
    (root / "train.txt").write_text("missing_video\n")
    for i in range(22):
        _png(root / "data" / "127_abc" / "origin" / f"{i:08d}.jpg")
        write_index_png(root / "data" / "127_abc" / "mask" / f"{i:08d}.png", np.array([[0, 1, 124, 255]], np.uint8))
    ds = read_vspw(root, "val")
    assert ds.num_classes == 124 and len(ds.sequences) == 1 and ds.sequences[0].fps == 15.0
    assert ds.load_label(ds.sequences[0].labels[3]).tolist() == [[255, 0, 123, 255]]  # 0 "others" and 255 ignored
    assert [w.start for w in windows_of(ds, PROTOCOLS["vspw"])] == [0, 1, 2]  # every 20-frame window
    with pytest.raises(UserError, match="split list"):
        read_vspw(root, "test")
    with pytest.raises(UserError, match="no VSPW videos"):
        read_vspw(root, "train")


def test_kitti_reader(tmp_path):
    root = tmp_path / "kitti"
    drive = "2011_09_26_drive_0002_sync"
    for i in range(16):
        _png(root / "raw" / "2011_09_26" / drive / "image_02" / "data" / f"{i:010d}.png", h=375, w=1242, value=i)
    ann = root / "data_depth_annotated" / "val" / drive / "proj_depth" / "groundtruth" / "image_02"
    for i in (5, 13, 15):
        d = np.zeros((375, 1242), np.float32)
        d[-1, 600] = 10.0 + i
        write_depth_png(ann / f"{i:010d}.png", d)
    ds = read_kitti(root, "val")
    s = ds.sequences[0]
    assert ds.task == "depth" and s.fps == 10.0 and sorted(s.labels) == [5, 13, 15]
    assert ds.load_frame(s.frames[13]).shape == (352, 1216, 3)  # the KITTI depth crop
    lab = ds.load_label(s.labels[13])
    assert lab.shape == (352, 1216) and lab[-1, 600 - 13] == pytest.approx(23.0)
    assert [w.start for w in windows_of(ds, PROTOCOLS["kitti"])] == [0, 2]  # frames 13 and 15 have 13 before them
    (root / "val_files.txt").write_text(f"2011_09_26/{drive} 15 l\n")
    assert sorted(read_kitti(root, "val").sequences[0].labels) == [15]
    (root / "eigen_test_files.txt").write_text(f"2011_09_26/{drive}/image_02/data/{13:010d}.png x 721.5\n")
    assert sorted(read_kitti(root, "eigen_test").sequences[0].labels) == [13]  # a split list over train + val
    with pytest.raises(UserError, match="split 'train'"):
        read_kitti(root, "train")


# -- the synthetic probe ---------------------------------------------------------------------------
def test_labelled_scene_is_the_generators_scene():
    frames, classes, depth = render_labelled_scene(1.0, 10.0, (48, 64), 3, seed=5)
    assert np.array_equal(frames, make_moving_objects_video(1.0, 10.0, (48, 64), 3, seed=5))
    assert classes.shape == (10, 48, 64) and set(np.unique(classes)) <= {0, 1, 2} and (classes > 0).any()
    assert (depth[classes == 0] == 12.0).all() and (depth[classes > 0] < 9).all()
    # an object pixel is brighter/more saturated than the muted background: labels sit on the objects
    sat = frames.max(-1).astype(int) - frames.min(-1).astype(int)
    assert sat[classes > 0].mean() > sat[classes == 0].mean() + 50


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("fprobe")
    p = argparse.ArgumentParser()
    MAKE_FORECAST_PROBE.add_args(p)
    args = p.parse_args(["--out", str(root), "--train", "1", "--train-seconds", "1", "--head-sequences", "2",
                         "--val-sequences", "1", "--size", "56", "--seconds", "1.4", "--json"])
    assert MAKE_FORECAST_PROBE.run(args)["classes"]
    return root


def test_probe_layout_and_reader(probe):
    meta = json.loads((probe / "forecast_probe.json").read_text())
    assert meta["fps"] == 15.0 and meta["classes"] == ["background", "disc", "square"]
    assert len(list((probe / "train").glob("*.mp4"))) == 1
    seg, dep = read_synthetic(probe, "val", "segmentation"), read_synthetic(probe, "val", "depth")
    assert len(seg.sequences) == 1 and len(seg.sequences[0].frames) == 21 and len(seg.sequences[0].labels) == 21
    assert seg.load_label(seg.sequences[0].labels[0]).max() <= 2
    d = dep.load_label(dep.sequences[0].labels[0])
    assert d.dtype == np.float32 and d.max() == pytest.approx(12.0)
    assert [w.start for w in windows_of(seg, PROTOCOLS["synthetic"])] == [0, 1]
    with pytest.raises(UserError, match="make-forecast-probe"):
        read_synthetic(probe / "train")
    with pytest.raises(UserError, match="has no depth"):
        read_dense("vspw", probe, "val", "depth")


# -- heads -----------------------------------------------------------------------------------------
def test_head_trains_saves_and_refuses_another_encoder(probe, tmp_path):
    enc = load_encoder("pixel-pyramid")
    ds = read_synthetic(probe, "train", "segmentation")
    cfg = HeadConfig("segmentation", enc.dim, 3, enc.name, "synthetic", crop=(0, 0), short_side=0)
    head = train_head(enc, ds.pairs(), ds.load_frame, ds.load_label, cfg, steps=60, batch_size=4, lr=1e-2)
    x = torch.stack([to_tensor(ds.load_frame(f)) for f, _ in ds.pairs()[:8]])
    y = np.stack([ds.load_label(l) for _, l in ds.pairs()[:8]])
    with torch.no_grad():
        feats = enc(x)
        acc = (head(feats, (56, 56)).argmax(1).numpy() == y).mean()
        out = head(feats, (56, 56))
    assert out.shape == (8, 3, 56, 56) and acc > 0.8  # background vs objects, at least
    save_head(head, tmp_path / "h")
    again = load_head(tmp_path / "h", encoder="pixel-pyramid", dim=36)
    assert json.loads((tmp_path / "h" / "config.json").read_text())["train"]["steps"] == 60
    with torch.no_grad():
        assert torch.allclose(again(feats, (56, 56)), out)
    with pytest.raises(UserError, match="trained on encoder pixel-pyramid"):
        load_head(tmp_path / "h", encoder="dinov2-b14-reg")


# -- end to end ------------------------------------------------------------------------------------
def _wm():
    torch.manual_seed(0)
    return WorldModel(load_encoder("pixel-pyramid"), build_predictor("tiny", in_dim=36))


def test_copy_last_as_the_model_scores_as_copy_last(probe):
    """The plumbing: a 'model' that predicts the last context frame gets copy-last's scores exactly."""
    wm = _wm()
    wm.predict = copy_last_prediction  # type: ignore[method-assign]
    wm.rollout = lambda c, t, q: copy_last_prediction(c, t, q[:, -1:]).expand(-1, q.shape[1], -1, -1, -1)  # type: ignore
    enc = wm.encoder
    heads = {}
    for task in ("segmentation", "depth"):
        ds = read_synthetic(probe, "train", task)
        cfg = HeadConfig(task, 36, 3 if task == "segmentation" else 1, enc.name, "synthetic", crop=(0, 0), short_side=0)
        heads[task] = train_head(enc, ds.pairs(), ds.load_frame, ds.load_label, cfg, steps=20, batch_size=4, lr=1e-2)
    dss = {t: read_synthetic(probe, "val", t) for t in heads}
    ev = evaluate_forecast(wm, dss, heads, PROTOCOLS["synthetic"], Scoring(0, (0, 0), 0))
    s = ev.summary
    assert s["windows"] == 2
    for metric in ("miou", "rmse"):
        for h in ("short", "mid"):
            assert s[metric][h]["model"] == pytest.approx(s[metric][h]["copy_last"])
    assert s["sequences"] == 1 and s["ci95"]["miou"]["mid"]["model_minus_copy_last"] is None  # one sequence: no CI
    # the same sequence listed twice: two groups, and model = copy-last gives the interval [0, 0]
    twice = {t: dataclasses.replace(d, sequences=d.sequences * 2) for t, d in dss.items()}
    s2 = evaluate_forecast(wm, twice, heads, PROTOCOLS["synthetic"], Scoring(0, (0, 0), 0)).summary
    assert s2["sequences"] == 2 and s2["windows"] == 4
    assert s2["ci95"]["miou"]["mid"]["model_minus_copy_last"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert s2["ci95"]["rmse"]["short"]["model_minus_copy_last"] == pytest.approx([0.0, 0.0], abs=1e-9)
    # sliding 28-px windows over the 56-px frames (stride 20, not a divisor) run through the same path
    ev2 = evaluate_forecast(wm, dss, heads, PROTOCOLS["synthetic"], Scoring(56, (42, 42), 20), max_samples=1)
    assert ev2.summary["windows"] == 1 and 0 <= ev2.summary["miou"]["present"] <= 100


def test_eval_forecast_cli_json(probe, tmp_path, capsys):
    ckpt = _wm().save_pretrained(tmp_path / "ckpt")
    heads = tmp_path / "heads"
    argv = ["eval", "forecast", "--dataset", "synthetic", "--root", str(probe), "--checkpoint", str(ckpt),
            "--heads", str(heads), "--head-steps", "10", "--head-batch-size", "4", "--device", "cpu",
            "--out", str(tmp_path / "o"), "--json"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    res, out = json.loads(cap.out), cap.err  # stdout holds the JSON alone; the table goes to stderr
    assert set(res["miou"]) == {"present", "short", "mid"}
    assert set(res["miou"]["mid"]) == {"model", "copy_last", "context_mean"}
    assert set(res["rmse"]["short"]) == {"model", "copy_last", "context_mean"} and res["rmse"]["present"] > 0
    assert "predicted" in out and "copy-last" in out and "present" in out
    assert res["ci95"]["miou"]["mid"] == {"model_minus_copy_last": None, "model_minus_context_mean": None}
    assert (heads / "segmentation" / "model.safetensors").is_file() and (heads / "depth" / "config.json").is_file()
    saved = json.loads((tmp_path / "o" / "forecast.json").read_text())
    assert np.array(saved["confusion"]["present"]).shape == (3, 3) and "confusion" not in res
    # the saved heads are reused: same numbers without training
    mtime = (heads / "segmentation" / "model.safetensors").stat().st_mtime_ns
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["miou"] == res["miou"] and (heads / "segmentation" / "model.safetensors").stat().st_mtime_ns == mtime
    p = argparse.ArgumentParser()
    add_forecast_args(p)
    with pytest.raises(UserError, match="does not exist"):
        run_forecast(p.parse_args(["--dataset", "vspw", "--root", str(tmp_path / "nope"), "--checkpoint", str(ckpt)]))
