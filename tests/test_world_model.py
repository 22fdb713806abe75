import json

import pytest
import torch

from dinoworld.encoders import load_encoder
from dinoworld.errors import UserError
from dinoworld.model import WorldModel, build_predictor


@pytest.fixture()
def wm():
    torch.manual_seed(0)
    enc = load_encoder("pixel-pyramid")
    pred = build_predictor("tiny", in_dim=enc.dim).eval()
    with torch.no_grad():  # make every block matter
        for p in pred.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return WorldModel(enc, pred, {"train_config": {"stages": [{"resolution": 56}]}})


def _clip(t=6):
    torch.manual_seed(1)
    frames = torch.rand(1, t, 3, 56, 56)
    times = torch.tensor([[0.0, 0.1, 0.25, 0.3, 0.5, 0.6][:t]])
    return frames, times


def test_encode_shapes(wm):
    frames, _ = _clip()
    assert wm.encode(frames).shape == (1, 6, 4, 4, 36)
    assert wm.encode(frames[0]).shape == (1, 6, 4, 4, 36)  # unbatched input


def test_autoregressive_equals_chained_single_steps(wm):
    frames, times = _clip()
    feats = wm.encode(frames)
    ctx, ctx_t = feats[:, :3], times[:, :3]
    q = torch.tensor([[0.4, 0.55, 0.8]])
    ar = wm.rollout(ctx, ctx_t, q)
    chained_ctx, chained_t, outs = ctx, ctx_t, []
    for k in range(3):
        p = wm.predict(chained_ctx, chained_t, q[:, k : k + 1])
        outs.append(p)
        chained_ctx, chained_t = torch.cat([chained_ctx, p], 1), torch.cat([chained_t, q[:, k : k + 1]], 1)
    assert torch.allclose(ar, torch.cat(outs, 1), atol=1e-5)
    # and it differs from direct prediction beyond the first step (predictions really are fed back)
    direct = wm.predict(ctx, ctx_t, q)
    assert torch.allclose(ar[:, 0], direct[:, 0], atol=1e-6)
    assert not torch.allclose(ar[:, 2], direct[:, 2], atol=1e-4)


def test_streaming_equals_batch(wm):
    frames, times = _clip()
    stream = wm.stream()
    for i in range(6):
        stream.push(frames[0, i], float(times[0, i]))
    q = torch.tensor([[0.7, 1.0]])
    batch = wm.predict(wm.encode(frames), times, q)[0]
    assert torch.allclose(stream.predict([0.7, 1.0]), batch, atol=1e-5)


def test_streaming_window_and_order(wm):
    frames, times = _clip()
    stream = wm.stream(max_context=3)
    for i in range(6):
        stream.push(frames[0, i], float(times[0, i]))
    feats = wm.encode(frames)
    last3 = wm.predict(feats[:, 3:], times[:, 3:], torch.tensor([[0.7]]))[0]
    assert torch.allclose(stream.predict([0.7]), last3, atol=1e-5)
    with pytest.raises(UserError, match="increase"):
        stream.push(frames[0, 0], 0.1)


def test_save_and_load_pretrained(wm, tmp_path):
    wm.save_pretrained(tmp_path / "m")
    again = WorldModel.from_pretrained(tmp_path / "m")
    assert again.encoder.name == "pixel-pyramid"
    frames, times = _clip()
    feats = wm.encode(frames)
    assert torch.equal(wm.predict(feats, times, times[:, -1:] + 0.1), again.predict(feats, times, times[:, -1:] + 0.1))
    with pytest.raises(UserError, match="does not exist"):
        WorldModel.from_pretrained(tmp_path / "nope")


def test_attention_maps_are_distributions_over_past_only(wm):
    frames, times = _clip()
    feats = wm.encode(frames)
    maps = wm.predictor.attention_maps(feats, times, torch.tensor([[0.28]]), token=5, blocks=[0, 1])
    assert maps.shape == (2, 1, 6, 4, 4)
    assert torch.allclose(maps.sum(dim=(2, 3, 4)), torch.ones(2, 1))
    assert maps[:, :, 3:].abs().max() == 0  # frames at or after 0.28 s get no attention


def test_rollout_cli_writes_figure_video_and_errors(wm, tmp_path):
    from dinoworld.cli import main
    from dinoworld.data import write_synthetic_dataset

    wm.save_pretrained(tmp_path / "m")
    video = write_synthetic_dataset(tmp_path / "v", num_videos=1, seconds=2.0, fps=10.0, size=64, seed=3)[0]
    out = tmp_path / "out"
    rc = main(["rollout", video, "--checkpoint", str(tmp_path / "m"), "--context", "3", "--horizon", "2.0",
               "--step", "0.2", "--out", str(out), "--attention"])
    assert rc == 0
    rep = json.loads((out / "rollout.json").read_text())
    errs = rep["errors_l1"]
    assert len(rep["horizons_s"]) == 10
    # truth exists up to the video's end (1.9 s) only; the rest is prediction without ground truth
    assert errs["copy-last"][0] is not None and errs["copy-last"][-1] is None
    assert errs["context-mean"][0] is not None and errs["context-mean"][-1] is None
    assert errs["autoregressive"][0] == pytest.approx(errs["direct"][0])
    for f in ("rollout.png", "rollout.mp4", "rollout_horizons.png", "attention.png"):
        assert (out / f).stat().st_size > 1000


def test_the_resolution_a_model_runs_at(wm):
    assert wm.meta.training_resolution == 56  # its last training stage's
    wm.meta.resolution = 28
    assert wm.meta.training_resolution == 28  # the recorded one comes first
    bare = WorldModel(wm.encoder, wm.predictor)
    assert bare.meta.training_resolution == 224  # a folder that records neither: the paper's


def test_module_device_and_precision(wm):
    from dinoworld.devices import module_device, uses_bf16

    cpu = torch.device("cpu")
    assert module_device(wm) == module_device(wm.predictor) == wm.device == cpu
    assert module_device(torch.nn.Identity()) == cpu and module_device(object()) == cpu
    assert uses_bf16("auto", torch.device("cuda")) and uses_bf16("bf16", cpu)
    assert not uses_bf16("auto", cpu) and not uses_bf16("fp32", torch.device("cuda"))
