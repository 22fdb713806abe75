"""Planning with an action-conditioned world model: CEM, gradient planning, MPC over either, the paper's protocol.

>>> from dinoworld.plan import CEMConfig, LatentRollout, cem, latent_distance
>>> roll = LatentRollout(wm.predictor, start_latents[:, None], times, wm.action_space.step_seconds)
>>> plan = cem(lambda a: latent_distance(roll(a), goal_latents), episodes, 5, wm.action_space.model_dim)
>>> raw_actions = wm.action_space.denormalize(plan.actions)       # (E, 25, A) env actions

Modules: ``cem`` and ``gd`` (planners over any cost), ``mpc`` (receding horizon over any :class:`Planner`),
``rollout`` (batched candidate rollouts), and the evaluation: ``protocol`` (settings, the paper's and
DINO-WM's protocols), ``task`` (checkpoint, env, data), ``evaluate`` (the loop), ``runs`` (output
folder and resume), ``report`` (summary, videos), ``sweep`` (success against budget), ``ceiling``
(CEM on the simulator under the feature cost and under a true-state cost: what limits a world).
"""

from .cem import CEMConfig, Plan, cem
from .gd import GDConfig, gradient_plan
from .mpc import Planner, mpc, shift
from .rollout import LatentRollout, broadcast_state, latent_distance, naive_rollout

__all__ = ["CEMConfig", "GDConfig", "LatentRollout", "Plan", "Planner", "broadcast_state", "cem", "gradient_plan",
           "latent_distance", "mpc", "naive_rollout", "shift"]
