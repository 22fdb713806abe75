"""First contact: checkpoint paths vs hub ids, damaged checkpoints of a run, small trajectory
collections, forecasting windows without labels, a cache of only bad videos."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_error_line, truncate, write_collection, write_tiny_checkpoint
from dinoworld.errors import UserError
from dinoworld.model import WorldModel, build_predictor
from dinoworld.model import world_model as wm_module
from dinoworld.model.folder import checkpoint_folder, load_predictor, read_meta


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


# --------------------------------------------------------------------- paths and hub ids
@pytest.fixture()
def no_hub(monkeypatch):
    """Any hub access fails the test."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail(f"hub asked for {a}"))
    monkeypatch.setattr(wm_module, "hub_unreachable", lambda *a, **k: pytest.fail("probed the hub"))


@pytest.mark.parametrize("name", ["runs/x", "./x", "x", "a/b/c", "~/no-such-dinoworld-run", "ABS"])
def test_a_missing_local_path_is_no_such_folder_without_the_hub(name, tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # runs/x beside a runs folder is a path, not a hub id
    name = str(tmp_path / "gone") if name == "ABS" else name
    with pytest.raises(UserError) as err:
        WorldModel.from_pretrained(name)
    msg = str(err.value)
    assert "no such folder" in msg and "run folder" in msg and "\n" not in msg and "hub" not in msg


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    return cache


def test_a_hub_id_missing_from_the_cache_offline_is_one_line(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(wm_module, "hub_unreachable", lambda *a, **k: pytest.fail("probed the hub while offline"))
    with pytest.raises(UserError) as err:
        WorldModel.from_pretrained("someone/model")
    msg = str(err.value)
    assert "\n" not in msg and "no local folder someone/model" in msg and "no hub model someone/model" in msg
    assert "HF_HUB_OFFLINE" in msg and "LocalEntryNotFoundError" not in msg


def test_an_unreachable_hub_is_one_line(hub_cache, monkeypatch):
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(wm_module, "hub_unreachable", lambda *a, **k: "huggingface.co:443 unreachable: no route")
    with pytest.raises(UserError) as err:
        WorldModel.from_pretrained("someone/model")
    msg = str(err.value)
    assert "\n" not in msg and "no local folder someone/model" in msg and "cannot be reached" in msg


def test_a_hub_id_in_the_cache_loads_offline_and_a_local_folder_wins(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = hub_cache / "models--someone--model"
    write_tiny_checkpoint(repo / "snapshots" / "abc123", step=7)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert WorldModel.from_pretrained("someone/model", load_encoder_model=False).meta.step == 7
    write_tiny_checkpoint(Path("someone") / "model", step=8)  # the same name as a local folder
    assert WorldModel.from_pretrained("someone/model", load_encoder_model=False).meta.step == 8


# ------------------------------------------------------------- damaged checkpoints of a run
def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    save_file(state, str(folder / "model.safetensors"))


DAMAGE = {
    "truncated weights": lambda d: truncate(d / "model.safetensors"),
    "NaN weights": _nan_weights,
    "invalid config": lambda d: (d / "config.json").write_text("{not json"),
    "config of another shape": lambda d: (d / "config.json").write_text(
        json.dumps({**json.loads((d / "config.json").read_text()), "predictor": {"dim": 7, "depth": 1}})),
}


@pytest.fixture()
def run(tmp_path):
    root = tmp_path / "run"
    for step in (3, 6):
        write_tiny_checkpoint(root / "checkpoints" / f"step_{step:08d}", step=step, seed=step)
    return root


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_run_folder_falls_back_to_its_newest_checkpoint_that_loads(run, damage, capsys):
    newest = run / "checkpoints" / "step_00000006"
    DAMAGE[damage](newest)
    capsys.readouterr()
    model, meta = load_predictor(run)
    assert meta.step == 3 and not model.training
    lines = _warnings(capsys)
    assert len(lines) == 1 and "step_00000006" in lines[0] and "using step_00000003" in lines[0], lines
    assert WorldModel.from_pretrained(run, load_encoder_model=False).meta.step == 3
    assert checkpoint_folder(run).name == "step_00000003" and read_meta(run).step == 3
    assert len(_warnings(capsys)) == 3  # one line per load
    # given directly, the damaged checkpoint is refused
    with pytest.raises(UserError) as err:
        load_predictor(newest)
    assert "step_00000006" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError):
        WorldModel.from_pretrained(newest, load_encoder_model=False)


def test_a_run_whose_checkpoints_are_all_damaged_is_one_error(run, capsys):
    for step in (3, 6):
        truncate(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors")
    with pytest.raises(UserError) as err:
        load_predictor(run)
    msg = str(err.value)
    assert "step_00000006" in msg and "no older checkpoint" in msg and "\n" not in msg


def test_the_cli_loads_a_run_with_a_damaged_newest_checkpoint(run, tmp_path, capsys):
    from dinoworld.cli import main
    from dinoworld.data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "v", num_videos=1, seconds=2.0, size=56, seed=0)
    video = str(next((tmp_path / "v").glob("*.mp4")))
    truncate(run / "checkpoints" / "step_00000006" / "model.safetensors")
    capsys.readouterr()
    assert main(["rollout", video, "--checkpoint", str(run), "--horizon", "0.5", "--out", str(tmp_path / "o")]) == 0
    lines = _warnings(capsys)
    assert len(lines) == 1 and "step_00000006" in lines[0] and "step_00000003" in lines[0], lines


# ----------------------------------------------------------------- small trajectory collections
def _collection(root: Path, episodes: int, steps: int, size: int = 28) -> Path:
    rng = np.random.default_rng(0)

    def episode() -> dict[str, np.ndarray]:
        frames = rng.integers(0, 255, (steps + 1, size, size, 3), dtype=np.uint8)
        actions = rng.uniform(-1, 1, (steps, 2)).astype(np.float32)
        return {"frames": frames, "actions": actions, "states": np.zeros((steps + 1, 2), np.float32),
                "goal": np.zeros(2, np.float32)}

    return write_collection(root, (episode() for _ in range(episodes)), env="wall", action_dim=2, state_dim=2,
                            img_size=size)


CPU = ["model.size=tiny", "model.encoder=pixel-pyramid", "finetune.resolution=56", "optim.batch_size=16"]


def test_a_collection_too_small_to_train_on_is_refused(tmp_path):
    from dinoworld.train.finetune import finetune_config

    short = _collection(tmp_path / "short", episodes=6, steps=10)  # 4 frames at frameskip 5 need 15 actions
    with pytest.raises(UserError) as err:
        finetune_config("wall", str(short), "scratch", overrides=CPU)
    msg = str(err.value)
    assert "too small to fine-tune" in msg and "10 actions" in msg and "15 actions" in msg and "\n" not in msg
    assert finetune_config("wall", str(short), "scratch", overrides=[*CPU, "data.frameskip=3"]).data.frameskip == 3
    one = _collection(tmp_path / "one", episodes=1, steps=20)  # trains, but holds nothing out to validate on
    with pytest.raises(UserError, match="no held-out clip .*data.val_source=''"):
        finetune_config("wall", str(one), "scratch", overrides=CPU)
    assert finetune_config("wall", str(one), "scratch", overrides=[*CPU, "data.val_source="]).data.val_source == ""


def _action_check(cfg):
    """The held-out action check as ``dinoworld finetune`` runs it, on an untrained tiny model."""
    from dinoworld.data.trajectory_clips import trajectory_clip_stream
    from dinoworld.encoders import load_encoder
    from dinoworld.eval.actions import action_conditioned_errors

    d = cfg.data
    stream = trajectory_clip_stream(d.source, split_seed=cfg.seed, val_fraction=cfg.finetune.val_fraction, val=True,
                                    num_frames=d.num_frames, frameskip=d.frameskip, size=cfg.stages[-1].resolution,
                                    policy=d.crop)
    model = build_predictor("tiny", in_dim=36, action_dim=cfg.model.action_dim)
    return action_conditioned_errors(model, stream, load_encoder("pixel-pyramid"),
                                     batch_size=cfg.optim.micro_batch_size, max_batches=1)


def test_heldout_check_problem_predicts_the_action_check(tmp_path):
    from dinoworld.train.finetune import finetune_config, heldout_check_problem

    data = _collection(tmp_path / "wall", episodes=24, steps=20)  # 2 held-out episodes x 6 windows = 12 clips

    def cfg(micro):
        return finetune_config("wall", str(data), "scratch", overrides=[*CPU, f"optim.micro_batch_size={micro}"])

    problem = heldout_check_problem(cfg(16))
    assert problem and "\n" not in problem
    assert "2 held-out episodes of 24" in problem and "12 clips" in problem and "batch of 16" in problem
    assert "3 held-out episodes" in problem and "26 episodes" in problem
    with pytest.raises(UserError, match="no batch of at least 2 clips"):
        _action_check(cfg(16))
    assert heldout_check_problem(cfg(13)) is not None
    assert heldout_check_problem(cfg(12)) is None and _action_check(cfg(12))["clips"] == 12
    assert "at least 2" in heldout_check_problem(cfg(1))
    more = _collection(tmp_path / "more", episodes=26, steps=20)
    assert heldout_check_problem(finetune_config("wall", str(more), "scratch", overrides=CPU)) is None


def test_finetune_init_from_a_run_with_a_damaged_newest_checkpoint(run, tmp_path, capsys):
    from dinoworld.train.finetune import finetune_config

    truncate(run / "checkpoints" / "step_00000006" / "model.safetensors")
    data = _collection(tmp_path / "wall", episodes=12, steps=20)
    capsys.readouterr()
    cfg = finetune_config("wall", str(data), "frozen", init=str(run), overrides=CPU)
    assert Path(cfg.finetune.init).name == "step_00000003"
    assert len(_warnings(capsys)) == 1


# ------------------------------------------------------------- forecasting windows without labels
@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from dinoworld.eval.forecast.probe import write_forecast_probe

    root = tmp_path_factory.mktemp("fprobe")
    write_forecast_probe(root, train_videos=0, train_sequences=1, val_sequences=2, size=28, seconds=1.4)
    return root


def _heads(enc):
    from dinoworld.eval.forecast.heads import DenseHead, HeadConfig

    torch.manual_seed(0)
    return {t: DenseHead(HeadConfig(t, enc.dim, 3 if t == "segmentation" else 1, enc.name, "synthetic", crop=(0, 0),
                                    short_side=0)).eval() for t in ("segmentation", "depth")}


def _forecast(root):
    from dinoworld.encoders import load_encoder
    from dinoworld.eval.forecast import PROTOCOLS, Scoring, evaluate_forecast
    from dinoworld.eval.forecast.readers import read_synthetic

    enc = load_encoder("pixel-pyramid")
    wm = WorldModel(enc, build_predictor("tiny", in_dim=36)).eval()
    datasets = {t: read_synthetic(root, "val", t) for t in ("segmentation", "depth")}
    return evaluate_forecast(wm, datasets, _heads(enc), PROTOCOLS["synthetic"], Scoring(0, (0, 0), 0))


def test_windows_without_a_label_are_counted_and_warned(probe, tmp_path, capsys):
    from dinoworld.eval.forecast import PROTOCOLS, windows_of
    from dinoworld.eval.forecast.readers import read_synthetic

    full = _forecast(probe).summary
    assert (full["windows"], full["skipped"], full["skipped_unlabelled"]) == (4, 0, 0)
    assert not _warnings(capsys)
    root = tmp_path / "probe"
    shutil.copytree(probe, root)
    seqs = sorted((root / "sequences" / "val").iterdir())
    (seqs[0] / "classes" / "000019.png").unlink()  # window 0 of sequence 0
    (seqs[1] / "depth" / "000020.png").unlink()  # window 1 of sequence 1, a label of the second task
    seg = read_synthetic(root, "val", "segmentation")
    assert list(seg.sequences[0].missing_labels) == [19] and not seg.sequences[1].missing_labels
    assert len(windows_of(seg, PROTOCOLS["synthetic"])) == 4
    ev = _forecast(root)
    s = ev.summary
    assert (s["windows"], s["skipped"], s["skipped_unlabelled"]) == (2, 2, 2)
    assert any("no segmentation label" in r for r in ev.skipped) and any("no depth label" in r for r in ev.skipped)
    lines = _warnings(capsys)
    assert len(lines) == 1 and "2 of 4" in lines[0] and "2 without a label" in lines[0], lines
    for seq in seqs:  # no window left to score: one error
        for f in (seq / "classes").glob("0000[12]?.png"):
            f.unlink()
    with pytest.raises(UserError, match="cannot score any of the 4"):
        _forecast(root)


# ------------------------------------------------------------------- a cache of only bad videos
def test_encoding_only_bad_videos_is_an_error_and_leaves_no_cache(tmp_path, capsys):
    import warnings

    from _video_files import write_indexed_video
    from dinoworld.cli import main
    from dinoworld.data.cache import encode_videos_to_cache
    from dinoworld.data.factory import detect_kind
    from dinoworld.encoders import load_encoder

    src = tmp_path / "videos"
    src.mkdir()
    bad = [src / "a.mp4", src / "b.mp4"]
    for p in bad:
        p.write_bytes(b"not a video at all" * 40)
    enc = load_encoder("pixel-pyramid")
    out = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError) as err:
            encode_videos_to_cache([str(p) for p in bad], enc, out, size=28, progress=False)
        msg = str(err.value)
        assert "none of the 2 videos" in msg and str(bad[0]) in msg and "\n" not in msg
        assert not out.exists() and detect_kind(out) != "cache"
        out.mkdir()  # a folder the user made stays, empty
        with pytest.raises(UserError):
            encode_videos_to_cache([str(p) for p in bad], enc, out, size=28, progress=False, shard_size=1)
        assert out.is_dir() and not any(out.iterdir())
        # the files repaired, the same command encodes them (nothing stale is reused)
        for p in bad:
            write_indexed_video(p, 8, 4.0, size=28)
        done = encode_videos_to_cache([str(p) for p in bad], enc, out, size=28, progress=False, shard_size=1)
        assert done.num_encoded == 2 and done.shards_reused == 0
        for p in bad:
            p.write_bytes(b"garbage" * 40)
        capsys.readouterr()
        assert main(["encode", str(src), "--out", str(tmp_path / "c2"), "--encoder", "pixel-pyramid",
                     "--resolution", "28"]) == 2
    assert "none of the 2 videos" in one_error_line(capsys, alone=False)
    assert not (tmp_path / "c2").exists()
