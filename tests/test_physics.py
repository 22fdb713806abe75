"""Intuitive physics: surprise, relative accuracy, the benchmark readers, the pymunk probe, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dinoworld.cli import main
from dinoworld.data.video import write_video
from dinoworld.encoders import load_encoder
from dinoworld.errors import UserError
from dinoworld.eval.physics import (
    Pair,
    PairResult,
    Surprise,
    VideoRef,
    evaluate_pairs,
    read_pairs,
    relative_accuracy,
    summarize,
    surprise_from_features,
    window_targets,
)
from dinoworld.model import WorldModel, build_predictor


# -- metrics against hand-computed cases ----------------------------------------------------------
def test_relative_accuracy_counts_ties_half():
    # pairs: 1<2 win, 2=2 tie, 3>1 loss, 4<5 win -> (1 + 0.5 + 0 + 1) / 4
    assert relative_accuracy([1, 2, 3, 4], [2, 2, 1, 5]) == pytest.approx(0.625)
    assert relative_accuracy([0.1], [0.1]) == 0.5
    assert np.isnan(relative_accuracy([], []))
    with pytest.raises(ValueError):
        relative_accuracy([1, 2], [1])


def _s(curve, copy=None):
    c = np.asarray(curve, dtype=float)
    cl = np.asarray(copy if copy is not None else c, dtype=float)
    return Surprise(c, cl, np.arange(len(c)), np.arange(len(c)) / 10, context_mean=cl[::-1].copy())


def _r(name, prop, pos, imp, pos_copy=None, imp_copy=None):
    return PairResult(Pair(name, VideoRef(Path(name + "p")), VideoRef(Path(name + "i")), prop),
                      _s(pos, pos_copy), _s(imp, imp_copy))


def test_mean_and_max_aggregation_per_property_and_overall():
    results = [
        # mean: 2 < 3 win; max: 5 > 4 loss; copy-last mean 1 = 1 tie, max 1 < 2 win
        _r("a", "gravity", [0, 1, 5], [3, 3, 3], [1, 1, 1], [0, 1, 2]),
        # mean: 1 < 2 win; max: 1 < 3 win; copy-last mean 2 > 1 loss, max 2 > 1 loss
        _r("b", "gravity", [1, 1, 1], [0, 3, 3], [2, 2, 2], [1, 1, 1]),
        # mean: 4 > 1 loss; max: 4 > 1 loss; copy-last equal everywhere -> ties
        _r("c", "permanence", [4, 4, 4], [1, 1, 1], [1, 1, 1], [1, 1, 1]),
    ]
    s = summarize(results)
    assert s["pairs"] == 3
    assert s["relative_accuracy"] == pytest.approx(2 / 3)
    assert s["relative_accuracy_max"] == pytest.approx(1 / 3)
    assert s["copy_last_relative_accuracy"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert s["copy_last_relative_accuracy_max"] == pytest.approx((1 + 0 + 0.5) / 3)
    g, p = s["per_property"]["gravity"], s["per_property"]["permanence"]
    assert (g["pairs"], g["relative_accuracy"], g["relative_accuracy_max"]) == (2, 1.0, 0.5)
    assert (p["pairs"], p["relative_accuracy"], p["copy_last_relative_accuracy"]) == (1, 0.0, 0.5)
    # Table 2 averages the categories, not the pairs
    assert s["property_mean"]["relative_accuracy"] == pytest.approx(0.5)
    assert s["property_mean"]["relative_accuracy_max"] == pytest.approx(0.25)
    assert "per_property" not in summarize([_r("x", None, [1], [2])])


def test_surprise_by_hand_with_actual_timestamps():
    # 1x1 "frames" with one channel: feature value = frame index squared
    vals = torch.tensor([0.0, 1, 4, 9, 16, 25])
    feats = vals.view(6, 1, 1, 1)
    times = np.array([0.0, 0.1, 0.25, 0.3, 0.42, 0.5])  # irregular: the model must get these
    seen = []

    def predict(ctx, ctimes, q):  # linear extrapolation of the last two context frames in time
        seen.append((ctimes.clone(), q.clone()))
        a, b = ctx[:, -2], ctx[:, -1]
        ta, tb = ctimes[:, -2].view(-1, 1, 1, 1), ctimes[:, -1].view(-1, 1, 1, 1)
        return (b + (b - a) / (tb - ta) * (q.view(-1, 1, 1, 1) - tb))[:, None]

    s = surprise_from_features(feats, times, predict, context=2, batch_size=2)
    assert s.target_frames.tolist() == [2, 3, 4, 5]
    want = []
    for j in range(2, 6):
        a, b, ta, tb = vals[j - 2], vals[j - 1], times[j - 2], times[j - 1]
        want.append(abs(float(b + (b - a) / (tb - ta) * (times[j] - tb)) - float(vals[j])))
    np.testing.assert_allclose(s.curve, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.copy_last, [3, 5, 7, 9])  # |x_j - x_{j-1}|
    assert s.stat() == pytest.approx(np.mean(want), rel=1e-5)
    assert s.stat(how="max") == pytest.approx(max(want), rel=1e-5)
    assert s.stat("copy_last") == 6 and s.stat("copy_last", "max") == 9
    np.testing.assert_allclose(s.context_mean, [3.5, 6.5, 9.5, 12.5])  # |x_j - mean(x_{j-2}, x_{j-1})|
    # two batches of two windows, context at the actual timestamps, query at the target's
    assert len(seen) == 2
    torch.testing.assert_close(seen[0][0], torch.tensor([[0.0, 0.1], [0.1, 0.25]]))
    torch.testing.assert_close(seen[1][1], torch.tensor([[0.42], [0.5]]))
    # stride and gap: every 2nd window, target 2 frames after the last context frame
    s2 = surprise_from_features(feats, times, None, context=2, stride=2, gap=0.2)
    assert s2.target_frames.tolist() == [3, 5]
    np.testing.assert_allclose(s2.copy_last, [9 - 1, 25 - 9])  # last context frame is j-2
    np.testing.assert_allclose(s2.curve, s2.copy_last)  # no model: copy-last only
    assert window_targets(times, 4)[0].tolist() == [4, 5]


def test_batched_windows_match_one_by_one_with_a_tiny_predictor():
    pred = build_predictor("tiny", in_dim=36).eval()
    feats = torch.randn(9, 2, 2, 36)
    times = np.arange(9) / 10.0
    with torch.no_grad():
        batched = surprise_from_features(feats, times, pred, context=3, batch_size=64)
        single = surprise_from_features(feats, times, pred, context=3, batch_size=1)
        t = torch.tensor(times, dtype=torch.float32)
        by_hand = float((pred(feats[None, 2:5], t[None, 2:5], t[None, 5:6])[0, 0] - feats[5]).abs().mean())
    np.testing.assert_allclose(batched.curve, single.curve, rtol=1e-4, atol=1e-6)
    assert batched.target_frames[2] == 5 and batched.curve[2] == pytest.approx(by_hand, rel=1e-4)


# -- readers on small fake datasets in the official layouts ---------------------------------------
def _clip(path: Path, seed: int, frames: int = 8, size: int = 56) -> Path:
    rng = np.random.default_rng(seed)
    write_video(path, rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8), 10.0)
    return path


def test_intphys_reader_splits_quadruplets(tmp_path):
    from PIL import Image

    for block in ("O1", "O3"):
        for movie in (1, 2, 3, 4):
            d = tmp_path / block / "scene_07" / str(movie)
            (d / "scene").mkdir(parents=True)
            for k in range(6):
                frame = Image.fromarray(np.full((28, 28, 3), 10 * k + movie, np.uint8))
                frame.save(d / "scene" / f"scene_{k + 1:03d}.png")
            (d / "status.json").write_text(json.dumps({"header": {"is_possible": movie in (1, 3)}}))
    (tmp_path / "O1" / "readme.txt").write_text("ignored")
    ps = read_pairs("intphys", tmp_path)
    assert len(ps.pairs) == 8  # 2 possible x 2 impossible per quadruplet, two blocks
    by = {p.name: p for p in ps.pairs}
    p = by["O1/scene_07/1-2"]
    assert p.property == "object permanence" and p.possible.path == tmp_path / "O1/scene_07/1/scene"
    assert p.impossible.path == tmp_path / "O1/scene_07/2/scene"
    assert {q.property for q in ps.pairs} == {"object permanence", "spatio-temporal continuity"}
    from dinoworld.eval.physics import load_frames

    frames, times, idx = load_frames(p.possible, frame_step=2, image_fps=10)
    assert frames.shape == (3, 28, 28, 3) and times.tolist() == [0.0, 0.2, 0.4] and idx.tolist() == [0, 2, 4]


def test_grasp_reader(tmp_path):
    for name in ("a", "b"):
        _clip(tmp_path / "P_Gravity" / f"{name}.mp4", 1)
        _clip(tmp_path / "IP_Gravity" / f"{name}.mp4", 2)
    _clip(tmp_path / "P_Gravity" / "lonely.mp4", 3)
    _clip(tmp_path / "P_Collision" / "c.mp4", 4)
    _clip(tmp_path / "IP_Collision" / "c.mp4", 5)
    ps = read_pairs("grasp", tmp_path)
    assert [(p.property, p.name) for p in ps.pairs] == [("Collision", "c"), ("Gravity", "a"), ("Gravity", "b")]
    assert ps.pairs[1].impossible.path == tmp_path / "IP_Gravity" / "a.mp4"
    assert any("lonely" in m for m in ps.problems)


def test_inflevel_reader_from_csv(tmp_path):
    _clip(tmp_path / "videos" / "x.mp4", 1)
    _clip(tmp_path / "videos" / "y.mp4", 2)
    with (tmp_path / "continuity.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["vid1_path", "vid2_path", "vid1_label", "vid1_end_priming_2", "vid2_end_priming_2"])
        w.writerow(["videos/x.mp4", "videos/y.mp4", "impossible", "2", "3"])
        w.writerow(["videos/y.mp4", "videos/x.mp4", "possible", "", ""])
    ps = read_pairs("inflevel", tmp_path)
    assert len(ps.pairs) == 2 and all(p.property == "continuity" for p in ps.pairs)
    first, second = ps.pairs
    assert first.possible == VideoRef(tmp_path / "videos/y.mp4", 4)
    assert first.impossible == VideoRef(tmp_path / "videos/x.mp4", 3)
    assert second.possible.path.name == "y.mp4" and second.possible.start_frame == 0


def test_folder_reader_pairs_names_ignores_the_rest(tmp_path):
    for name in ("one", "two"):
        _clip(tmp_path / "possible" / f"{name}.mp4", 1)
        _clip(tmp_path / "impossible" / f"{name}.mp4", 2)
    _clip(tmp_path / "possible" / "orphan.mp4", 3)
    (tmp_path / "possible" / "notes.txt").write_text("not a video")
    (tmp_path / "train").mkdir()
    _clip(tmp_path / "train" / "t.mp4", 4)
    (tmp_path / "pairs.json").write_text(json.dumps({"pairs": {"one": {"property": "gravity", "departure_frame": 5}}}))
    ps = read_pairs("folder", tmp_path)
    assert [p.name for p in ps.pairs] == ["one", "two"]
    assert (ps.pairs[0].property, ps.pairs[0].departure_frame) == ("gravity", 5)
    assert ps.pairs[1].property is None
    assert ps.problems == [f"{tmp_path}: orphan has no impossible partner"]
    # properties from sub-folders
    sub = tmp_path / "by_prop"
    _clip(sub / "solidity" / "possible" / "k.mp4", 1)
    _clip(sub / "solidity" / "impossible" / "k.mp4", 2)
    assert [(p.property, p.name) for p in read_pairs("folder", sub).pairs] == [("solidity", "k")]


def test_missing_root_and_empty_pair_set_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_pairs("folder", tmp_path / "nope")
    (tmp_path / "possible").mkdir()
    with pytest.raises(UserError, match="no \\(possible, impossible\\) pairs"):
        read_pairs("folder", tmp_path)
    with pytest.raises(UserError, match="no \\(possible, impossible\\) pairs"):
        read_pairs("grasp", tmp_path)


# -- the probe and the whole evaluation ------------------------------------------------------------
@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from dinoworld.eval.physics.probe import write_physics_probe

    root = tmp_path_factory.mktemp("probe")
    write_physics_probe(root / "probe", pairs=5, train=2, size=56, seconds=2.0, seed=3)
    torch.manual_seed(0)
    WorldModel(load_encoder("pixel-pyramid"), build_predictor("tiny", in_dim=36)).save_pretrained(root / "model")
    return root


def test_probe_pairs_match_until_departure():
    from dinoworld.eval.physics.probe import PROPERTIES, make_pair

    for prop in PROPERTIES:
        p = make_pair(prop, seed=11, size=56, seconds=2.0)
        d = p.departure_frame
        assert p.possible.shape == p.impossible.shape == (20, 56, 56, 3)
        assert 6 <= d <= 17 and p.event_frame <= d
        assert np.array_equal(p.possible[:d], p.impossible[:d]), prop
        assert np.abs(p.possible[d].astype(int) - p.impossible[d].astype(int)).max() > 8, prop
        assert np.array_equal(make_pair(prop, seed=11, size=56, seconds=2.0).impossible, p.impossible)  # deterministic


def test_probe_layout_and_cli_eval(probe, tmp_path, capsys):
    root = probe / "probe"
    assert sorted(p.name for p in (root / "train").iterdir()) == ["train_0000.mp4", "train_0001.mp4"]
    meta = json.loads((root / "pairs.json").read_text())
    assert sorted(m["property"] for m in meta["pairs"].values()) == sorted(
        ["permanence", "continuity", "constancy", "gravity", "solidity"])
    assert {p.name for p in (root / "possible").iterdir()} == {p.name for p in (root / "impossible").iterdir()}
    # one unreadable video: its pair is skipped and counted, the rest is evaluated
    bad = root / "impossible" / "gravity_0000.mp4"
    good = bad.read_bytes()
    bad.write_bytes(b"not a video at all")
    try:
        rc = main(["eval", "physics", "--dataset", "folder", "--root", str(root), "--checkpoint", str(probe / "model"),
                   "--res", "56", "--device", "cpu", "--out", str(tmp_path / "ev"), "--json"])
    finally:
        bad.write_bytes(good)
    out, err = capsys.readouterr()
    assert rc == 0
    js = json.loads(out.strip().splitlines()[-1])
    assert js["pairs"] == 4 and js["skipped_videos"] == 1 and "gravity_0000" in err
    for k in ("relative_accuracy", "relative_accuracy_max", "copy_last_relative_accuracy"):
        assert 0.0 <= js[k] <= 1.0
    assert set(js["per_property"]) == {"permanence", "continuity", "constancy", "solidity"}
    assert (tmp_path / "ev" / "surprise_curves.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (tmp_path / "ev" / "surprise.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["departure_frame"] is not None for r in rows)
    assert rows[0]["target_frames"][0] == 4  # context 4 -> the first predicted frame is frame 4


def test_make_probe_cli(tmp_path, capsys):
    assert main(["make-physics-probe", "--out", str(tmp_path / "p"), "--pairs", "2", "--train", "1", "--size", "56",
                 "--seconds", "1.5", "--json"]) == 0
    js = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert js["pairs"] == 2 and js["per_property"] == {"permanence": 1, "continuity": 1}
    assert main(["make-physics-probe", "--out", str(tmp_path / "q"), "--size", "57"]) == 2
    assert capsys.readouterr().err.startswith("error: --size must be even")


def test_cli_errors_are_one_line(probe, tmp_path, capsys):
    ckpt = str(probe / "model")
    args = ["eval", "physics", "--dataset", "folder", "--checkpoint", ckpt, "--res", "56", "--device", "cpu"]
    assert main(args + ["--root", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "empty" / "possible").mkdir(parents=True)
    assert main(args + ["--root", str(tmp_path / "empty")]) == 2
    assert "no (possible, impossible) pairs" in capsys.readouterr().err
    # a checkpoint whose encoder cannot be loaded
    broken = tmp_path / "broken"
    WorldModel.from_pretrained(ckpt).save_pretrained(broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["encoder"] = {"name": "dinov2-b14-reg", "pretrained": True, "weights": str(tmp_path / "no-weights")}
    (broken / "config.json").write_text(json.dumps(cfg))
    rc = main(["eval", "physics", "--dataset", "folder", "--root", str(probe / "probe"), "--checkpoint", str(broken),
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: cannot load") and err.strip().count("\n") == 0


def test_no_readable_video_is_an_error(tmp_path):
    for side in ("possible", "impossible"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.mp4").write_bytes(b"garbage")
    wm = WorldModel(load_encoder("pixel-pyramid"), build_predictor("tiny", in_dim=36))
    with pytest.raises(UserError, match="no pair could be evaluated \\(2 unreadable"):
        evaluate_pairs(wm, read_pairs("folder", tmp_path).pairs, resolution=56)
