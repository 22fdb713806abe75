import json

import pytest
from PIL import Image

from dinoworld.config import load_config
from dinoworld.data import encode_videos_to_cache, write_synthetic_dataset
from dinoworld.demo import run_demo
from dinoworld.encoders import load_encoder
from dinoworld.train import TrainConfig, train


def test_demo_end_to_end_small(tmp_path):
    m = run_demo(tmp_path / "demo", steps=20, num_train=4, num_val=2, resolution=56, progress=False)
    assert m["encoder"] == "pixel-pyramid" and m["encoder_is_standin"]  # offline: no DINOv2 weights
    assert "STAND-IN" in (m["note"] or "")
    assert m["train"]["steps"] == 20
    syn = m["heldout"]["synthetic"]
    assert syn["clips"] == 2 and len(syn["horizons_s"]) == 8
    for key in ("errors_l1", "errors_smooth_l1"):
        assert set(syn[key]) == {"autoregressive", "direct", "copy-last", "context-mean"}
        assert syn[key]["autoregressive"][0] == pytest.approx(syn[key]["direct"][0])
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "stand-in" in report and "copy-last" in report and "context-mean" in report
    for png in ("synthetic_rollout.png", "synthetic_horizons_mean.png", "validation_curve.png"):
        with Image.open(tmp_path / "demo" / "figures" / png) as im:
            assert im.size[0] > 200
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text())["train"]["steps"] == 20
    assert (tmp_path / "demo" / "model" / "model.safetensors").is_file()


def test_demo_reruns_in_the_same_folder(tmp_path):
    """A second run in the same folder used to crash in the report (no validation after a resume at the end)."""
    for _ in range(2):
        m = run_demo(tmp_path / "demo", steps=6, num_train=2, num_val=2, resolution=56, progress=False)
        assert m["train"]["val_loss"] is not None and m["train"]["steps"] == 6
    assert "copy-last" in (tmp_path / "demo" / "report.md").read_text()


def test_tiny_predictor_learns_to_beat_copy_last(tmp_path):
    """A few hundred CPU steps on moving-object scenes: held-out loss clearly below copy-last."""
    enc = load_encoder("pixel-pyramid")
    for part, n, seed in (("train", 16, 0), ("val", 4, 1)):
        paths = write_synthetic_dataset(tmp_path / part, num_videos=n, seconds=(3.0, 4.0), size=112, seed=seed,
                                        background="plain")
        encode_videos_to_cache(paths, enc, tmp_path / "cache" / part, fps=15.0, size=(112, 112), progress=False)
    cfg = load_config(TrainConfig, None, [
        f"out_dir={tmp_path / 'run'}", f"data.source={tmp_path / 'cache' / 'train'}",
        f"data.val_source={tmp_path / 'cache' / 'val'}", "model.size=tiny", "model.encoder=pixel-pyramid",
        "data.num_frames=4", "data.dt_min=0.2", "data.dt_max=0.5", "data.num_workers=0",
        "optim.lr=2e-3", "optim.warmup_steps=30", "optim.schedule=cosine", "optim.min_lr_ratio=0.05",
        "optim.weight_decay=0.05", "optim.batch_size=16", "optim.micro_batch_size=16",
        "stages=[{steps: 400, resolution: 112}]", "val_every=400", "val_batches=8", "ckpt_every=400",
        "tensorboard=false", "progress=false",
    ])
    s = train(cfg, resume=False)
    assert s["val/loss"] < 0.95 * s["val/copy_last"], s
