"""Success of one planning run minus another, or minus one of its own baselines, on the same episodes,
with a paired bootstrap 95 % interval.

    python scripts/compare_plans.py plans/wall-full plans/wall-scratch
    python scripts/compare_plans.py plans/wall-full --against nothing

Both folders are `dinoworld plan --out` folders of runs on the same episodes (same --data, --episodes,
--seed and protocol). `--against nothing` (zero actions) or `--against random` (random actions)
compares a run with the baseline it executed on each of its episodes. The bootstrap resamples held-out
trajectories: the episodes drawn from one trajectory go together. Prints one JSON object: both success
rates, the difference, its interval, the number of episodes and of trajectories, and how many episodes
only one of the two solves.
"""

from __future__ import annotations

import argparse
import json
import sys

from dinoworld.errors import UserError
from dinoworld.plan.report import BASELINES, compare_runs, compare_to_baseline


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="plan output folder (the minuend)")
    p.add_argument("b", nargs="?", help="plan output folder of the same episodes")
    p.add_argument("--against", choices=list(BASELINES), help="compare with this baseline of run A instead of run B")
    p.add_argument("--draws", type=int, default=2000, help="bootstrap resamples (default 2000)")
    a = p.parse_args()
    if (a.b is None) == (a.against is None):
        p.error("give a second run B or --against, not both")
    try:
        r = compare_runs(a.a, a.b, a.draws) if a.b else compare_to_baseline(a.a, a.against, a.draws)
        print(json.dumps(r, indent=1))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
