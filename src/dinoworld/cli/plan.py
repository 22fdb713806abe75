"""``dinoworld plan``: the planning evaluation, under the paper's protocol or DINO-WM's."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from .common import JSON_HELP, check_output_folder, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, choices=["wall", "pointmaze", "pusht"], help="environment")
    p.add_argument("--checkpoint", required=True,
                   help="fine-tuned checkpoint folder or run folder (with action blocks)")
    p.add_argument("--data", required=True,
                   help="the trajectory folder it was fine-tuned on (held-out episodes come from it)")
    p.add_argument("--encoder-weights", help="local folder/file of the encoder weights (default: as recorded)")
    p.add_argument("--protocol", default="paper", choices=["paper", "dino-wm"],
                   help="paper (default; App. D.3: 512 episodes, open-loop CEM 300 x 30, top 10, goals 25 recorded "
                        "steps ahead) or dino-wm (DINO-WM's plan_*.yaml: 50 episodes, seed 99, MPC over CEM 300 x 10 "
                        "(PushT x 30), top 30, 5 model steps executed per plan, random-state goals for Wall and "
                        "PointMaze); the options below override either")
    p.add_argument("--episodes", type=positive_int,
                   help="evaluation episodes (paper 512, dino-wm 50); more than a finished run in --out holds "
                        "extends it")
    p.add_argument("--planner", choices=["cem", "mpc", "gd", "mpc-gd"],
                   help="paper cem (open loop), dino-wm mpc (MPC over CEM); gd open loop, mpc-gd MPC over GD")
    p.add_argument("--samples", type=positive_int, help="CEM candidates per iteration (GD: parallel sequences; 300)")
    p.add_argument("--iterations", type=positive_int, help="CEM iterations (GD: Adam steps; paper 30, dino-wm 10)")
    p.add_argument("--topk", type=positive_int, help="CEM elites (paper 10, dino-wm 30)")
    p.add_argument("--horizon", type=positive_int, help="model steps planned (x frameskip env actions; 5)")
    p.add_argument("--goal-steps", type=positive_int, help="recorded env steps between start and goal (25)")
    p.add_argument("--nontrivial", action="store_true",
                   help="only start/goal pairs that doing nothing (zero actions) does not solve; the paper counts "
                        "every pair, and in PointMaze some 25-step goals are reached by letting the ball coast")
    p.add_argument("--replan-every", type=positive_int,
                   help="MPC: env actions between plans (default 5; dino-wm: the whole plan, 25)")
    p.add_argument("--mpc-steps", type=positive_int, help="MPC: env actions in all (default 50; dino-wm 10 plans)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="GD: Adam learning rate")
    p.add_argument("--batch", type=positive_int, default=16, help="episodes planned together")
    p.add_argument("--unclipped-model-actions", action="store_true",
                   help="feed the world model the sampled actions as they are, beyond the env's bounds too; by "
                        "default it sees them clipped, as PointMaze and PushT execute them (plans before this "
                        "option existed ran unclipped)")
    p.add_argument("--no-oracle", action="store_true", help="skip CEM with the simulator as the model")
    p.add_argument("--chunk", type=positive_int, help="candidates per forward pass (default: from the memory budget)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="predictor precision (default auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--seed", type=nonneg_int, help="paper 0, dino-wm 99")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--sweep", help="also plot success against budget, e.g. 32x3,64x10,300x30 (SAMPLESxITERATIONS)")
    p.add_argument("--ceiling", action="store_true",
                   help="instead of the model, plan the same episodes on the simulator three times: under the "
                        "feature cost, under a cost on the true state, and under that cost from the start as one "
                        "frame shows it (velocities zero); shows whether the encoder, the unseen velocities or the "
                        "search limits the world (writes ceiling.json into --out; the same command resumes it)")
    p.add_argument("--out", help="folder for episodes.jsonl, summary.json and MP4s")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a plan already in --out made with other settings (the same settings resume it)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..model import WorldModel
    from ..plan.cem import CEMConfig
    from ..plan.evaluate import evaluate
    from ..plan.gd import GDConfig
    from ..plan.protocol import PlanningConfig, protocol_settings
    from ..plan.sweep import budget_sweep, parse_budgets

    budgets = parse_budgets(args.sweep) if args.sweep else None
    if budgets and not args.out:
        raise UserError("--sweep writes a figure: give --out DIR")
    check_output_folder(args.out)
    device = pick_device(args.device)
    wm = WorldModel.load(args.checkpoint, encoder_weights=args.encoder_weights, device=device)
    space = wm.action_space
    base = PlanningConfig(**protocol_settings(args.protocol, args.env, space.frameskip if space else 1))

    def given(name: str, default):  # an option on the command line beats the protocol
        value = getattr(args, name)
        return default if value is None else value

    samples, iterations = given("samples", base.cem.samples), given("iterations", base.cem.iterations)
    cfg = replace(
        base, planner=given("planner", base.planner), cem=CEMConfig(samples, iterations, given("topk", base.cem.topk)),
        gd=GDConfig(samples, iterations, args.lr), horizon=given("horizon", base.horizon),
        goal_steps=given("goal_steps", base.goal_steps), nontrivial=args.nontrivial,
        replan_every=given("replan_every", base.replan_every), mpc_steps=given("mpc_steps", base.mpc_steps),
        episodes=given("episodes", base.episodes), batch=args.batch, seed=given("seed", base.seed),
        clip_model_actions=not args.unclipped_model_actions, oracle=not args.no_oracle, chunk=args.chunk,
        precision=args.precision)
    if args.ceiling:
        return _ceiling(wm, args, cfg)
    s = evaluate(wm, args.env, args.data, cfg, out=args.out, overwrite=args.overwrite)
    lo, hi = s["ci95"]
    goals = f"goals {cfg.goal_steps} recorded steps ahead" if cfg.goals == "dataset" else "random-state goals"
    line = (f"{s['planner']} on {s['env']} ({s['protocol']} protocol, {goals}, seed {cfg.seed}): "
            f"success {s['success_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}) over "
            f"{s['episodes']} episodes; random actions {s['random_success_rate']:.3f}; "
            f"doing nothing {s['idle_success_rate']:.3f}")
    if "oracle_success_rate" in s:
        line += f"; CEM on the simulator {s['oracle_success_rate']:.3f}"
    print(line + f"; {s['seconds_per_plan']:.2f} s per plan (budget {s['budget']})")
    if budgets:
        s["sweep"] = budget_sweep(wm, args.env, args.data, cfg, budgets, args.out)
        for r in s["sweep"]["budgets"]:
            print(f"  budget {r['samples']}x{r['iterations']}: success {r['success_rate']:.3f}, "
                  f"{r['seconds_per_plan']:.2f} s per plan")
        print(f"figure: {s['sweep']['figure']}")
    return s


def _ceiling(wm: Any, args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    from ..plan.ceiling import cost_ceiling

    r = cost_ceiling(wm, args.env, args.data, cfg, args.out, args.overwrite)
    parts = [f"{name} cost {c['success_rate']:.3f} (95% CI {c['ci95'][0]:.3f}-{c['ci95'][1]:.3f})"
             for name, c in r["costs"].items()]
    print(f"open-loop CEM on the {r['env']} simulator, {r['episodes']} episodes, budget {r['budget']}: "
          f"{'; '.join(parts)}; doing nothing {r['idle_success_rate']:.3f}")
    return {k: v for k, v in r.items() if k != "rows"}


PLAN = Verb("plan", "plan with a fine-tuned model in its environment (CEM, MPC or GD): success rate vs random",
            "dinoworld plan --env wall --checkpoint runs/wall --data data/wall --episodes 50 --samples 64 "
            "--iterations 5 --no-oracle --out plan/wall", _args, run)
