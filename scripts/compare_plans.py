"""Success of one planning run minus another on the same episodes, with a paired bootstrap 95 % interval.

    python scripts/compare_plans.py plans/wall-full plans/wall-scratch

Both folders are `dinoworld plan --out` folders of runs on the same episodes (same --data, --episodes,
--seed and protocol). The bootstrap resamples held-out trajectories: the episodes drawn from one
trajectory go together. Prints one JSON object: both success rates, the difference, its interval, the
number of episodes and of trajectories, and how many episodes only one of the runs solves.
"""

from __future__ import annotations

import argparse
import json
import sys

from dinoworld.errors import UserError
from dinoworld.plan.report import compare_runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="plan output folder (the minuend)")
    p.add_argument("b", help="plan output folder of the same episodes")
    p.add_argument("--draws", type=int, default=2000, help="bootstrap resamples (default 2000)")
    a = p.parse_args()
    try:
        print(json.dumps(compare_runs(a.a, a.b, a.draws), indent=1))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
