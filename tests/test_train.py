import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_train_args, train_tiny
from dinoworld.config import load_config
from dinoworld.data import write_synthetic_dataset
from dinoworld.errors import UserError
from dinoworld.model.folder import complete_checkpoints, latest_checkpoint, read_model_folder
from dinoworld.train import TrainConfig, lr_factor, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_synthetic_dataset(root / "train", num_videos=8, seconds=2.0, size=56, seed=0)
    write_synthetic_dataset(root / "val", num_videos=2, seconds=2.0, size=56, seed=1)
    return root


def test_warmup_then_constant_or_cosine():
    assert lr_factor(0, 5000) == pytest.approx(1 / 5000)
    assert lr_factor(2499, 5000) == pytest.approx(0.5)
    assert lr_factor(4999, 5000) == 1.0 and lr_factor(10**6, 5000) == 1.0
    assert lr_factor(10, 10, 110, "cosine") == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, "cosine") == pytest.approx(0.5)
    assert lr_factor(110, 10, 110, "cosine", floor=0.1) == pytest.approx(0.1)
    with pytest.raises(UserError, match="schedule"):
        lr_factor(20, 10, 100, "linear")


def test_resume_is_exact(videos, tmp_path):
    straight = train_tiny(videos, tmp_path / "a", resume=False)["model"]
    half = train_tiny(videos, tmp_path / "b", resume=False, max_steps=3)
    assert half["step"] == 3
    resumed = train_tiny(videos, tmp_path / "b")  # picks up step 3 and continues to 6
    assert resumed["start_step"] == 3 and resumed["step"] == 6
    for (n, p), q in zip(straight.named_parameters(), resumed["model"].parameters()):
        assert torch.equal(p, q), n
    # the checkpoint folder is config + safetensors (+ train state)
    meta, state = read_model_folder(latest_checkpoint(tmp_path / "b"))
    assert meta.step == 6 and meta.predictor["dim"] == 128 and meta.encoder.name == "pixel-pyramid"
    assert torch.equal(state["query"], straight.query.detach())


def test_resume_is_exact_with_workers(videos, tmp_path):
    """With 2 DataLoader workers too, 3 steps + 3 resumed steps train on the same clips as 6 steps.

    3 micro-batches a step: the save falls after an odd number of batches, mid-turn between the
    workers, and past the end of an epoch (18 clips from 8 videos).
    """
    workers = ("data.num_workers=2", "optim.batch_size=6")
    straight = train_tiny(videos, tmp_path / "a", *workers, resume=False)["model"]
    train_tiny(videos, tmp_path / "b", *workers, resume=False, max_steps=3)
    resumed = train_tiny(videos, tmp_path / "b", *workers)
    assert resumed["start_step"] == 3 and resumed["step"] == 6
    for (n, p), q in zip(straight.named_parameters(), resumed["model"].parameters()):
        assert torch.equal(p, q), n


def test_killed_checkpoint_write_is_ignored(videos, tmp_path):
    train_tiny(videos, tmp_path, resume=False, max_steps=3)
    root = tmp_path / "checkpoints"
    torn = root / ".tmp-step_00000006-999"  # what a kill in the middle of a write leaves
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\0" * 10)
    (root / "step_00000009").mkdir()  # a folder without weights is not a checkpoint either
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step_00000003"]
    assert train_tiny(videos, tmp_path)["start_step"] == 3


def test_non_finite_loss_stops_with_step_and_keeps_last_good(videos, tmp_path, monkeypatch):
    import dinoworld.train.loop as loop

    real = loop.teacher_forcing_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        loss, copy = real(*a, **k)
        return (loss * float("nan"), copy) if calls["n"] > 8 else (loss, copy)  # step 5 (2 micro per step)

    monkeypatch.setattr(loop, "teacher_forcing_loss", poisoned)
    with pytest.raises(UserError, match=r"non-finite loss .* at step 5.*step_00000003"):
        train_tiny(videos, tmp_path, resume=False)
    assert latest_checkpoint(tmp_path).name == "step_00000003"


def test_corrupt_videos_are_skipped_and_counted(videos, tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    for p in sorted((videos / "train").glob("*.mp4"))[:4]:
        (src / p.name).write_bytes(p.read_bytes())
    data = (videos / "train" / "video_0000.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (src / "empty.mp4").write_bytes(b"")
    out = train_tiny(videos, tmp_path / "run", f"data.source={src}", "stages=[{steps: 4, resolution: 28}]",
                     resume=False)
    assert out["step"] == 4
    assert out["skipped_videos"] >= 2


def test_missing_and_empty_sources_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no training data"):
        train(load_config(TrainConfig, None, [f"out_dir={tmp_path}"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError):
        train_tiny(tmp_path, tmp_path / "o", f"data.source={tmp_path / 'empty'}", resume=False)


def test_batch_must_divide(videos, tmp_path):
    with pytest.raises(UserError, match="multiple of micro_batch_size"):
        train_tiny(videos, tmp_path, "optim.batch_size=3", resume=False)


def test_validation_reports_model_and_both_baselines(videos, tmp_path):
    out = train_tiny(videos, tmp_path, f"data.val_source={videos / 'val'}", "val_every=3", "val_batches=1",
                     resume=False)
    assert out["val/loss"] > 0 and out["val/copy_last"] > 0 and out["val/context_mean"] > 0
    assert out["train_context_mean"] > 0 and out["train_copy_last"] > 0
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val/loss" in l]
    assert len(rows) == 2  # steps 3 and 6
    assert all(r["val/context_mean"] != r["val/copy_last"] for r in rows)  # clips of 4 frames: not the same baseline


@pytest.mark.parametrize("strategy,port", [("ddp", "29533"), ("fsdp", "29534")])
def test_two_torchrun_processes_match_single_process(videos, tmp_path, strategy, port):
    worker = str(ROOT / "tests" / "_ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    args = tiny_train_args(videos, tmp_path / "ddp", "stages=[{steps: 3, resolution: 28}]", f"strategy={strategy}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port, worker, *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = torch.load(tmp_path / "ddp" / "ranks.pt")
    assert ranks.shape[0] == 2 and torch.equal(ranks[0], ranks[1])  # identical on every rank
    single = tiny_train_args(videos, tmp_path / "single", "stages=[{steps: 3, resolution: 28}]")
    r = subprocess.run([sys.executable, worker, *single], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    one = torch.load(tmp_path / "single" / "ranks.pt")[0]
    assert torch.allclose(ranks[0], one, atol=2e-5), (ranks[0] - one).abs().max()
    # rank 0 wrote the gathered (full) weights in the checkpoint
    _, multi = read_model_folder(latest_checkpoint(tmp_path / "ddp"))
    _, single_state = read_model_folder(latest_checkpoint(tmp_path / "single"))
    assert multi.keys() == single_state.keys()
    for k, v in single_state.items():
        assert torch.allclose(multi[k], v, atol=2e-5), k


def test_train_destroys_the_process_group_it_created_and_only_that(videos, tmp_path, monkeypatch):
    """Left to interpreter exit, a gloo group can abort a finished rank (SIGABRT); train() tears down its own."""
    import torch.distributed as dist

    from dinoworld.train import loop
    from dinoworld.train.distributed import Dist, shutdown_distributed

    def join_group(owns):
        store = dist.FileStore(str(tmp_path / f"store{len(list(tmp_path.iterdir()))}"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        return Dist(owns_group=owns)

    try:
        monkeypatch.setattr(loop, "init_distributed", lambda: join_group(True))
        train_tiny(videos, tmp_path / "a", "stages=[{steps: 1, resolution: 28}]", resume=False)
        assert not dist.is_initialized()
        with pytest.raises(UserError):  # a failing run lets go of it too
            train_tiny(videos, tmp_path / "b", "optim.batch_size=3", resume=False)
        assert not dist.is_initialized()
        monkeypatch.setattr(loop, "init_distributed", lambda: join_group(False))  # the caller's group: kept
        train_tiny(videos, tmp_path / "c", "stages=[{steps: 1, resolution: 28}]", resume=False)
        assert dist.is_initialized()
        shutdown_distributed(Dist(owns_group=True))
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_feature_cache_fixes_the_resolution(videos, tmp_path):
    """A cache encoded at 28 px cannot train a stage 'at 56': refused, never silently recorded as 56."""
    from dinoworld.data import encode_videos_to_cache
    from dinoworld.encoders import load_encoder

    paths = sorted(str(p) for p in (videos / "train").glob("*.mp4"))[:4]
    encode_videos_to_cache(paths, load_encoder("pixel-pyramid"), tmp_path / "cache", fps=8.0, size=(28, 28),
                           progress=False)
    with pytest.raises(UserError, match=r"encoded at 28x28 px but stage 1 asks for 56 px"):
        train_tiny(videos, tmp_path / "bad", f"data.source={tmp_path / 'cache'}", "stages=[{steps: 1, resolution: 56}]")
    ok = train_tiny(videos, tmp_path / "ok", f"data.source={tmp_path / 'cache'}", "stages=[{steps: 1, resolution: 28}]")
    meta, _ = read_model_folder(ok["checkpoint"])
    assert meta.resolution == 28 and meta.encoder.name == "pixel-pyramid"


def test_one_default_gap_range_for_every_stream():
    import inspect

    from dinoworld.data import FeatureClipDataset, VideoClipDataset
    from dinoworld.data.sampler import DT_MAX, DT_MIN
    from dinoworld.train import DataConfig

    for cls in (FeatureClipDataset, VideoClipDataset):
        sig = inspect.signature(cls)
        assert (sig.parameters["dt_min"].default, sig.parameters["dt_max"].default) == (DT_MIN, DT_MAX), cls
    assert (DataConfig().dt_min, DataConfig().dt_max) == (DT_MIN, DT_MAX)


def test_an_hf_encoder_folder_trains_and_reloads_by_name(videos, tmp_path):
    """``model.encoder=hf:<folder>`` flows into the checkpoint and back through WorldModel.from_pretrained."""
    from transformers import Dinov2Config, Dinov2Model

    from dinoworld.model import WorldModel

    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             patch_size=7, image_size=28)).save_pretrained(tmp_path / "enc")
    name = f"hf:{tmp_path / 'enc'}"
    train_tiny(videos, tmp_path / "run", f"model.encoder={name}", "stages=[{steps: 2, resolution: 28}]", resume=False)
    wm = WorldModel.from_pretrained(tmp_path / "run")
    assert wm.meta.encoder.name == wm.encoder.name == name and wm.predictor.cfg.in_dim == 32
