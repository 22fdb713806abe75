"""Errors and faults (issue 13): damaged files, resume after faults, Ctrl-C, skip counts, mismatched
caches, encoder-weight hints, offline hub, CLI overrides, progress bars in logs."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import one_error_line, tiny_train_args, train_tiny, truncate
from dinoworld.cli import build_parser, main
from dinoworld.data import write_synthetic_dataset
from dinoworld.errors import UserError
from dinoworld.model.folder import complete_checkpoints, latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_synthetic_dataset(root / "train", num_videos=4, seconds=2.0, size=56, seed=0)
    return root


# ------------------------------------------------------------------------- damaged checkpoints
def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if k == "predictor_dim":
            cfg["predictor"]["dim"] = v
        else:
            cfg[k] = v
    (folder / "config.json").write_text(json.dumps(cfg))


DAMAGE = {
    "truncated weights": (lambda d: truncate(d / "model.safetensors"), "model.safetensors cannot be read"),
    "garbage weights": (lambda d: (d / "model.safetensors").write_bytes(b"not a tensor file" * 40),
                        "model.safetensors cannot be read"),
    "truncated config": (lambda d: truncate(d / "config.json", 0.3), "config.json is not valid JSON"),
    "binary config": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\0junk"), "config.json is not valid JSON"),
    "config of a list": (lambda d: (d / "config.json").write_text("[1, 2]"), "has format 'list'"),
    "wrongly typed predictor field": (lambda d: _edit_config(d, predictor_dim="abc"),
                                      "predictor settings in .* are invalid"),
    "predictor not a mapping": (lambda d: _edit_config(d, predictor=[1]), "as 'predictor'"),
    "encoder not a mapping": (lambda d: _edit_config(d, encoder=[1]), "as 'encoder'"),
}


@pytest.fixture(scope="module")
def rollout_video(videos):
    return str(sorted((videos / "train").glob("*.mp4"))[0])


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    from dinoworld.encoders import load_encoder
    from dinoworld.model import WorldModel, build_predictor

    folder = tmp_path_factory.mktemp("ckpt") / "model"
    wm = WorldModel(load_encoder("pixel-pyramid"), build_predictor("tiny", in_dim=36), {"resolution": 28})
    wm.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_rollout_of_a_damaged_checkpoint_is_one_error_line(damage, good_checkpoint, rollout_video, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(good_checkpoint, folder)
    mutate, message = DAMAGE[damage]
    mutate(folder)
    rc = main(["rollout", rollout_video, "--checkpoint", str(folder), "--horizon", "0.5", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert re.search(message, one_error_line(capsys, alone=False)), damage


def test_truncated_train_state_is_one_error_line(videos, tmp_path, capsys):
    train_tiny(videos, tmp_path, resume=False, max_steps=3)
    truncate(latest_checkpoint(tmp_path) / "train_state.pt")
    assert main(["train", *tiny_train_args(videos, tmp_path), "--max-steps", "4"]) == 2
    line = one_error_line(capsys, alone=False)
    assert "train_state.pt cannot be read" in line and "--no-resume" in line


# ------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("fault", ["missing", "truncated", "weights"])
def test_resume_falls_back_to_newest_usable_checkpoint(videos, tmp_path, capsys, fault):
    train_tiny(videos, tmp_path, resume=False)  # checkpoints at steps 3 and 6
    newest = latest_checkpoint(tmp_path)
    assert newest.name == "step_00000006"
    if fault == "missing":
        (newest / "train_state.pt").unlink()
    else:
        truncate(newest / ("model.safetensors" if fault == "weights" else "train_state.pt"))
    capsys.readouterr()
    out = train_tiny(videos, tmp_path, max_steps=5)
    said = capsys.readouterr().out
    assert out["start_step"] == 3 and out["step"] == 5
    lines = [line for line in said.splitlines() if "newest usable checkpoint step_00000003" in line]
    assert len(lines) == 1 and "step_00000006" in lines[0], said
    # the unusable checkpoint is moved aside: it is no longer the run's newest
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step_00000003", "step_00000005"]
    assert (tmp_path / "checkpoints" / ".unusable-step_00000006").is_dir()


def test_stale_temporary_checkpoint_folders_are_removed_on_start(videos, tmp_path):
    train_tiny(videos, tmp_path, resume=False, max_steps=3)
    root = tmp_path / "checkpoints"
    torn = [root / ".tmp-step_00000006-999", root / ".old-step_00000003-998"]
    for t in torn:
        t.mkdir()
        (t / "model.safetensors").write_bytes(b"\0" * 10)
    assert train_tiny(videos, tmp_path, max_steps=4)["start_step"] == 3
    assert not any(t.exists() for t in torn)


def test_metrics_have_one_row_per_step_after_resume(videos, tmp_path):
    from dinoworld.train.logging import read_metrics

    train_tiny(videos, tmp_path, resume=False, max_steps=5)  # logged 1..5, checkpoint at 3
    (tmp_path / "checkpoints" / "step_00000005").rename(tmp_path / "checkpoints" / "gone")  # killed before 5 was saved
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "train/lo')  # a row torn by the kill
    assert train_tiny(videos, tmp_path)["start_step"] == 3
    steps = [r["step"] for r in read_metrics(tmp_path)]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_ctrl_c_saves_the_current_step_and_resume_continues(videos, tmp_path, monkeypatch, capsys):
    import dinoworld.train.loop as loop

    straight = train_tiny(videos, tmp_path / "straight", resume=False)["model"]
    real = loop.teacher_forcing_loss
    calls = {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 10:  # second micro-batch of step 5 (2 micro-batches per step)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "teacher_forcing_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(videos, tmp_path / "run", resume=False)
    assert "saved a checkpoint at step 4" in capsys.readouterr().out
    assert latest_checkpoint(tmp_path / "run").name == "step_00000004"  # ckpt_every=3: only Ctrl-C saved 4
    monkeypatch.setattr(loop, "teacher_forcing_loss", real)
    resumed = train_tiny(videos, tmp_path / "run")
    assert resumed["start_step"] == 4 and resumed["step"] == 6
    for (n, p), q in zip(straight.named_parameters(), resumed["model"].parameters()):
        assert torch.equal(p, q), n  # the interrupted run resumes exactly


# -------------------------------------------------------------------------------- bad videos
def test_skipped_videos_are_counted_once_each(videos, tmp_path, capsys):
    from _video_files import write_bad_files

    src = tmp_path / "mixed"
    src.mkdir()
    for p in sorted((videos / "train").glob("*.mp4")):
        (src / p.name).write_bytes(p.read_bytes())
    bad = write_bad_files(src, sorted((videos / "train").glob("*.mp4"))[0])
    assert len(bad) == 4
    # 6 steps x 4 clips from 4 good videos = 6 epochs, each meeting the 4 bad files again
    half = train_tiny(videos, tmp_path / "run", f"data.source={src}", resume=False, max_steps=3)
    assert half["skipped_videos"] == 4
    out = train_tiny(videos, tmp_path / "run", f"data.source={src}")  # the set survives a resume
    assert out["skipped_videos"] == 4 and out["skip_events"] >= 20
    said = capsys.readouterr().out
    assert "skipped 4 unreadable or too-short videos" in said
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r.get("skipped_videos", 0) for r in rows) == 4


# ------------------------------------------------------------------------------ feature cache
def test_a_feature_cache_refuses_another_encoder(videos, tmp_path):
    from dinoworld.data import encode_videos_to_cache
    from dinoworld.encoders import load_encoder

    paths = sorted(str(p) for p in (videos / "train").glob("*.mp4"))[:2]
    encode_videos_to_cache(paths, load_encoder("pixel-pyramid"), tmp_path / "cache", fps=8.0, size=(28, 28),
                           progress=False)
    with pytest.raises(UserError, match=r"feature cache of encoder 'pixel-pyramid' but model.encoder=dinov2-s14-reg"):
        train_tiny(videos, tmp_path / "bad", f"data.source={tmp_path / 'cache'}", "model.encoder=dinov2-s14-reg",
             "stages=[{steps: 1, resolution: 28}]")
    # the default encoder name means "the cache's": it trains and records the cache's encoder
    ok = train_tiny(videos, tmp_path / "ok", f"data.source={tmp_path / 'cache'}", "model.encoder=dinov2-b14-reg",
              "stages=[{steps: 1, resolution: 28}]")
    from dinoworld.model.folder import read_meta

    assert read_meta(ok["checkpoint"]).encoder.name == "pixel-pyramid"


# ----------------------------------------------------------------------------- encoder weights
def test_missing_encoder_weights_name_the_verbs_own_option(videos, tmp_path, capsys):
    # train has no --encoder-weights flag: it must point at model.encoder_weights=PATH
    assert main(["train", *tiny_train_args(videos, tmp_path), "model.encoder=dinov2-s14-reg"]) == 2
    line = one_error_line(capsys, alone=False)
    assert "model.encoder_weights=PATH" in line and "--encoder-weights" not in line
    assert main(["train", *tiny_train_args(videos, tmp_path), "model.encoder=dinov2-s14-reg",
                 "model.encoder_weights=/no/such/dir"]) == 2
    line = one_error_line(capsys, alone=False)
    assert "does not exist" in line and "model.encoder_weights=PATH" in line and "--encoder-weights" not in line
    # encode has the flag
    assert main(["encode", str(videos / "train"), "--out", str(tmp_path / "c"), "--encoder", "dinov2-s14-reg"]) == 2
    assert "--encoder-weights PATH" in one_error_line(capsys, alone=False)


def test_unreachable_hub_fails_at_once(tmp_path):
    """Not offline-flagged but no network: one failed connection, then the error (no back-off retries)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.lower().endswith("_proxy")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT / "src"),
               OMP_NUM_THREADS="1")
    code = ("import time, sys\nfrom dinoworld.encoders import load_encoder\nfrom dinoworld.errors import UserError\n"
            "from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel\n"  # imports are not timed
            "t = time.time()\ntry:\n    load_encoder('dinov2-s14-reg')\nexcept UserError as e:\n"
            "    print(f'{time.time() - t:.1f}', e)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    seconds, message = r.stdout.strip().split(" ", 1)
    assert float(seconds) < 10, r.stdout  # the hub client's back-off alone took 23 s
    assert "cannot be reached" in message and "--encoder-weights PATH" in message


def test_hub_offline_never_waits_for_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dinoworld.encoders import hf, load_encoder

    monkeypatch.setattr(hf, "hub_unreachable", lambda *a, **k: pytest.fail("probed the hub while offline"))
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel  # noqa: F401  (imports are not timed)

    t = time.time()
    with pytest.raises(UserError, match="--encoder-weights"):
        load_encoder("dinov2-s14-reg")
    assert time.time() - t < 10


# ------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("argv,overrides,max_steps", [
    (["train", "--max-steps", "30", "val_every=30"], ["val_every=30"], 30),
    (["train", "a=1", "--max-steps", "30", "b=2", "--json", "c=3"], ["a=1", "b=2", "c=3"], 30),
    (["finetune", "--env", "wall", "--data", "d", "--mode", "scratch", "a=1", "--max-steps", "3", "b=2"],
     ["a=1", "b=2"], 3),
])
def test_dotted_overrides_are_accepted_anywhere(argv, overrides, max_steps):
    args = build_parser().parse_args(argv)
    assert args.overrides == overrides and args.max_steps == max_steps


def test_unknown_flags_are_still_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--max-steps", "3", "a=1", "--bogus", "x"])
    assert e.value.code == 2 and "--bogus" in capsys.readouterr().err


# ------------------------------------------------------------------------------ progress bars
def test_progress_bars_update_rarely_in_a_log(monkeypatch):
    import io

    from dinoworld.progress import progress_bar

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    log = io.StringIO()
    bar = progress_bar(total=1000, file=log)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert bar.mininterval >= 30
    assert log.getvalue().count("\r") <= 3  # first, (maybe) one timed, and the final line


def test_every_progress_bar_goes_through_the_helper():
    """Train, encode, collect and plan use dinoworld.progress.progress_bar."""
    src = ROOT / "src" / "dinoworld"
    direct = [str(p.relative_to(src)) for p in src.rglob("*.py")
              if "tqdm" in p.read_text() and p.name != "progress.py"]
    assert direct == []
