"""Planning: CEM / GD on known costs, shared-context rollouts = the naive path, the protocol end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dinoworld.cli import main
from dinoworld.data.trajectories import decode_mp4
from dinoworld.encoders import load_encoder
from dinoworld.errors import UserError
from dinoworld.model import CheckpointMeta, EncoderInfo, WorldModel, build_predictor
from dinoworld.plan import (
    CEMConfig,
    GDConfig,
    LatentRollout,
    Plan,
    cem,
    gradient_plan,
    latent_distance,
    mpc,
    naive_rollout,
    shift,
)
from dinoworld.plan.evaluate import evaluate
from dinoworld.plan.protocol import PlanningConfig, protocol_settings
from dinoworld.plan.task import PlanningTask
from dinoworld.stats import wilson_ci95
from dinoworld.train.config import DataConfig, FinetuneConfig, TrainConfig
from dinoworld.train.streams import trajectory_meta

pytest.importorskip("gymnasium")

F = 5  # frameskip


def _random_action_predictor(in_dim=36, action_dim=2 * F, seed=0, **options):
    """A tiny predictor whose action blocks are not the identity (random γ), so actions matter."""
    torch.manual_seed(seed)
    p = build_predictor("tiny", in_dim=in_dim, depth=2, action_dim=action_dim, **options)
    with torch.no_grad():
        for blk in p.action_blocks:
            blk.gamma.normal_(0, 0.5)
    return p.eval()


# ------------------------------------------------------------------------------------ planners
def test_cem_finds_the_minimum_of_a_quadratic():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(3, 4, 2, generator=gen) * 0.7
    plan = cem(lambda a: (a - target[:, None]).pow(2).sum(dim=(-2, -1)), 3, 4, 2,
               CEMConfig(samples=200, iterations=15, topk=20), generator=gen)
    assert plan.actions.shape == (3, 4, 2)
    assert (plan.actions - target).abs().max() < 0.05
    assert plan.cost.shape == (3,) and (plan.cost < 0.01).all()


def test_cem_warm_start_and_bad_settings():
    from dinoworld.errors import UserError

    gen = torch.Generator().manual_seed(0)
    target = torch.full((1, 2, 1), 3.0)  # far outside N(0, 1): a warm start near it finds it in one iteration
    plan = cem(lambda a: (a - target[:, None]).pow(2).sum(dim=(-2, -1)), 1, 2, 1, CEMConfig(64, 1, 4),
               mean=torch.full((1, 2, 1), 2.9), std=torch.full((1, 2, 1), 0.1), generator=gen)
    assert (plan.actions - 3.0).abs().max() < 0.1
    with pytest.raises(UserError, match="topk"):
        CEMConfig(samples=5, topk=0)
    with pytest.raises(UserError, match="lower --topk or raise --samples"):
        cem(lambda a: a.sum(dim=(-2, -1)), 1, 2, 1, CEMConfig(samples=5, topk=10))


def test_gradient_planner_descends_a_quadratic():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, 2, generator=gen)
    plan = gradient_plan(lambda a: (a - target[:, None]).pow(2).sum(dim=(-2, -1)), 2, 3, 2,
                         GDConfig(samples=4, iterations=200, lr=0.05), generator=gen)
    assert (plan.actions - target).abs().max() < 0.02


def _integrator(target: torch.Tensor):
    """A 1-d point that moves by each executed action: MPC's ``observe`` and ``execute`` for it, and
    the cost of candidates from where it is (squared distances to ``target`` along the way)."""
    where = torch.zeros(target.shape[0])

    def observe():
        start = where.clone()
        return lambda a: (start[:, None, None] + a[..., 0].cumsum(-1) - target[:, None, None]).pow(2).sum(-1)

    def execute(actions):
        where.add_(actions[..., 0].sum(-1))

    return where, observe, execute


@pytest.mark.parametrize("planner,cfg", [(cem, CEMConfig(64, 5, 8)), (gradient_plan, GDConfig(4, 50, 0.1))])
def test_mpc_wraps_any_planner_and_warm_starts_from_the_shifted_plan(planner, cfg):
    gen = torch.Generator().manual_seed(0)
    target = torch.tensor([3.0, -2.0])
    where, observe, execute = _integrator(target)
    warm_means, real = [], planner

    def spy(cost, e, h, a, c, **kw):
        warm_means.append(kw["mean"])
        return real(cost, e, h, a, c, **kw)

    taken = mpc(spy, cfg, observe, execute, 2, 4, 1, plans=3, executed=2, generator=gen)
    assert taken.shape == (2, 6, 1) and len(warm_means) == 3 and warm_means[0] is None
    assert (warm_means[1][:, 2:] == 0).all()  # the executed steps dropped, the prior's mean appended
    assert (where - target).abs().max() < 0.1
    with pytest.raises(UserError, match="between 1 and the 4"):
        mpc(planner, cfg, observe, execute, 2, 4, 1, plans=1, executed=5)


def test_shift_drops_executed_steps_and_pads_with_the_prior():
    a, s = torch.arange(6.0).view(1, 3, 2), torch.full((1, 3, 2), 0.5)
    out = shift(Plan(a, torch.zeros(1), s), 2, 1.0)
    assert out.actions.tolist() == [[[4.0, 5.0], [0.0, 0.0], [0.0, 0.0]]]
    assert out.std.tolist() == [[[0.5, 0.5], [1.0, 1.0], [1.0, 1.0]]]
    assert shift(Plan(a, torch.zeros(1)), 1, 1.0).std is None  # GD keeps no proposal std


def test_wilson_interval():
    lo, hi = wilson_ci95(45, 50)
    assert lo < 0.9 < hi and 0.78 < lo < 0.8 and 0.95 < hi < 0.97
    assert wilson_ci95(0, 10)[0] == 0.0


# ------------------------------------------------------------------------------------ rollouts
@pytest.mark.parametrize("options", [{}, {"standardize": True, "residual": True}])
def test_shared_context_rollout_equals_the_naive_path_and_chunking_changes_nothing(options):
    p = _random_action_predictor(in_dim=8, **options)
    if options:
        p.set_feature_stats(torch.randn(100, 8) * 2 + 1)
    gen = torch.Generator().manual_seed(1)
    ctx = torch.randn(2, 2, 3, 3, 8, generator=gen)  # 2 episodes, 2 context frames
    times = torch.tensor([[0.0, 0.5], [1.0, 1.5]])
    actions = torch.randn(2, 5, 3, 2 * F, generator=gen)  # 5 candidates, 3 steps
    with torch.no_grad():
        fast = LatentRollout(p, ctx, times, 0.5)(actions)
        slow = naive_rollout(p, ctx, times, 0.5, actions)
        one = LatentRollout(p, ctx, times, 0.5, chunk=1)(actions)
        two = LatentRollout(p, ctx, times, 0.5, chunk=2)(actions)
    assert fast.shape == (2, 5, 3, 3, 8)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one, fast, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(two, fast, rtol=1e-6, atol=1e-6)
    # actions matter, and each candidate got its own
    assert not torch.allclose(fast[:, 0], fast[:, 1])
    # a memory budget too small for one candidate still runs, one at a time
    roll = LatentRollout(p, ctx, times, 0.5, memory_budget=1)
    assert roll.chunk_size(5, 3) == 1


def test_latent_rollout_refuses_a_model_without_actions():
    from dinoworld.errors import UserError

    p = build_predictor("tiny", in_dim=8, depth=1)
    with pytest.raises(UserError, match="no action blocks"):
        LatentRollout(p, torch.zeros(1, 1, 2, 2, 8), torch.zeros(1, 1), 0.5)


def test_latent_distance():
    goal = torch.zeros(2, 2, 2, 3)
    pred = torch.ones(2, 4, 2, 2, 3)
    pred[1, 2] = 0
    d = latent_distance(pred, goal)
    assert d.shape == (2, 4) and d[0, 0] == 1.0 and d[1, 2] == 0.0


# ------------------------------------------------------------------------------------ protocol
@pytest.fixture(scope="module")
def wall_data(tmp_path_factory):
    from dinoworld.envs.collect import collect

    root = tmp_path_factory.mktemp("wall")
    collect("wall", root, episodes=12, steps=30, img_size=56, progress=False)
    return root


@pytest.fixture(scope="module")
def other_wall_data(tmp_path_factory):
    """Another collection of the same env (another seed): same episode numbers, other episodes."""
    from dinoworld.envs.collect import collect

    root = tmp_path_factory.mktemp("wall-other")
    collect("wall", root, episodes=12, steps=30, img_size=56, seed=1, progress=False)
    return root


def _world_model(data, predictor=None, val_fraction=0.5):
    """A checkpoint with the metadata fine-tuning on ``data`` records (its split, action statistics)."""
    recorded = trajectory_meta(TrainConfig(data=DataConfig(source=str(data), frameskip=F),
                                           finetune=FinetuneConfig(val_fraction=val_fraction)))
    p = predictor or _random_action_predictor()
    meta = CheckpointMeta(
        predictor=p.cfg.to_dict(), encoder=EncoderInfo("pixel-pyramid", None, False), resolution=56, env="wall",
        frameskip=F, control_rate_hz=10.0, raw_action_dim=2, action_norm=recorded["action_norm"],
        split=recorded["split"], world=recorded["world"])
    return WorldModel(load_encoder("pixel-pyramid"), p, meta)


@pytest.mark.parametrize("planner", ["cem", "mpc"])
def test_planners_reach_goals_with_an_exact_latent_model(wall_data, planner, monkeypatch):
    """The simulator as the model and the smooth stand-in features: planning itself must work. Goals are
    10 recorded steps away: within the stand-in's basin (its blur is at most a quarter of the frame, so
    its cost is flat for goals much further away)."""
    monkeypatch.setattr(PlanningTask, "cost", lambda self, starts, goals, cfg: self.simulator_cost(starts, goals))
    wm = _world_model(wall_data)
    cfg = PlanningConfig(planner=planner, cem=CEMConfig(48, 4, 6), episodes=16, batch=16,
                         horizon=2, goal_steps=10, replan_every=5, mpc_steps=15, oracle=False)
    s = evaluate(wm, "wall", wall_data, cfg, progress=False)
    assert s["episodes"] == 16 and s["planner"] == planner
    assert s["success_rate"] >= 0.6, s
    assert s["success_rate"] > s["random_success_rate"] + 0.3
    assert s["mean_final_distance"] < s["random_mean_final_distance"]


def test_cost_ceilings_plan_on_the_simulator_under_features_and_true_states(wall_data, tmp_path, capsys):
    """`plan --ceiling`: CEM on the simulator under the true-state cost reaches goals 10 steps away (the
    search can); both costs plan the same episodes; the summary and ceiling.json say so; an interrupted
    run resumes to the same rows, and other settings in the same folder are refused."""
    _world_model(wall_data).save_pretrained(tmp_path / "ckpt")
    args = ["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
            "--ceiling", "--episodes", "8", "--samples", "48", "--iterations", "4", "--topk", "6",
            "--horizon", "2", "--goal-steps", "10", "--batch", "4", "--out", str(tmp_path / "c"), "--json"]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "open-loop CEM on the wall simulator, 8 episodes, budget 192: features cost" in cap.err
    s = json.loads(cap.out)
    assert set(s["costs"]) == {"features", "state", "one_frame"} and s["episodes"] == 8
    assert s["costs"]["state"]["success_rate"] >= 0.75, s
    assert s["costs"]["state"]["mean_distance"] < 2.0, s
    rows = json.loads((tmp_path / "c" / "ceiling.json").read_text())["rows"]
    assert [r["episode"] for r in rows] == list(range(8))
    assert all({"success", "distance"} <= r[c].keys() for r in rows for c in ("features", "state", "one_frame"))
    assert all(r["one_frame"] == r["state"] for r in rows)  # Wall's state has no velocity: one frame shows it all

    lines = (tmp_path / "c" / "ceiling_episodes.jsonl").read_text().splitlines()
    kept = [{**json.loads(line), "kept": True} for line in lines[:4]]  # batch 1, marked: it must not be replanned
    torn = "".join(json.dumps(r) + "\n" for r in kept) + lines[4] + "\n"
    (tmp_path / "c" / "ceiling_episodes.jsonl").write_text(torn)
    (tmp_path / "c" / "ceiling.json").unlink()  # killed during batch 2
    assert main(args) == 0
    capsys.readouterr()
    resumed = json.loads((tmp_path / "c" / "ceiling.json").read_text())["rows"]
    assert resumed[:4] == kept and resumed[4:] == rows[4:]  # batch 2 planned again, with its own seed
    assert main([*args[:-3], "--seed", "3", "--out", str(tmp_path / "c")]) == 2
    assert "other settings (seed: 0 before, 3 now)" in capsys.readouterr().err
    recorded = json.loads((tmp_path / "c" / "ceiling_plan.json").read_text())
    del recorded["settings"]["costs"]  # a folder of the two-cost ceiling of earlier versions
    (tmp_path / "c" / "ceiling_plan.json").write_text(json.dumps(recorded))
    assert main(args) == 2
    assert "costs: None before, ['features', 'state', 'one_frame'] now" in capsys.readouterr().err


def test_the_one_frame_ceiling_plans_from_the_start_at_rest_and_runs_from_the_true_start(wall_data, monkeypatch):
    """The third ceiling's simulator starts where one frame puts it (here Wall's dot is declared moving
    along y, so at rest it sits at y = 0); its plan is still executed from the true start."""
    from dinoworld.envs.wall import WallEnv
    from dinoworld.plan.ceiling import cost_ceiling

    monkeypatch.setattr(WallEnv, "motion_fields", ("y",))
    planned_from, executed_from = [], []
    state_cost, execute = PlanningTask.state_cost, PlanningTask.execute
    monkeypatch.setattr(PlanningTask, "state_cost",
                        lambda self, starts, goals: planned_from.append(starts) or state_cost(self, starts, goals))
    monkeypatch.setattr(PlanningTask, "execute",
                        lambda self, start, *a, **k: executed_from.append(start) or execute(self, start, *a, **k))
    cfg = PlanningConfig(cem=CEMConfig(8, 2, 2), episodes=2, batch=2, horizon=2, goal_steps=10, oracle=False)
    r = cost_ceiling(_world_model(wall_data), "wall", wall_data, cfg, progress=False)
    true_starts, at_rest = planned_from
    assert all(s[1] != 0 for s in true_starts) and all(s[1] == 0 for s in at_rest)
    np.testing.assert_array_equal(np.stack(at_rest)[:, [0, 2, 3]], np.stack(true_starts)[:, [0, 2, 3]])
    assert len(executed_from) == 6 and all(any(np.array_equal(e, s) for s in true_starts) for e in executed_from)
    assert r["rows"][0]["one_frame"] != r["rows"][0]["state"] or r["rows"][1]["one_frame"] != r["rows"][1]["state"]


def test_plan_cli_writes_episodes_summary_and_videos(wall_data, tmp_path, capsys, monkeypatch):
    from dinoworld.envs.wall import WallEnv

    test = WallEnv.eval_state  # a success test made of parts (as PushT's): each part lands in the rows
    monkeypatch.setattr(WallEnv, "eval_state", lambda self, g, s: {**test(self, g, s), "part_ok": True})
    wm = _world_model(wall_data)
    wm.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "plan"
    code = main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--episodes", "3", "--samples", "8", "--iterations", "2", "--topk", "2", "--batch", "2",
                 "--out", str(out), "--nontrivial", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["nontrivial"] and summary["idle_success_rate"] == 0.0
    for key in ("success_rate", "random_success_rate", "ci95", "episodes", "seconds_per_plan", "planner", "budget",
                "oracle_success_rate"):
        assert key in summary, key
    assert summary["episodes"] == 3 and summary["budget"] == 16 and summary["planner"] == "cem"
    rows = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"success", "final_distance", "steps_to_success", "seconds_planning"} <= set(rows[0])
    assert rows[0]["part_ok"] is True
    assert len(list(out.glob("episode_*.mp4"))) == 3
    assert json.loads((out / "summary.json").read_text())["episodes"] == 3


def test_budget_sweep_plots_success_against_budget(wall_data, tmp_path, capsys):
    _world_model(wall_data).save_pretrained(tmp_path / "ckpt")
    code = main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--episodes", "2", "--samples", "4", "--iterations", "1", "--topk", "2", "--no-oracle",
                 "--sweep", "4x1,8x2", "--out", str(tmp_path / "p"), "--json"])
    assert code == 0
    sweep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sweep"]["budgets"]
    assert [r["budget"] for r in sweep] == [4, 16]
    assert (tmp_path / "p" / "budget_sweep.png").stat().st_size > 1000
    for bad in ("lots", "0x5", "4x-1"):
        assert main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                     "--sweep", bad, "--out", str(tmp_path / "p")]) == 2


def test_plan_refuses_bad_input_with_one_line(wall_data, other_wall_data, tmp_path, capsys):
    plain = build_predictor("tiny", in_dim=36, depth=1)
    no_actions = WorldModel(load_encoder("pixel-pyramid"), plain,
                            CheckpointMeta(plain.cfg.to_dict(), EncoderInfo("pixel-pyramid")))
    no_actions.save_pretrained(tmp_path / "plain")
    good = _world_model(wall_data)
    good.save_pretrained(tmp_path / "good")
    far = _world_model(wall_data)
    far.meta.split = {**far.meta.split, "val": [100, 101]}  # held-out ids that this folder does not hold
    far.save_pretrained(tmp_path / "far")
    base = ["plan", "--data", str(wall_data), "--episodes", "1"]
    cases = [
        (base + ["--env", "wall", "--checkpoint", str(tmp_path / "plain")], "no action blocks"),
        (base + ["--env", "pusht", "--checkpoint", str(tmp_path / "good")], "fine-tuned on wall"),
        (base + ["--env", "wall", "--checkpoint", str(tmp_path / "far")], "held-out episodes"),
        (base + ["--env", "wall", "--checkpoint", str(tmp_path / "good"), "--planner", "mpc", "--replan-every", "3"],
         "multiple of the frameskip"),
        (["plan", "--data", str(other_wall_data), "--episodes", "1", "--env", "wall", "--checkpoint",
          str(tmp_path / "good")], "not the collection the checkpoint was fine-tuned on"),
        (base + ["--env", "wall", "--checkpoint", str(tmp_path / "good"), "--samples", "4"], "lower --topk"),
    ]
    for args, msg in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and len(err.splitlines()) == 1, err


def test_gradient_planning_runs_through_the_world_model(wall_data):
    """GD differentiates the cost through the predictor's rollout: the plan's cost must drop."""
    wm = _world_model(wall_data)
    task = PlanningTask(wm, "wall", wall_data)
    specs = list(task.episodes(2, 25, 0))
    goals = task.latents([s.goal_state for s in specs])
    cost = task.cost([s.start_state for s in specs], goals, PlanningConfig())
    gen = torch.Generator().manual_seed(0)
    before = gradient_plan(cost, 2, 5, 10, GDConfig(samples=3, iterations=0), generator=gen)
    gen = torch.Generator().manual_seed(0)
    after = gradient_plan(cost, 2, 5, 10, GDConfig(samples=3, iterations=20, lr=0.1), generator=gen)
    assert (after.cost < before.cost).all(), (before.cost, after.cost)


def test_the_model_sees_the_actions_clipped_as_the_simulator_executes_them(wall_data):
    """Sampled actions beyond the env's bounds reach the model clipped, as a clipping simulator runs them."""
    wm = _world_model(wall_data)
    task = PlanningTask(wm, "wall", wall_data)
    task.env.clip_actions = True  # Wall applies its actions as given; stand in for a world that clips them
    specs = list(task.episodes(2, 25, 0))
    starts, goals = [s.start_state for s in specs], task.latents([s.goal_state for s in specs])
    big = 4 * torch.randn(2, 3, 5, 2 * F, generator=torch.Generator().manual_seed(0))
    low, high = task.env.action_low, task.env.action_high
    clipped = task.space.clip(big, low, high)
    raw = task.space.denormalize(big)
    assert torch.allclose(task.space.denormalize(clipped), raw.clamp(low, high), atol=1e-5)
    assert ((raw < low) | (raw > high)).any()  # the draw does leave the bounds
    on = task.cost(starts, goals, PlanningConfig())
    off = task.cost(starts, goals, PlanningConfig(clip_model_actions=False))
    assert torch.allclose(on(big), off(clipped))
    assert not torch.allclose(off(big), on(big))
    raw_np = np.array([[low - 1.0, 0.0], [0.0, high + 0.5], [0.0, 0.0], [low, high]])
    assert task.clipped_fraction(raw_np) == 2 / 8  # the bounds themselves are not clipped
    task.env.clip_actions = False  # a world that does not clip: the model sees the actions as sampled
    assert torch.allclose(task.cost(starts, goals, PlanningConfig())(big), off(big))
    assert task.clipped_fraction(raw_np) is None


def test_open_loop_rows_say_how_much_of_each_plan_the_simulator_clips(wall_data, monkeypatch):
    cfg = PlanningConfig(cem=CEMConfig(8, 1, 2), episodes=2, batch=2, oracle=False)
    s = evaluate(_world_model(wall_data), "wall", wall_data, cfg, progress=False)
    assert "clipped_action_fraction" not in s  # Wall applies any action
    seen: list[np.ndarray] = []  # a world that clips: each episode's executed plan, numbered as it comes
    monkeypatch.setattr(PlanningTask, "clipped_fraction", lambda self, raw: seen.append(raw) or len(seen) / 4)
    s = evaluate(_world_model(wall_data), "wall", wall_data, cfg, progress=False)
    assert [r.shape for r in seen] == [(cfg.horizon * F, 2)] * 2
    assert s["clipped_action_fraction"] == (0.25 + 0.5) / 2


def test_bf16_rollout_is_close_to_fp32():
    p = _random_action_predictor(in_dim=8)
    gen = torch.Generator().manual_seed(2)
    ctx, times = torch.randn(1, 1, 3, 3, 8, generator=gen), torch.zeros(1, 1)
    acts = torch.randn(1, 4, 2, 2 * F, generator=gen)
    with torch.no_grad():
        ref = LatentRollout(p, ctx, times, 0.5)(acts)
        low = LatentRollout(p.to(torch.bfloat16), ctx, times, 0.5)(acts)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().mean() < 0.05 * ref.abs().mean()


def test_cem_builds_no_autograd_graph():
    p = _random_action_predictor(in_dim=8)  # parameters require grad, as after loading
    roll = LatentRollout(p, torch.zeros(1, 1, 2, 2, 8), torch.zeros(1, 1), 0.5)
    seen = []

    def cost(a):
        out = latent_distance(roll(a), torch.zeros(1, 2, 2, 8))
        seen.append(out.requires_grad)
        return out

    cem(cost, 1, 2, 2 * F, CEMConfig(8, 2, 2))
    assert seen and not any(seen)


def test_nontrivial_keeps_only_starts_that_do_not_already_pass(wall_data):
    """Goals a few steps away are often reached by doing nothing: that baseline (zero actions) is
    reported, and --nontrivial draws only pairs where the agent has to act."""
    wm = _world_model(wall_data)
    base = dict(cem=CEMConfig(4, 1, 2), episodes=12, batch=12, horizon=1, goal_steps=5, oracle=False)
    every = evaluate(wm, "wall", wall_data, PlanningConfig(**base), progress=False)
    assert 0 < every["idle_success_rate"] < 1 and not every["nontrivial"]
    hard = evaluate(wm, "wall", wall_data, PlanningConfig(**base, nontrivial=True), progress=False)
    assert hard["idle_success_rate"] == 0.0 and hard["nontrivial"] and hard["episodes"] == 12
    from dinoworld.errors import UserError

    with pytest.raises(UserError, match="drop --nontrivial"):  # goal = start: zero actions solve every pair
        evaluate(wm, "wall", wall_data, PlanningConfig(**{**base, "goal_steps": 0}, nontrivial=True), progress=False)


def _without_timing(d):
    return {k: v for k, v in d.items() if k not in ("seconds_per_plan", "seconds_planning")}


def _rows(folder):
    return [_without_timing(json.loads(x)) for x in (folder / "episodes.jsonl").read_text().splitlines()]


def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(wall_data, tmp_path, monkeypatch, capsys):
    """Paper-budget evaluations run for an hour or more: Ctrl-C keeps the finished batches and a summary
    of them, and the same command resumes after them, ending where an uninterrupted run ends."""
    wm = _world_model(wall_data)
    cfg = PlanningConfig(cem=CEMConfig(8, 2, 2), episodes=6, batch=2, horizon=2, goal_steps=10, oracle=False)
    whole = evaluate(wm, "wall", wall_data, cfg, out=tmp_path / "a", videos=0, progress=False)
    assert whole["complete"]

    real, calls = PlanningTask.plan, {"n": 0, "stop": 2}

    def plan(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(PlanningTask, "plan", plan)
    with pytest.raises(KeyboardInterrupt):
        evaluate(wm, "wall", wall_data, cfg, out=tmp_path / "b", videos=0, progress=False)
    err = capsys.readouterr().err.strip()
    assert err == "interrupted after 2 of 6 episodes; rerun the same command to resume"
    assert [r["episode"] for r in _rows(tmp_path / "b")] == [0, 1]
    partial = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert partial["complete"] is False and partial["episodes"] == 2 and partial["episodes_requested"] == 6

    calls.update(n=0, stop=None)
    resumed = evaluate(wm, "wall", wall_data, cfg, out=tmp_path / "b", videos=0, progress=False)
    assert calls["n"] == 2  # the two batches left, not all three
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")
    assert _without_timing(resumed) == _without_timing(whole) and resumed["complete"]
    on_disk = [json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab"]
    assert _without_timing(on_disk[1]) == _without_timing(on_disk[0])


def test_a_second_process_planning_into_the_same_folder_is_refused(tmp_path):
    """Two plans appending to one episodes.jsonl would interleave their rows: the folder is locked."""
    pytest.importorskip("fcntl")
    from dinoworld.errors import UserError
    from dinoworld.plan.protocol import PlanningConfig
    from dinoworld.plan.runs import CEILING_FILES, prepare_out

    out = tmp_path / "plan"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(out / ".episodes.jsonl.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        run = {"checkpoint": "c", "env": "wall", "collection": "x", "settings": {"episodes": 2}}
        with pytest.raises(UserError, match="another process is planning into"):
            prepare_out(out, run, PlanningConfig(), False)
        assert not (out / "plan.json").exists()  # nothing written
        assert prepare_out(out, run, PlanningConfig(), False, CEILING_FILES) == []  # a ceiling has its own lock
    finally:
        holder.kill()
        holder.wait()
    assert prepare_out(out, run, PlanningConfig(), False) == []  # free again once the other process is gone
    assert prepare_out(out, run, PlanningConfig(), False) == []  # this process may come back to its folder


def test_more_episodes_extend_a_finished_run(wall_data, tmp_path, monkeypatch, capsys):
    """A run asked again for more episodes keeps its finished full batches, plans the rest (the old last
    batch, cut short by the old count, again in full) and ends where a run of the new count ends."""
    wm = _world_model(wall_data)
    cfg = PlanningConfig(cem=CEMConfig(8, 2, 2), episodes=6, batch=2, horizon=2, goal_steps=10, oracle=False)
    whole = evaluate(wm, "wall", wall_data, cfg, out=tmp_path / "a", videos=0, progress=False)
    evaluate(wm, "wall", wall_data, replace(cfg, episodes=3), out=tmp_path / "b", videos=0, progress=False)
    rows = (tmp_path / "b" / "episodes.jsonl").read_text().splitlines()
    marked = [{**json.loads(x), "kept": True} for x in rows]  # a replanned row would lose the mark
    (tmp_path / "b" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in marked))
    real, calls = PlanningTask.plan, {"n": 0}

    def plan(self, *a, **k):
        calls["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(PlanningTask, "plan", plan)
    capsys.readouterr()
    extended = evaluate(wm, "wall", wall_data, cfg, out=tmp_path / "b", videos=0, progress=False)
    assert "extending a run of 3 episodes to 6" in capsys.readouterr().err
    assert calls["n"] == 2  # episodes 2-3 (episode 2 was a batch of one) and 4-5; not 0-1
    got = _rows(tmp_path / "b")
    assert all(r["kept"] for r in got[:2]) and not any("kept" in r for r in got[2:])
    assert [{k: v for k, v in r.items() if k != "kept"} for r in got] == _rows(tmp_path / "a")
    assert _without_timing(extended) == _without_timing(whole)
    with pytest.raises(UserError, match="episodes: 6 before, 4 now"):
        evaluate(wm, "wall", wall_data, replace(cfg, episodes=4), out=tmp_path / "b", videos=0, progress=False)
    with pytest.raises(UserError, match="seed: 0 before, 1 now"):  # more episodes and another setting
        evaluate(wm, "wall", wall_data, replace(cfg, episodes=8, seed=1), out=tmp_path / "b", videos=0,
                 progress=False)


def test_other_settings_into_a_used_folder_are_refused_unless_overwrite(wall_data, tmp_path):
    wm = _world_model(wall_data)
    cfg = PlanningConfig(cem=CEMConfig(4, 1, 2), episodes=3, batch=3, horizon=1, goal_steps=5, oracle=False)
    evaluate(wm, "wall", wall_data, cfg, out=tmp_path, videos=3, progress=False)
    assert len(list(tmp_path.glob("episode_*.mp4"))) == 3
    frame = decode_mp4(tmp_path / "episode_0000.mp4")[0]
    assert frame.shape[1] > 2 * 256 and (frame[:12] < 100).any()  # plan | goal, labelled above
    (tmp_path / "budget_sweep.json").write_text("[]")

    fewer = replace(cfg, episodes=1)
    for other, says in [(fewer, "episodes: 3 before, 1 now"), (replace(cfg, seed=1), "seed: 0 before, 1 now")]:
        with pytest.raises(UserError, match="--overwrite") as err:
            evaluate(wm, "wall", wall_data, other, out=tmp_path, videos=3, progress=False)
        assert says in str(err.value) and len(str(err.value).splitlines()) == 1
    retrained = _world_model(wall_data, _random_action_predictor(seed=1))
    with pytest.raises(UserError, match="checkpoint"):
        evaluate(retrained, "wall", wall_data, cfg, out=tmp_path, videos=3, progress=False)
    again = evaluate(wm, "wall", wall_data, replace(cfg, chunk=2), out=tmp_path, videos=3, progress=False)
    assert again["episodes"] == 3  # a finished run with the same results-determining settings
    recorded = json.loads((tmp_path / "plan.json").read_text())
    for cost_model, resumes in (("world_model", True), ("simulator", False)):  # settings earlier versions recorded
        old = {**recorded, "settings": {**recorded["settings"], "cost_model": cost_model,
                                        "cem": {**recorded["settings"]["cem"], "min_std": 0.0}}}
        (tmp_path / "plan.json").write_text(json.dumps(old))
        if resumes:
            assert evaluate(wm, "wall", wall_data, cfg, out=tmp_path, videos=3, progress=False)["complete"]
        else:
            with pytest.raises(UserError, match="cost_model: simulator before, None now"):
                evaluate(wm, "wall", wall_data, cfg, out=tmp_path, videos=3, progress=False)

    s = evaluate(wm, "wall", wall_data, fewer, out=tmp_path, videos=3, progress=False, overwrite=True)
    assert s["episodes"] == 1 and len(_rows(tmp_path)) == 1
    assert [p.name for p in tmp_path.glob("episode_*.mp4")] == ["episode_0000.mp4"]
    assert not (tmp_path / "budget_sweep.json").exists()

    (tmp_path / "plan.json").unlink()  # a folder written before runs recorded their settings
    with pytest.raises(UserError, match="record no settings.*--overwrite"):
        evaluate(wm, "wall", wall_data, fewer, out=tmp_path, videos=0, progress=False)


def test_plan_refuses_another_collection_of_the_same_env(wall_data, other_wall_data, capsys):
    wm = _world_model(wall_data)
    assert wm.meta.split["data"] == str(wall_data.resolve()) and wm.meta.split["data_fingerprint"]
    PlanningTask(wm, "wall", wall_data)
    with pytest.raises(UserError) as err:
        PlanningTask(wm, "wall", other_wall_data)
    assert str(wall_data.resolve()) in str(err.value) and str(other_wall_data) in str(err.value)

    old = _world_model(wall_data)  # written before splits recorded their collection
    del old.meta.split["data_fingerprint"], old.meta.split["data"]
    cfg = PlanningConfig(cem=CEMConfig(4, 1, 2), episodes=1, batch=1, horizon=1, goal_steps=5, oracle=False)
    assert evaluate(old, "wall", other_wall_data, cfg, progress=False)["episodes"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:")


def test_gradient_planning_takes_fewer_samples_than_the_cem_elites(wall_data, tmp_path, capsys):
    """--topk is CEM's: GD with 4 parallel sequences must not be refused for the default 10 elites."""
    _world_model(wall_data).save_pretrained(tmp_path / "ckpt")
    code = main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--planner", "gd", "--samples", "4", "--iterations", "2", "--episodes", "1", "--no-oracle", "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["planner"] == "gd"
    code = main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--planner", "mpc-gd", "--samples", "4", "--iterations", "2", "--episodes", "1", "--mpc-steps", "10",
                 "--no-oracle", "--json"])
    assert code == 0, capsys.readouterr().err
    s = json.loads(capsys.readouterr().out)
    assert (s["planner"], s["budget"]) == ("mpc-gd", 8)


def test_a_model_of_another_world_version_is_refused(wall_data, tmp_path, monkeypatch, capsys):
    """Collections and checkpoints record the simulation they came from; planning in another refuses."""
    from dinoworld.data.trajectories import load_trajectories
    from dinoworld.envs import env_class

    recorded = load_trajectories(wall_data).world_version
    wm = _world_model(wall_data)
    assert wm.meta.world == recorded == env_class("wall").world_version
    wm.save_pretrained(tmp_path / "ckpt")
    monkeypatch.setattr(env_class("wall"), "world_version", "a-newer-wall")
    assert main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--episodes", "1", "--no-oracle"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a-newer-wall" in err and "dinoworld collect --env wall" in err


def test_dino_wm_protocol_draws_its_goals_and_says_so(wall_data, tmp_path, capsys):
    """DINO-WM's plan_*.yaml: random-state goals in the other room for Wall, dataset goals for PushT,
    MPC over CEM 300 x 10 (PushT x 30), top 30, the whole 5-step plan executed, 50 episodes, seed 99."""
    wall, pusht = protocol_settings("dino-wm", "wall", F), protocol_settings("dino-wm", "pusht", F)
    assert (wall["goals"], pusht["goals"]) == ("random_state", "dataset") and pusht["goal_steps"] == 5 * F
    assert (wall["cem"].samples, wall["cem"].topk, wall["cem"].iterations, pusht["cem"].iterations) == (300, 30, 10, 30)
    assert wall["planner"] == "mpc" and wall["replan_every"] == 5 * F and (wall["episodes"], wall["seed"]) == (50, 99)
    assert protocol_settings("paper", "wall", F) == {"protocol": "paper"}
    task = PlanningTask(_world_model(wall_data), "wall", wall_data)
    for spec in task.episodes(6, 10, 99, goals="random_state"):
        recorded = task.data.episode(task.val_positions[0])["states"][0]
        assert (spec.start_state[0] < spec.start_state[2]) != (spec.goal_state[0] < spec.goal_state[2])  # rooms
        assert spec.start_state[2:].tolist() == spec.goal_state[2:].tolist() and recorded.shape == (4,)
    _world_model(wall_data).save_pretrained(tmp_path / "ckpt")
    assert main(["plan", "--env", "wall", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(wall_data),
                 "--protocol", "dino-wm", "--episodes", "2", "--samples", "8", "--iterations", "1", "--topk", "2",
                 "--mpc-steps", str(5 * F), "--no-oracle", "--json"]) == 0
    cap = capsys.readouterr()
    s = json.loads(cap.out)
    assert (s["protocol"], s["goals"], s["planner"], s["episodes"]) == ("dino-wm", "random_state", "mpc", 2)
    assert s["settings"]["seed"] == 99 and s["settings"]["replan_every"] == 5 * F
    assert "(dino-wm protocol, random-state goals, seed 99)" in cap.err


def test_two_runs_on_the_same_episodes_compare_paired(tmp_path):
    import json as _json

    from dinoworld.errors import UserError
    from dinoworld.plan.report import compare_runs

    def write(name, successes, trajectories=None):
        rows = [{"episode": i, "trajectory": (trajectories or range(len(successes)))[i], "start_step": 0,
                 "success": s} for i, s in enumerate(successes)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "episodes.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
        return tmp_path / name

    a = write("a", [True] * 16 + [False] * 4)
    b = write("b", [True] * 8 + [False] * 12)
    r = compare_runs(a, b, draws=500)
    assert (r["episodes"], r["success_a"], r["success_b"], r["only_a"], r["only_b"]) == (20, 0.8, 0.4, 8, 0)
    assert r["difference"] == pytest.approx(0.4) and 0.1 < r["ci95"][0] < 0.4 < r["ci95"][1] <= 0.7
    same = compare_runs(a, a, draws=100)
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]
    # episodes drawn from the same trajectories: the interval resamples the 4 trajectories, not the 20 episodes
    clustered = compare_runs(write("a4", [True] * 10 + [False] * 10, [e // 5 for e in range(20)]),
                             write("b4", [False] * 20, [e // 5 for e in range(20)]), draws=500)
    loose = compare_runs(write("a20", [True] * 10 + [False] * 10), write("b20", [False] * 20), draws=500)
    assert clustered["difference"] == loose["difference"] == 0.5 and clustered["trajectories"] == 4
    assert clustered["ci95"][1] - clustered["ci95"][0] > 1.5 * (loose["ci95"][1] - loose["ci95"][0])
    other = write("c", [True] * 20, trajectories=list(range(5, 25)))
    with pytest.raises(UserError, match="same episodes"):
        compare_runs(a, other)


def test_runs_of_several_seeds_compare_averaged_per_episode(tmp_path):
    """compare_plans.py A1,A2 B1,B2: each episode counts the fraction of a side's runs that solve it."""
    def write(name, successes, start=0):
        rows = [{"episode": i, "trajectory": i // 2, "start_step": start, "success": s}
                for i, s in enumerate(successes)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    from dinoworld.errors import UserError
    from dinoworld.plan.report import compare_runs

    a = [write("a0", [True] * 10 + [False] * 10), write("a1", [True] * 20)]
    b = [write("b0", [False] * 20), write("b1", [True] * 4 + [False] * 16)]
    r = compare_runs(a, b, draws=300)
    assert (r["runs_a"], r["runs_b"], r["episodes"], r["trajectories"]) == (2, 2, 20, 10)
    assert (r["success_a"], r["success_b"], r["only_a"], r["only_b"]) == (0.75, 0.1, 20, 0)
    assert r["difference"] == pytest.approx(0.65) and r["ci95"][0] < 0.65 < r["ci95"][1]
    with pytest.raises(UserError, match="same episodes"):
        compare_runs(a, [b[0], write("b2", [False] * 20, start=3)])
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_plans.py"
    done = subprocess.run([sys.executable, str(script), ",".join(a), ",".join(b), "--draws", "300"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == r
    refused = subprocess.run([sys.executable, str(script), ",".join(a), "--against", "nothing"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "give one folder" in refused.stderr
    assert (r["success_runs_a"], r["success_runs_b"], r["ci95_seeds"]) == ([0.5, 1.0], [0.0, 0.2], None)


def test_three_seeds_a_side_give_an_interval_over_seeds_too(tmp_path):
    """With three runs a side, ci95_seeds resamples the runs as well as the trajectories: equal to ci95
    when a side's seeds agree on every episode, far wider when they disagree."""
    from dinoworld.plan.report import compare_runs

    def write(name, successes):
        rows = [{"episode": i, "trajectory": i // 2, "start_step": 0, "success": s} for i, s in enumerate(successes)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    half = [True, False] * 20
    agree = compare_runs([write(f"a{s}", half) for s in range(3)], [write(f"b{s}", [False] * 40) for s in range(3)],
                         draws=400)
    assert agree["difference"] == pytest.approx(0.5) and agree["ci95_seeds"] == pytest.approx(agree["ci95"])
    spread = [write("c0", [True] * 40), write("c1", [False] * 40), write("c2", half)]
    split = compare_runs(spread, [f"{tmp_path}/b{s}" for s in range(3)], draws=400)
    assert split["difference"] == pytest.approx(0.5) and split["success_runs_a"] == [1.0, 0.0, 0.5]
    width = {k: split[k][1] - split[k][0] for k in ("ci95", "ci95_seeds")}
    assert width["ci95"] < 0.05 and width["ci95_seeds"] > 0.5  # one seed in three solves nothing
    assert split["ci95_seeds"][0] < 0.05 < 0.95 < split["ci95_seeds"][1]


def test_a_run_compares_paired_with_its_own_baselines(tmp_path):
    """scripts/compare_plans.py A --against nothing|random: the run's successes against the baseline it
    executed on each episode, with the same trajectory bootstrap as two runs."""
    from dinoworld.errors import UserError
    from dinoworld.plan.report import compare_to_baseline

    rows = [{"episode": i, "trajectory": i // 2, "start_step": 0, "success": i < 12, "idle_success": i % 4 == 0,
             "random_success": False} for i in range(20)]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    idle = compare_to_baseline(tmp_path / "a", "nothing", draws=300)
    assert (idle["b"], idle["success_a"], idle["success_b"], idle["only_a"], idle["only_b"]) == ("nothing", 0.6, 0.25,
                                                                                               9, 2)
    assert idle["difference"] == pytest.approx(0.35) and idle["trajectories"] == 10
    assert idle["ci95"][0] < 0.35 < idle["ci95"][1]
    rand = compare_to_baseline(tmp_path / "a", "random", draws=300)
    assert (rand["success_b"], rand["only_a"], rand["difference"]) == (0.0, 12, pytest.approx(0.6))
    with pytest.raises(UserError, match="unknown baseline 'copy'"):
        compare_to_baseline(tmp_path / "a", "copy")
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_plans.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "--against", "nothing", "--draws", "300"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == idle
