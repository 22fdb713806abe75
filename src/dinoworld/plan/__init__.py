"""Planning with an action-conditioned world model: CEM, MPC, gradient planning, the paper's protocol.

>>> from dinoworld.plan import CEMConfig, LatentRollout, cem, latent_distance
>>> roll = LatentRollout(wm.predictor, start_latents[:, None], times, wm.action_space.step_seconds)
>>> plan = cem(lambda a: latent_distance(roll(a), goal_latents), episodes, 5, wm.action_space.model_dim)
>>> raw_actions = wm.action_space.denormalize(plan.actions)       # (E, 25, A) env actions
"""

from .cem import CEMConfig, GDConfig, Plan, cem, gradient_plan
from .rollout import LatentRollout, broadcast_state, latent_distance, naive_rollout

__all__ = ["CEMConfig", "GDConfig", "LatentRollout", "Plan", "broadcast_state", "cem", "gradient_plan",
           "latent_distance", "naive_rollout"]
