"""Action-conditioned fine-tuning: clips, split, normalisation, modes, checkpoint metadata, learning."""

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_error_line, write_collection, write_tiny_checkpoint
from dinoworld.cli import main
from dinoworld.data.trajectories import episode_path
from dinoworld.data.trajectory_clips import num_windows, split_episodes, steps_for_epochs, trajectory_info
from dinoworld.envs.collect import collect
from dinoworld.errors import UserError
from dinoworld.model import group_actions
from dinoworld.model.folder import latest_checkpoint, read_model_folder
from dinoworld.plan.task import PlanningTask
from dinoworld.train.distributed import Dist
from dinoworld.train.finetune import finetune_config
from dinoworld.train.streams import DataSource, run_split, trajectory_meta

EPISODES, STEPS, F, T = 40, 20, 5, 4
N_VAL = 4  # 10 % of the episodes

#: tiny CPU settings shared by the runs below
TINY = [
    "model.size=tiny", "model.encoder=pixel-pyramid", "optim.batch_size=4", "optim.micro_batch_size=4",
    "optim.lr=1e-3", "optim.warmup_steps=1", "data.num_workers=0", "stages=[{steps: 3, resolution: 56}]",
    "log_every=1", "ckpt_every=1000", "val_every=1000", "val_batches=1", "tensorboard=false", "progress=false",
]


@pytest.fixture(scope="module")
def wall(tmp_path_factory):
    root = tmp_path_factory.mktemp("wall")
    collect("wall", root, episodes=EPISODES, steps=STEPS, img_size=56, progress=False)
    return root


def _raw(root, episode):
    with np.load(episode_path(root, episode)) as z:
        return z["frames"], z["actions"]


def _train_stats(root, train_ids):
    acts = np.concatenate([_raw(root, e)[1] for e in train_ids]).astype(np.float64)
    return acts.mean(0), acts.std(0)


@pytest.fixture()
def init_ckpt(tmp_path):
    """A 'pre-trained' unconditional tiny predictor for the pixel-pyramid stand-in, and its weights."""
    folder = write_tiny_checkpoint(tmp_path / "init")
    return folder, read_model_folder(folder)[1]


# ----------------------------------------------------------------------------------- clips
def test_split_is_random_90_10_and_deterministic(wall):
    info = trajectory_info(wall, seed=0, val_fraction=0.1)
    assert len(info.train) == EPISODES - N_VAL and len(info.val) == N_VAL
    assert set(info.train).isdisjoint(info.val) and set(info.train) | set(info.val) == set(range(EPISODES))
    assert split_episodes(EPISODES, 0.1, 0) == (info.train, info.val)
    assert split_episodes(EPISODES, 0.1, 1) != (info.train, info.val)
    assert info.val != list(range(EPISODES - N_VAL, EPISODES)) and info.val != list(range(N_VAL))  # not head/tail
    assert split_episodes(5, 0.1, 0)[1] and not split_episodes(1, 0.1, 0)[1]  # at least one held out if possible


def test_clips_skip_frames_and_concatenate_normalised_actions(wall):
    cfg = finetune_config("wall", str(wall), "scratch", overrides=TINY)
    assert (cfg.data.num_frames, cfg.data.frameskip, cfg.model.action_dim) == (T, F, 2 * F)
    info = trajectory_info(wall, cfg.seed, cfg.finetune.val_fraction)
    train_ids = [info.episode_ids[i] for i in info.train]
    mean, std = _train_stats(wall, train_ids)
    np.testing.assert_allclose(info.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(info.std, std, rtol=1e-6)
    all_mean = np.concatenate([_raw(wall, e)[1] for e in range(EPISODES)]).mean(0)
    assert not np.allclose(all_mean, mean, rtol=0, atol=1e-4)  # the held-out episodes are left out

    stream = DataSource.resolve(cfg, torch.device("cpu")).train_stream(56, Dist(), seed=3)
    free_groups = 0
    for sample in islice(iter(stream), 10):
        ep, s = int(sample["episode"]), int(sample["start"])
        assert ep in train_ids
        frames, actions = _raw(wall, ep)
        idx = [s + k * F for k in range(T)]
        # 56-px data at resolution 56: frames are the raw frames at s, s+f, s+2f, s+3f
        torch.testing.assert_close(sample["frames"], torch.from_numpy(frames[idx]).permute(0, 3, 1, 2) / 255.0)
        torch.testing.assert_close(sample["times"], torch.tensor(idx, dtype=torch.float32) / 10.0)
        acts = sample["actions"]
        assert acts.shape == (T - 1, 2 * F)
        for k in range(T - 1):
            for j in range(F):  # model action k = [a_{s+kf}, .., a_{s+kf+f-1}], normalised per raw dim
                want = (actions[s + k * F + j] - mean) / std
                np.testing.assert_allclose(acts[k, 2 * j: 2 * j + 2].numpy(), want, rtol=1e-4, atol=1e-5)
        # the agent's displacement between clip frames k and k+1 is 2 x the sum of model action k
        # (Wall moves by 2a per step), wherever no wall got in the way
        with np.load(episode_path(wall, ep)) as z:
            pos = z["states"][:, :2]
        raw_acts = acts.numpy().reshape(T - 1, F, 2) * std + mean
        for k in range(T - 1):
            moves = range(s + k * F, s + (k + 1) * F)
            if all(np.allclose(pos[t + 1] - pos[t], 2 * actions[t], atol=1e-4) for t in moves):
                free_groups += 1
                np.testing.assert_allclose(pos[idx[k + 1]] - pos[idx[k]], 2 * raw_acts[k].sum(0), atol=1e-3)
    assert free_groups >= 5
    raw = np.arange(2 * 3 * F * 2).reshape(2, 3 * F, 2)
    assert group_actions(raw, F).shape == (2, 3, 2 * F) and group_actions(raw, F)[0, 1, 0] == raw[0, F, 0]


def test_one_epoch_is_every_training_window_once_and_val_is_held_out(wall):
    cfg = finetune_config("wall", str(wall), "scratch", overrides=TINY)
    info = trajectory_info(wall, cfg.seed, cfg.finetune.val_fraction)
    per_episode = num_windows(STEPS, T, F)
    assert per_episode == STEPS - (T - 1) * F + 1 == 6
    data = DataSource.resolve(cfg, torch.device("cpu"))
    stream = data.train_stream(56, Dist(), seed=0)
    assert len(stream) == (EPISODES - N_VAL) * per_episode
    seen = [(int(x["episode"]), int(x["start"])) for x in islice(iter(stream), len(stream))]
    want = {(info.episode_ids[p], s) for p in info.train for s in range(per_episode)}
    assert len(seen) == len(set(seen)) and set(seen) == want

    val = list(data.val_stream(56, Dist(), seed=12345))  # one finite pass
    val_ids = {info.episode_ids[p] for p in info.val}
    assert len(val) == N_VAL * per_episode and {int(x["episode"]) for x in val} == val_ids

    # 25 epochs = 25 passes over the windows, in optimizer steps
    assert steps_for_epochs([50] * 1728, 25, 1024, T, F) == 1519  # paper's Wall: 90 % of 1920 x 50 steps
    assert steps_for_epochs([STEPS] * 36, 25, 16, T, F) == int(np.ceil(25 * 36 * 6 / 16))
    default = finetune_config("wall", str(wall), "scratch", overrides=["optim.batch_size=16"])
    assert default.stages[0].resolution == 224
    assert default.stages[0].steps == steps_for_epochs(info.lengths, 25, 16, T, F, episodes=info.train)
    assert default.optim.warmup_steps == int(np.ceil(0.1 * default.stages[0].steps))
    small = finetune_config("wall", str(wall), "scratch", overrides=["optim.batch_size=16", "finetune.resolution=56"])
    assert small.stages[0].resolution == 56 and small.stages[0].steps == default.stages[0].steps


def test_stream_resumes_exactly(wall):
    cfg = finetune_config("wall", str(wall), "scratch", overrides=TINY)
    data = DataSource.resolve(cfg, torch.device("cpu"))
    a = data.train_stream(56, Dist(), seed=7)
    first = list(islice(iter(a), 5))
    b = data.train_stream(56, Dist(), seed=7)
    b.load_state_dict(a.state_dict())
    c = list(islice(iter(data.train_stream(56, Dist(), seed=7)), 6))
    nxt = next(iter(b))
    assert [int(x["start"]) for x in first] == [int(x["start"]) for x in c[:5]]
    assert (int(nxt["episode"]), int(nxt["start"])) == (int(c[5]["episode"]), int(c[5]["start"]))


# ----------------------------------------------------------------------------------- modes
def _finetune(wall, out, mode, *extra):
    return main(["finetune", "--env", "wall", "--data", str(wall), "--mode", mode, "--out", str(out), *extra])


def test_mode_and_data_errors_are_one_line(wall, tmp_path, init_ckpt, capsys):
    init = str(init_ckpt[0])
    cases = [
        (("scratch", "--init", init), "--mode scratch"),
        (("frozen",), "--init"),
        (("full",), "--init"),
    ]
    for (mode, *extra), needle in cases:
        assert _finetune(wall, tmp_path / "x", mode, *extra, *TINY) == 2
        assert needle in one_error_line(capsys)
    assert main(["finetune", "--env", "wall", "--data", str(tmp_path / "nope"), "--mode", "scratch"]) == 2
    assert "no such folder" in one_error_line(capsys)
    assert main(["finetune", "--env", "pusht", "--data", str(wall), "--mode", "scratch"]) == 2
    assert "holds wall" in one_error_line(capsys)
    assert not (tmp_path / "x").exists()  # nothing was started


def test_frozen_mode_trains_only_action_blocks_and_saves_metadata(wall, tmp_path, init_ckpt, capsys):
    init, before = init_ckpt
    out = tmp_path / "run"
    assert _finetune(wall, out, "frozen", "--init", str(init), "--check-batches", "1", *TINY) == 0
    assert "shuffled" in capsys.readouterr().out
    meta, state = read_model_folder(latest_checkpoint(out))
    for k, v in before.items():  # every pre-trained parameter is bit-identical
        assert torch.equal(state[k], v), k
    gammas = [k for k in state if k.startswith("action_blocks.") and k.endswith("gamma")]
    assert len(gammas) == 2 and all(state[k].abs().sum() > 0 for k in gammas)  # initialised at zero, trained
    assert meta.predictor["action_dim"] == 2 * F and meta.train_config["finetune"]["trainable"] == "actions"

    info = trajectory_info(wall, 0, 0.1)
    assert meta.env == "wall" and meta.frameskip == F and meta.raw_action_dim == 2
    assert meta.control_rate_hz == 10.0
    np.testing.assert_allclose(meta.action_norm["mean"], info.mean)
    np.testing.assert_allclose(meta.action_norm["std"], info.std)
    assert meta.split["seed"] == 0
    assert meta.split["train"] == [info.episode_ids[i] for i in info.train]
    assert meta.split["val"] == [info.episode_ids[i] for i in info.val]


def test_fewer_training_episodes_keep_the_held_out_split(wall, tmp_path, capsys):
    """``finetune.train_episodes`` trains on a seeded subset of the training split (fewer nested in more),
    with its own action statistics; the held-out split, and so the planning episodes, stay the same."""
    whole, few, more = (trajectory_info(wall, 0, 0.1, n) for n in (0, 5, 12))
    assert len(few.train) == 5 and set(few.train) < set(more.train) < set(whole.train)
    assert few.val == more.val == whole.val
    assert few.train != whole.train[:5]  # drawn, not the first ones
    mean, std = _train_stats(wall, [few.episode_ids[i] for i in few.train])
    np.testing.assert_allclose(few.mean, mean, rtol=1e-6)
    with pytest.raises(UserError, match=f"train_episodes=37 but {wall} has 36 training episodes"):
        trajectory_info(wall, 0, 0.1, 37)

    cfg = finetune_config("wall", str(wall), "scratch", overrides=[*TINY, "finetune.train_episodes=5"])
    stream = DataSource.resolve(cfg, torch.device("cpu")).train_stream(56, Dist(), seed=0)
    assert {int(x["episode"]) for x in islice(iter(stream), len(stream))} == {few.episode_ids[i] for i in few.train}
    assert _finetune(wall, tmp_path / "run", "scratch", *TINY, "finetune.train_episodes=5") == 0
    assert "from 5 training episodes, 4 held out" in capsys.readouterr().out
    meta, _ = read_model_folder(latest_checkpoint(tmp_path / "run"))
    assert meta.split["train"] == [few.episode_ids[i] for i in few.train]
    assert meta.split["val"] == [whole.episode_ids[i] for i in whole.val]
    np.testing.assert_allclose(meta.action_norm["mean"], few.mean)
    PlanningTask._check_collection(meta.split, wall)  # planning takes the collection it was fine-tuned on

    # another seed draws another split, unless finetune.split_seed keeps the first one
    reseeded = finetune_config("wall", str(wall), "scratch", overrides=[*TINY, "finetune.train_episodes=5", "seed=1"])
    kept = finetune_config("wall", str(wall), "scratch",
                           overrides=[*TINY, "finetune.train_episodes=5", "seed=1", "finetune.split_seed=0"])
    assert (run_split(reseeded).train, run_split(reseeded).val) != (few.train, few.val)
    assert (run_split(kept).train, run_split(kept).val) == (few.train, few.val) and kept.seed == 1
    assert trajectory_meta(kept)["split"] == {**meta.split, "data": trajectory_meta(kept)["split"]["data"]}


def test_action_free_pretraining_on_trajectories_then_frozen_finetune(wall, tmp_path, capsys):
    """``dinoworld train`` on trajectory data with model.action_dim=0 pre-trains on the frames alone
    (same split as fine-tuning: held-out episodes stay unseen); ``finetune --mode frozen`` starts from it."""
    pre = tmp_path / "pre"
    assert main(["train", f"data.source={wall}", "data.kind=trajectories", f"data.frameskip={F}",
                 f"data.num_frames={T}", f"out_dir={pre}", *TINY]) == 0
    assert "action-free pre-training" in capsys.readouterr().out
    meta, state = read_model_folder(latest_checkpoint(pre))
    assert meta.predictor["action_dim"] == 0 and not any(k.startswith("action") for k in state)
    info = trajectory_info(wall, 0, 0.1)
    assert meta.split["val"] == [info.episode_ids[i] for i in info.val]  # the split fine-tuning holds out
    out = tmp_path / "frozen"
    assert _finetune(wall, out, "frozen", "--init", str(pre), *TINY) == 0
    meta2, state2 = read_model_folder(latest_checkpoint(out))
    assert meta2.predictor["action_dim"] == 2 * F
    assert all(torch.equal(state2[k], v) for k, v in state.items())  # frozen: the pre-trained part unchanged


def test_full_and_scratch_configs(wall, init_ckpt):
    full = finetune_config("wall", str(wall), "full", init=str(init_ckpt[0]), overrides=TINY)
    assert full.finetune.trainable == "all" and full.finetune.init == str(init_ckpt[0])
    assert full.model.encoder == "pixel-pyramid"
    scratch = finetune_config("wall", str(wall), "scratch", overrides=TINY + ["data.frameskip=2"])
    assert scratch.finetune.init == "" and scratch.finetune.trainable == "all" and scratch.model.action_dim == 4


# ----------------------------------------------------------------------------------- learning
def _write_colour_world(root, episodes=60, steps=20, size=28, seed=0):
    """Trajectories (our npz format, no env name) where action ``a_t`` in [-1, 1]^2 sets the colour
    of frame ``t+1``: red = 128 + 100 a_t[0], green = 128 + 100 a_t[1]. So frame ``k+1`` of a clip is
    determined by the last raw action of model action ``k`` and by nothing in the context.
    """
    rng = np.random.default_rng(seed)

    def episode() -> dict[str, np.ndarray]:
        a = rng.uniform(-1, 1, size=(steps, 2)).astype(np.float32)
        colour = np.full((steps + 1, 3), 128.0)
        colour[0] = rng.uniform(28, 228, 3)
        colour[1:, :2] = 128 + 100 * a
        frames = np.broadcast_to(colour[:, None, None, :], (steps + 1, size, size, 3)).round().astype(np.uint8)
        return {"frames": frames, "actions": a, "states": colour.astype(np.float32), "goal": np.zeros(3, np.float32)}

    write_collection(root, (episode() for _ in range(episodes)), action_dim=2, state_dim=3, img_size=size)


def test_learns_to_use_actions(tmp_path, capsys):
    """End to end through the CLI: a scratch model must predict held-out frames far better with the
    true actions than with actions shuffled across the batch.

    Wall itself is too slow for a unit test: with the pixel-pyramid stand-in its agent is a small
    blurred blob, and a tiny predictor first has to learn to copy the scene (~1000 steps) before
    actions measurably help (~1500+ steps of 16 clips, minutes of CPU). Here the action is the
    whole signal, so 80 steps suffice (measured: true ~0.07 vs shuffled ~0.79).
    """
    root = tmp_path / "colours"
    root.mkdir()
    _write_colour_world(root)
    run = ["optim.batch_size=8", "optim.micro_batch_size=8", "optim.warmup_steps=10", "optim.lr=2e-3",
           "stages=[{steps: 80, resolution: 28}]", "data.val_source=''", "log_every=50"]
    assert _finetune(root, tmp_path / "run", "scratch", "--json", "--check-batches", "4", *TINY, *run) == 0
    cap = capsys.readouterr()
    errs = json.loads(cap.out)["action_check"]  # with --json, stdout is the JSON alone; human lines go to stderr
    out = cap.err
    assert errs["clips"] == 32 and "self-fed from one frame" in out
    assert errs["true"] < 0.25 * errs["shuffled"], errs
    assert errs["true"] < 0.25 * errs["copy_last"], errs
    # from frame 1 alone, as planning rolls out: every later frame still follows its own action
    assert errs["self_fed_true"] < 0.25 * errs["self_fed_shuffled"], errs
    assert errs["self_fed_true"] < 0.25 * errs["copy_first"], errs
    assert errs["gap"] > 4 and "the model uses its actions" in out and "barely steer" not in out


def test_action_check_runs_on_the_held_out_episodes(wall):
    """The check at the end of ``dinoworld finetune`` as a library call."""
    from dinoworld.model import build_predictor
    from dinoworld.train.finetune import action_check, action_check_lines

    cfg = finetune_config("wall", str(wall), "scratch", overrides=TINY)
    data = DataSource.resolve(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_predictor("tiny", in_dim=data.in_dim, action_dim=cfg.model.action_dim)
    errs = action_check(cfg, model, 2, data.trajectory)
    assert errs["clips"] == 2 * cfg.optim.micro_batch_size
    assert {"true", "shuffled", "copy_last", "context_mean", "self_fed_true", "self_fed_shuffled", "copy_first",
            "gap"} <= errs.keys()
    assert errs["context_mean"] != errs["copy_last"]
    assert action_check(cfg, model, 2) == errs  # the folder read again
    lines = action_check_lines(errs)
    assert len(lines) == 3 and lines[0].startswith("held-out next-latent loss") and "(8 clips)" in lines[0]
    assert f"context-mean {errs['context_mean']:.5g}" in lines[0]
    assert "self-fed from one frame" in lines[1] and "barely steer" in lines[2]  # fresh action blocks do nothing
    from dinoworld.train.finetune import context_check

    longer = finetune_config("wall", str(wall), "scratch", overrides=[*TINY, "data.num_frames=5"])
    ctx = context_check(longer, model, 1, (2, 1), data.trajectory)  # scripts/context_check.py's call
    assert (ctx["clips"], ctx["targets"], sorted(ctx["contexts"])) == (cfg.optim.micro_batch_size, 3, [1, 2])


def test_action_verdict_flags_a_model_whose_actions_do_not_steer():
    from dinoworld.eval.actions import FLAT_ACTION_GAP, action_verdict

    # the PointMaze checkpoint of results/planning-pointmaze-lookalike-cpu-202611.md
    # (self-fed true / shuffled / copy-first)
    gap, line = action_verdict({"self_fed_true": 0.001675, "self_fed_shuffled": 0.001677, "copy_first": 0.001651})
    assert gap < FLAT_ACTION_GAP and "barely steer" in line and "1.00x" in line
    gap, line = action_verdict({"self_fed_true": 0.0011, "self_fed_shuffled": 0.0059, "copy_first": 0.0046})
    assert 5.3 < gap < 5.4 and "5.4x worse" in line and "uses its actions" in line and "copy-first" not in line
    _, line = action_verdict({"self_fed_true": 0.2, "self_fed_shuffled": 0.4, "copy_first": 0.1})
    assert "no better than copy-first" in line


# ------------------------------------------------------------------------------- CPU config
CPU_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "finetune-cpu.yaml")


def test_cpu_config_loads_and_really_runs(wall, tmp_path, capsys):
    from dinoworld.train.finetune import cpu_warning, predictor_size

    cfg = finetune_config("wall", str(wall), "scratch", config=CPU_CONFIG)
    assert (cfg.model.size, cfg.model.encoder) == ("tiny", "pixel-pyramid")
    assert 56 <= cfg.stages[-1].resolution <= 112 and cfg.stages[-1].resolution == cfg.finetune.resolution
    assert cfg.optim.batch_size <= 32 and cfg.data.num_workers == 0
    assert cpu_warning(cfg) is None
    # a tiny pre-trained init at 112 px is CPU-sized too, whatever the default model.size says
    init = write_tiny_checkpoint(tmp_path / "init")
    tiny_init = finetune_config("wall", str(wall), "frozen", init=str(init),
                                overrides=["stages=[{steps: 3, resolution: 112}]"])
    assert tiny_init.model.size == "base" and cpu_warning(tiny_init) is None
    assert predictor_size(tiny_init) == "tiny" and predictor_size(cfg) == "tiny"
    out = tmp_path / "run"
    assert _finetune(wall, out, "scratch", "--config", CPU_CONFIG, "--max-steps", "2", "--check-batches", "1") == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "shuffled" in captured.out
    assert latest_checkpoint(out).name == "step_00000002"


def test_paper_defaults_without_gpu_warn_first_and_name_the_cpu_config(wall, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # offline, the default DINOv2 weights are missing: the warning must come before that error
    assert _finetune(wall, tmp_path / "run", "scratch", "--max-steps", "1", "--check-batches", "0") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("warning: no GPU") and "--config configs/finetune-cpu.yaml" in err[0]
    assert err[-1].startswith("error:") and "model.encoder_weights=PATH" in err[-1]


class _Extrapolator(torch.nn.Module):
    """A predictor that knows velocity only from history: the next frame is 2·last − previous, or the
    last frame when the context holds one; its actions are ignored."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # so the module has a device

    def standardize(self, x):
        return x

    def forward(self, context, context_times, query_times, actions=None):
        last = context[:, -1:]
        return last if context.shape[1] == 1 else 2 * last - context[:, -2:-1]


def test_context_errors_measure_what_a_history_adds():
    """Frames that move at a constant velocity: from one frame the extrapolator can only copy, from two
    or more it is exact; the targets and the copy-last baseline are the same frames for every context."""
    from dinoworld.errors import UserError
    from dinoworld.eval.actions import context_errors

    b, t = 4, 7
    velocity = torch.randn(b, 1, 2, 2, 3)
    feats = torch.randn(b, 1, 2, 2, 3) + velocity * torch.arange(t).view(1, t, 1, 1, 1)
    batch = {"features": feats, "times": torch.arange(t).float().expand(b, t), "actions": torch.randn(b, t - 1, 2)}
    r = context_errors(_Extrapolator(), [batch, batch], contexts=(3, 1, 2), batch_size=b)
    assert (r["clips"], r["targets"], sorted(r["contexts"])) == (8, 4, [1, 2, 3])
    one, two, three = (r["contexts"][c] for c in (1, 2, 3))
    assert one["true"] == pytest.approx(r["copy_last"]) and one["true"] > 0.01  # one frame: copies frame 3
    assert two["true"] < 1e-9 and three["true"] < 1e-9
    assert one["gap"] == pytest.approx(1.0)  # the actions are ignored
    assert one["context_mean"] == pytest.approx(r["copy_last"])
    assert r["copy_last"] < two["context_mean"] < three["context_mean"]  # the mean lags behind the motion
    with pytest.raises(UserError, match="no target"):
        context_errors(_Extrapolator(), [batch], contexts=(7,))
