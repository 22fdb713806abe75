"""A scripted, noisy PushT expert (for offline data; it is not meant to be optimal).

Idea: with ``damping = 0`` and frictionless contacts, a push of the T at a boundary point ``c``
along the inward normal ``u`` moves the block like an impulse does: its centre of gravity along
``u`` and its angle by ``(r x u) / I`` (``r = c - cog``, ``I`` the moment of inertia). Each step
the expert

1. computes the wanted block motion: translation ``dp`` (goal minus current centre of gravity) and
   rotation ``dtheta`` (wrapped), expressed as a twist ``(dp, L * dtheta)`` with ``L = 60`` px,
2. scores contact candidates (points every ~10 px along the T outline whose approach line leaves
   room for the pusher, and whose contact pose lies inside the arena) by the cosine between their
   twist ``(u, L * (r x u) / I)`` and the wanted one, keeping the current contact while it scores
   at least 80 % of the best (hysteresis),
3. if the pusher sits behind that contact, pushes through it (target ``c + u * d`` with ``d``
   growing with the remaining error, 10 to 40 px); otherwise it travels to a stand-off point 25 px
   outside the contact, going around the block on a circle of radius 95 px about its centre of
   gravity whenever the straight path would hit the block (the way round whose arc stays inside
   the arena; a contact it cannot get to is skipped for 20 steps),
4. once the block is within 8 px / 0.1 rad of its goal, drives the pusher to the goal's pusher
   position (around the block).

The commanded target offset is clipped to 60 px (action 0.6) and Gaussian noise of standard
deviation ``noise_std`` (action units, 1 = 100 px) is added to every action.
"""

from __future__ import annotations

import numpy as np

from .base import Policy, wrap_angle
from .pusht import (
    ACTION_SCALE,
    AGENT_RADIUS,
    BLOCK_MOMENT,
    T_OUTLINE,
    block_cog,
    distance_to_block,
    rotation,
)

ROT_LENGTH = 60.0  # px per radian when comparing translations and rotations
CLEAR_RADIUS = 95.0  # farthest T point from the cog is 75 px, + pusher radius + margin
STANDOFF = 25.0
MAX_OFFSET = 60.0
POS_TOL, ANGLE_TOL = 8.0, 0.1


def _contact_candidates(spacing: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Points along the T outline (local frame) and their outward unit normals."""
    pts, normals = [], []
    n = len(T_OUTLINE)
    # Orientation: the outline's signed area tells which side is outside.
    x, y = T_OUTLINE[:, 0], T_OUTLINE[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    for i in range(n):
        a, b = T_OUTLINE[i], T_OUTLINE[(i + 1) % n]
        edge = b - a
        length = float(np.linalg.norm(edge))
        t = edge / length
        normal = np.array([t[1], -t[0]]) if area > 0 else np.array([-t[1], t[0]])
        k = max(1, int(length // spacing))
        for j in range(k):
            pts.append(a + edge * (j + 0.5) / k)
            normals.append(normal)
    pts_arr, nrm_arr = np.array(pts), np.array(normals)
    # Keep candidates whose approach line (the outward normal) leaves room for the pusher:
    # near the inner corners of the T the pusher would also touch the other piece.
    ok = np.ones(len(pts_arr), dtype=bool)
    for s in (AGENT_RADIUS + 1.0, AGENT_RADIUS + 5.0, AGENT_RADIUS + 15.0, AGENT_RADIUS + STANDOFF):
        dist = distance_to_block(pts_arr + nrm_arr * s, np.zeros(2), 0.0)
        ok &= dist >= min(s, AGENT_RADIUS + 4.0) - 1e-6
    return pts_arr[ok], nrm_arr[ok]


_CANDIDATES: tuple[np.ndarray, np.ndarray] | None = None


def _segment_clear(p: np.ndarray, q: np.ndarray, pos: np.ndarray, angle: float,
                   margin: float) -> bool:
    """Whether the pusher can travel straight from ``p`` to ``q`` without touching the block."""
    n = max(2, int(np.linalg.norm(q - p) // 5.0) + 2)
    line = p[None, :] + (q - p)[None, :] * np.linspace(0.0, 1.0, n)[:, None]
    return bool(np.all(distance_to_block(line, pos, angle) > AGENT_RADIUS + margin))


class PushTExpert:
    """Callable policy ``state -> action`` pushing the block toward ``goal_state``."""

    def __init__(self, goal_state: np.ndarray, rng: np.random.Generator | None = None,
                 noise_std: float = 0.05) -> None:
        global _CANDIDATES
        if _CANDIDATES is None:
            _CANDIDATES = _contact_candidates()
        self.local_pts, self.local_normals = _CANDIDATES
        self.goal = np.asarray(goal_state, dtype=np.float64).reshape(-1)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.noise_std = float(noise_std)
        self.contact: int | None = None
        self.stuck = 0  # steps spent unable to go around the block toward the contact
        self.banned: dict[int, int] = {}  # contact -> step until which it is skipped
        self.t = 0

    def __call__(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        offset = self._target(state) - state[:2]
        self.t += 1
        norm = float(np.linalg.norm(offset))
        if norm > MAX_OFFSET:
            offset *= MAX_OFFSET / norm
        action = offset / ACTION_SCALE
        if self.noise_std > 0:
            action = action + self.rng.normal(0.0, self.noise_std, size=2)
        return np.clip(action, -1.0, 1.0)

    # ------------------------------------------------------------------ internals
    def _target(self, s: np.ndarray) -> np.ndarray:
        agent, pos, angle = s[:2], s[2:4], float(s[4])
        cog = block_cog(s)
        dp = block_cog(self.goal) - cog
        dth = float(wrap_angle(self.goal[4] - angle))
        if np.linalg.norm(dp) < POS_TOL and abs(dth) < ANGLE_TOL:
            self.contact = None
            return self._travel(agent, self.goal[:2], pos, angle, cog)

        rot = rotation(angle)
        c = pos + self.local_pts @ rot.T  # contact points, world
        n_out = self.local_normals @ rot.T
        u = -n_out
        r = c - cog
        twist_rot = ROT_LENGTH * (r[:, 0] * u[:, 1] - r[:, 1] * u[:, 0]) / BLOCK_MOMENT
        cand = np.concatenate([u, twist_rot[:, None]], axis=1)
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        want = np.array([dp[0], dp[1], ROT_LENGTH * dth])
        want /= np.linalg.norm(want) + 1e-9
        score = cand @ want
        # The pusher must be able to reach the contact inside the arena (block against a wall).
        touch_all = c + n_out * (AGENT_RADIUS + 1.0)
        lo, hi = 22.0, 512.0 - 22.0
        reachable = np.all((touch_all >= lo) & (touch_all <= hi), axis=1)
        score = np.where(reachable, score, -2.0)
        for k, until in list(self.banned.items()):
            if until > self.t:
                score[k] = -3.0
            else:
                del self.banned[k]
        if self.contact is not None and self.stuck > 5:  # cannot get there: try another contact
            self.banned[self.contact] = self.t + 20
            score[self.contact] = -3.0
            self.contact, self.stuck = None, 0
        best = int(np.argmax(score))
        if self.contact is None or score[self.contact] < 0.8 * score[best] or score[self.contact] <= 0:
            self.contact, self.stuck = best, 0
        i = self.contact

        touch = c[i] + n_out[i] * (AGENT_RADIUS + 1.0)
        standoff = c[i] + n_out[i] * (AGENT_RADIUS + STANDOFF)
        # "Behind the contact": close to the segment [touch, standoff].
        seg = standoff - touch
        t = float(np.clip(np.dot(agent - touch, seg) / np.dot(seg, seg), 0.0, 1.0))
        lateral = float(np.linalg.norm(agent - (touch + t * seg)))
        if lateral < 6.0:
            err = float(np.linalg.norm(dp)) + ROT_LENGTH * abs(dth)
            depth = float(np.clip(0.5 * err, 10.0, 40.0))
            if t > 0.25:  # still on the way in: aim at the contact itself
                return touch
            return c[i] + u[i] * depth
        return self._travel(agent, standoff, pos, angle, cog, approach=n_out[i])

    def _travel(self, agent: np.ndarray, goal: np.ndarray, pos: np.ndarray, angle: float,
                cog: np.ndarray, approach: np.ndarray | None = None) -> np.ndarray:
        """Next waypoint from ``agent`` toward ``goal`` that goes around the block.

        ``approach`` (unit vector) is the direction the goal must be reached from: the pusher
        first heads for the point where the line ``goal + s * approach`` leaves the clearance
        circle, then comes straight in.
        """
        if _segment_clear(agent, goal, pos, angle, margin=3.0):
            return goal
        entry = goal
        if approach is not None:
            rel = goal - cog
            b = float(np.dot(rel, approach))
            disc = b * b - float(np.dot(rel, rel)) + CLEAR_RADIUS**2
            s = -b + np.sqrt(max(disc, 0.0))
            entry = _inside_arena(goal + approach * max(s, 0.0))
            if _segment_clear(agent, entry, pos, angle, margin=3.0):
                return entry
        rel = agent - cog
        rho = float(np.linalg.norm(rel))
        if rho < CLEAR_RADIUS - 5.0:  # first get away from the block, radially
            return _inside_arena(cog + rel / (rho + 1e-9) * (CLEAR_RADIUS + 5.0))
        phi = float(np.arctan2(rel[1], rel[0]))
        g = entry - cog
        dphi = float(wrap_angle(np.arctan2(g[1], g[0]) - phi))
        if abs(dphi) < 0.05 or np.linalg.norm(entry - agent) < 3.0:  # nothing better: go for it
            return goal if np.linalg.norm(entry - agent) < 3.0 else entry
        # Go around the shorter way whose arc stays inside the arena, else the other way.
        arcs = sorted([dphi, dphi - np.sign(dphi) * 2 * np.pi], key=abs)
        for arc in arcs:
            angles = phi + np.linspace(0.0, arc, 24)
            pts = cog + CLEAR_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            if np.all((pts >= 22.0) & (pts <= 490.0)):
                break
        else:
            self.stuck += 1
            arc = arcs[0]
        step = np.sign(arc) * min(abs(arc), 50.0 / CLEAR_RADIUS)
        ang = phi + step
        return _inside_arena(cog + CLEAR_RADIUS * np.array([np.cos(ang), np.sin(ang)]))

def _inside_arena(p: np.ndarray, margin: float = 25.0) -> np.ndarray:
    return np.clip(p, margin, 512.0 - margin)

def pusht_expert(env, rng: np.random.Generator, noise_std: float = 0.05) -> Policy:
    """Expert policy for ``env``'s current goal (factory signature used by data collection)."""
    return PushTExpert(env.goal_state, rng=rng, noise_std=noise_std)


__all__ = ["PushTExpert", "pusht_expert"]
