"""``dinoworld plan``: the paper's planning evaluation."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, choices=["wall", "pointmaze", "pusht"], help="environment")
    p.add_argument("--checkpoint", required=True, help="fine-tuned checkpoint folder or run folder (with action blocks)")
    p.add_argument("--data", required=True, help="the trajectory folder it was fine-tuned on (held-out episodes come from it)")
    p.add_argument("--encoder-weights", help="local folder/file of the encoder weights (default: as recorded)")
    p.add_argument("--episodes", type=positive_int, default=512, help="evaluation episodes (default 512)")
    p.add_argument("--planner", default="cem", choices=["cem", "mpc", "gd"], help="default cem (open loop)")
    p.add_argument("--samples", type=positive_int, default=300, help="CEM candidates per iteration (GD: parallel sequences)")
    p.add_argument("--iterations", type=positive_int, default=30, help="CEM iterations (GD: Adam steps)")
    p.add_argument("--topk", type=positive_int, default=10, help="CEM elites")
    p.add_argument("--horizon", type=positive_int, default=5, help="model steps planned (x frameskip env actions)")
    p.add_argument("--goal-steps", type=positive_int, default=25, help="recorded env steps between start and goal")
    p.add_argument("--nontrivial", action="store_true",
                   help="only start/goal pairs that doing nothing (zero actions) does not solve; the paper counts "
                        "every pair, and in PointMaze most 25-step goals are reached by letting the ball coast")
    p.add_argument("--replan-every", type=positive_int, default=5, help="MPC: env actions between plans")
    p.add_argument("--mpc-steps", type=positive_int, default=50, help="MPC: env actions in all")
    p.add_argument("--lr", type=positive_float, default=0.1, help="GD: Adam learning rate")
    p.add_argument("--batch", type=positive_int, default=16, help="episodes planned together")
    p.add_argument("--no-oracle", action="store_true", help="skip CEM with the simulator as the model")
    p.add_argument("--chunk", type=positive_int, help="candidates per forward pass (default: from the memory budget)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="predictor precision (default auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--sweep", help="also plot success against budget, e.g. 32x3,64x10,300x30 (SAMPLESxITERATIONS)")
    p.add_argument("--out", help="folder for episodes.jsonl, summary.json and MP4s")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a plan already in --out made with other settings (the same settings resume it)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..model import WorldModel
    from ..plan.cem import CEMConfig, GDConfig
    from ..plan.evaluate import PlanningConfig, budget_sweep, evaluate, parse_budgets

    budgets = parse_budgets(args.sweep) if args.sweep else None
    if budgets and not args.out:
        raise UserError("--sweep writes a figure: give --out DIR")
    check_output_folder(args.out)
    device = pick_device(args.device)
    wm = WorldModel.from_pretrained(args.checkpoint, encoder_weights=args.encoder_weights, device=device)
    cfg = PlanningConfig(
        planner=args.planner, cem=CEMConfig(args.samples, args.iterations, args.topk),
        gd=GDConfig(args.samples, args.iterations, args.lr), horizon=args.horizon, goal_steps=args.goal_steps,
        nontrivial=args.nontrivial,
        replan_every=args.replan_every, mpc_steps=args.mpc_steps, episodes=args.episodes, batch=args.batch,
        seed=args.seed, oracle=not args.no_oracle, chunk=args.chunk,
        precision=args.precision)
    s = evaluate(wm, args.env, args.data, cfg, out=args.out, overwrite=args.overwrite)
    lo, hi = s["ci95"]
    line = (f"{s['planner']} on {s['env']}: success {s['success_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}) over "
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


PLAN = Verb("plan", "plan with a fine-tuned model in its environment (CEM, MPC or GD): success rate vs random",
            "dinoworld plan --env wall --checkpoint runs/wall --data data/wall --episodes 50 --samples 64 --iterations 5 "
            "--out plan/wall", _args, run)
