"""Success of one planning run minus another, or minus one of its own baselines, on the same episodes,
with a paired bootstrap 95 % interval.

    python scripts/compare_plans.py plans/wall-full plans/wall-scratch
    python scripts/compare_plans.py plans/wall-full --against nothing
    python scripts/compare_plans.py plans/wall-full-s0,plans/wall-full-s1 plans/wall-scratch-s0,plans/wall-scratch-s1

Both folders are `dinoworld plan --out` folders of runs on the same episodes (same --data, --episodes,
--seed and protocol). `--against nothing` (zero actions) or `--against random` (random actions)
compares a run with the baseline it executed on each of its episodes. The bootstrap resamples held-out
trajectories: the episodes drawn from one trajectory go together. Prints one JSON object: both success
rates, the difference, its interval, the number of episodes and of trajectories, and on how many
episodes each side does better (with one run a side: how many episodes only that run solves).

A side given as comma-separated folders is one setting under several seeds on the same episodes: each
episode counts the fraction of its runs that solve it, and each run's own success rate is listed.
`ci95` then resamples trajectories only: it does not measure how much other seeds would move the
difference. `ci95_seeds` resamples each side's runs as well (a two-level bootstrap), so it does; it
needs three runs a side and is null with fewer.
"""

from __future__ import annotations

import argparse
import json
import sys

from dinoworld.errors import UserError, run_for_user
from dinoworld.plan.report import BASELINES, compare_runs, compare_to_baseline


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="plan output folder (the minuend), or comma-separated folders of seeds")
    p.add_argument("b", nargs="?", help="plan output folder(s) of the same episodes")
    p.add_argument("--against", choices=list(BASELINES), help="compare with this baseline of run A instead of run B")
    p.add_argument("--draws", type=int, default=2000, help="bootstrap resamples (default 2000)")
    a = p.parse_args()
    if (a.b is None) == (a.against is None):
        p.error("give a second run B or --against, not both")

    def compare() -> None:
        if a.b:
            r = compare_runs(a.a.split(","), a.b.split(","), a.draws)
        elif "," in a.a:
            raise UserError("--against compares one run with its own baselines; give one folder")
        else:
            r = compare_to_baseline(a.a, a.against, a.draws)
        print(json.dumps(r, indent=1))
    return run_for_user(compare)[0]


if __name__ == "__main__":
    sys.exit(main())
