"""An offline intuitive-physics probe: pymunk scenes rendered to mp4, plausible training videos and
matched (possible, impossible) pairs that break one property from a *departure frame* on.

Scene (a 100 x 100 world, y down, gravity 200 units/s²): floor, side walls and ceiling, a static
shelf at a random height, an occluder (a screen drawn in front of everything, it does not collide),
and 2-3 objects (discs and boxes with distinct colours) thrown, rolled or dropped. Each pair is one
simulation rendered twice; the impossible video differs only from the departure frame on:

* ``permanence``: an object that went behind the occluder is no longer drawn (it never comes out);
* ``continuity``: an object teleports (its x jumps by 30-45 units) while in plain sight;
* ``constancy``: an object changes colour and shape (disc <-> box) while behind the occluder;
* ``gravity``: one object falls upward from then on (its gravity is reversed);
* ``solidity``: a falling object passes through the shelf instead of landing on it.

Recorded per pair (``pairs.json``): the property, ``departure_frame`` (the first frame where the two
videos differ visibly) and ``event_frame`` (when the violation happens; earlier than the departure
for the occluded violations, which only show once the object should have come out).
Training videos use the same scene distribution with other seeds and never contain a violation.

Layout written by :func:`write_physics_probe` (the ``folder`` layout of ``dinoworld eval physics``)::

    DIR/train/train_0000.mp4 ...        plausible videos
    DIR/possible/<property>_0000.mp4    DIR/impossible/<property>_0000.mp4   (same names)
    DIR/pairs.json                      {"fps", "size", "pairs": {name: {"property", "departure_frame", ...}}}
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...envs.base import require
from ...errors import UserError
from ...files import atomic_write_json

PROPERTIES: tuple[str, ...] = ("permanence", "continuity", "constancy", "gravity", "solidity")
WORLD = 100.0
GRAVITY = 200.0
SIM_HZ = 120
FLOOR_Y, CEIL_Y, WALL_L, WALL_R = 92.0, 3.0, 3.0, 97.0
_SHELF_CAT, _OBJ_CAT, _WALL_CAT = 0b010, 0b100, 0b001
_BG = (214, 222, 228)
_STRUCT = (70, 74, 82)
_SHELF = (120, 84, 52)
_OCCLUDER = (96, 112, 150)


@dataclass
class _Obj:
    kind: str  # "disc" | "box"
    size: float  # disc radius or box half side
    colour: tuple[int, int, int]
    pos: tuple[float, float]
    vel: tuple[float, float]
    spin: float = 0.0


@dataclass
class _Scene:
    shelf: tuple[float, float, float]  # x0, x1, y
    occluder: tuple[float, float, float]  # x0, x1, y_top (down to the floor)
    objects: list[_Obj]
    target: int = 0  # the object a violation acts on
    setup: str = "roll"
    alt_colour: tuple[int, int, int] = (0, 0, 0)


@dataclass
class _Track:
    pos: np.ndarray  # (T, N, 2)
    angle: np.ndarray  # (T, N)
    extra: dict = field(default_factory=dict)


def _colours(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    h0 = rng.uniform(0, 1)
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((h0 + i / n) % 1.0, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _sample_scene(rng: np.random.Generator, prop: str) -> _Scene:
    """A random scene set up so that ``prop``'s violation can happen to object 0."""
    n = int(rng.integers(2, 4))
    cols = _colours(rng, n + 1)
    occ_w = rng.uniform(18, 24)
    occ_x = rng.uniform(30, 70 - occ_w)
    occ_top = rng.uniform(35, 55)
    shelf_y = rng.uniform(48, 62)
    side = rng.choice([-1.0, 1.0])  # which half holds the shelf
    shelf_x0 = 8.0 if side < 0 else rng.uniform(55, 62)
    shelf_x1 = rng.uniform(38, 45) if side < 0 else 92.0
    objs = []
    for i in range(n):
        kind = "disc" if rng.random() < 0.55 else "box"
        size = rng.uniform(5.0, 7.5)
        objs.append(_Obj(kind, size, cols[i], (0.0, 0.0), (0.0, 0.0), float(rng.uniform(-3, 3))))
    # object 0: the protagonist, launched according to the setup
    t = objs[0]
    if prop in ("permanence", "constancy"):
        setup = "roll"
    elif prop == "solidity":
        setup = "drop"
    elif prop == "gravity":
        setup = "throw"
    else:
        setup = str(rng.choice(["roll", "throw"]))
    if setup == "roll":  # along the floor towards and behind the occluder
        left = rng.random() < 0.5
        x = rng.uniform(10, occ_x - 8) if left else rng.uniform(occ_x + occ_w + 8, 90)
        t.pos = (x, FLOOR_Y - t.size - rng.uniform(0, 12))
        t.vel = ((1 if left else -1) * rng.uniform(35, 55), rng.uniform(-20, 0))
        t.kind = "disc" if prop == "constancy" or rng.random() < 0.8 else t.kind
    elif setup == "drop":  # above the shelf, falls onto it
        x = rng.uniform(shelf_x0 + 8, shelf_x1 - 8)
        t.pos = (x, rng.uniform(8, shelf_y - 22))
        t.vel = (rng.uniform(-8, 8), rng.uniform(-10, 10))
    else:  # thrown in an arc
        x = rng.uniform(12, 88)
        t.pos = (x, rng.uniform(30, 70))
        t.vel = ((1 if x < 50 else -1) * rng.uniform(20, 45), -rng.uniform(40, 90))
    for o in objs[1:]:  # the others: anywhere in the air, random velocities
        o.pos = (rng.uniform(12, 88), rng.uniform(10, 60))
        o.vel = (rng.uniform(-40, 40), rng.uniform(-40, 10))
    return _Scene((shelf_x0, shelf_x1, shelf_y), (occ_x, occ_x + occ_w, occ_top), objs, 0, setup, cols[n])


def _simulate(scene: _Scene, num_frames: int, fps: float, event: str | None = None,
              event_frame: int = -1, teleport: float = 0.0) -> _Track:
    """Run the scene; ``event`` ('continuity' | 'gravity' | 'solidity') hits object 0 at ``event_frame``."""
    pymunk = require("pymunk", "the physics probe")
    space = pymunk.Space()
    space.gravity = (0.0, GRAVITY)
    static = space.static_body
    walls = [((WALL_L, CEIL_Y), (WALL_R, CEIL_Y)), ((WALL_L, FLOOR_Y), (WALL_R, FLOOR_Y)),
             ((WALL_L, CEIL_Y), (WALL_L, FLOOR_Y)), ((WALL_R, CEIL_Y), (WALL_R, FLOOR_Y))]
    for a, b in walls:
        s = pymunk.Segment(static, a, b, 1.0)
        s.elasticity, s.friction = 0.7, 0.6
        s.filter = pymunk.ShapeFilter(categories=_WALL_CAT)
        space.add(s)
    x0, x1, y = scene.shelf
    shelf = pymunk.Segment(static, (x0, y), (x1, y), 1.5)
    shelf.elasticity, shelf.friction = 0.5, 0.6
    shelf.filter = pymunk.ShapeFilter(categories=_SHELF_CAT)
    space.add(shelf)
    bodies, shapes = [], []
    for o in scene.objects:
        if o.kind == "disc":
            mass = 1.0
            body = pymunk.Body(mass, pymunk.moment_for_circle(mass, 0, o.size))
            shape = pymunk.Circle(body, o.size)
        else:
            mass = 1.0
            body = pymunk.Body(mass, pymunk.moment_for_box(mass, (2 * o.size, 2 * o.size)))
            shape = pymunk.Poly.create_box(body, (2 * o.size, 2 * o.size))
        body.position, body.velocity, body.angular_velocity = o.pos, o.vel, o.spin
        shape.elasticity, shape.friction = 0.75, 0.5
        shape.filter = pymunk.ShapeFilter(categories=_OBJ_CAT)
        space.add(body, shape)
        bodies.append(body)
        shapes.append(shape)
    sub = max(1, int(round(SIM_HZ / fps)))
    dt = 1.0 / (fps * sub)
    pos = np.zeros((num_frames, len(bodies), 2))
    ang = np.zeros((num_frames, len(bodies)))
    for f in range(num_frames):
        if event is not None and f == event_frame:
            b = bodies[scene.target]
            if event == "continuity":
                b.position = (b.position.x + teleport, b.position.y)
            elif event == "gravity":
                def upward(body, gravity, damping, dt_):  # noqa: ANN001
                    pymunk.Body.update_velocity(body, (-gravity[0], -gravity[1]), damping, dt_)
                b.velocity_func = upward
        if event == "solidity" and f == 0:  # the protagonist ignores the shelf all along
            shapes[scene.target].filter = pymunk.ShapeFilter(categories=_OBJ_CAT, mask=_WALL_CAT | _OBJ_CAT)
        for i, b in enumerate(bodies):
            pos[f, i] = (b.position.x, b.position.y)
            ang[f, i] = b.angle
        for _ in range(sub):
            space.step(dt)
    return _Track(pos, ang)


def _inside_occluder(scene: _Scene, track: _Track, f: int, i: int, margin: float = 0.5) -> bool:
    o = scene.objects[i]
    x, y = track.pos[f, i]
    r = o.size * (math.sqrt(2) if o.kind == "box" else 1.0)
    ox0, ox1, oy = scene.occluder
    return ox0 + margin <= x - r and x + r <= ox1 - margin and y - r >= oy + margin


def _visible(scene: _Scene, track: _Track, f: int, i: int) -> bool:
    """At least part of object ``i`` is outside the occluder and inside the arena."""
    o = scene.objects[i]
    x, y = track.pos[f, i]
    r = o.size
    ox0, ox1, oy = scene.occluder
    behind = ox0 <= x - r and x + r <= ox1 and y - r >= oy
    inside = WALL_L < x < WALL_R and CEIL_Y < y < FLOOR_Y + r
    return inside and not behind


def render(scene: _Scene, track: _Track, size: int, hide_from: int | None = None,
           change_from: int | None = None) -> np.ndarray:
    """Frames ``(T, size, size, 3)`` uint8; object 0 is not drawn from ``hide_from`` on, or drawn with
    another colour and shape from ``change_from`` on."""
    from PIL import Image, ImageDraw

    ss = 3  # supersampling
    s = size * ss / WORLD
    out = np.empty((len(track.pos), size, size, 3), np.uint8)
    x0, x1, sy = scene.shelf
    ox0, ox1, oy = scene.occluder
    for f in range(len(track.pos)):
        img = Image.new("RGB", (size * ss, size * ss), _BG)
        d = ImageDraw.Draw(img)
        d.rectangle([0, FLOOR_Y * s, size * ss, size * ss], fill=_STRUCT)
        d.rectangle([0, 0, WALL_L * s, size * ss], fill=_STRUCT)
        d.rectangle([WALL_R * s, 0, size * ss, size * ss], fill=_STRUCT)
        d.rectangle([0, 0, size * ss, CEIL_Y * s], fill=_STRUCT)
        d.rectangle([x0 * s, (sy - 1.5) * s, x1 * s, (sy + 1.5) * s], fill=_SHELF)
        for i, o in enumerate(scene.objects):
            kind, colour = o.kind, o.colour
            if i == scene.target and hide_from is not None and f >= hide_from:
                continue
            rad = o.size
            if i == scene.target and change_from is not None and f >= change_from:
                kind, colour = ("box" if o.kind == "disc" else "disc"), scene.alt_colour
                rad = o.size * (0.85 if kind == "box" else 1.0)  # a box's corners must stay hidden too
            x, y = track.pos[f, i]
            if kind == "disc":
                d.ellipse([(x - rad) * s, (y - rad) * s, (x + rad) * s, (y + rad) * s], fill=colour)
                a = track.angle[f, i]  # a spoke shows the rotation
                d.line([x * s, y * s, (x + 0.8 * rad * math.cos(a)) * s, (y + 0.8 * rad * math.sin(a)) * s],
                       fill=tuple(int(c * 0.55) for c in colour), width=max(1, ss))
            else:
                a = track.angle[f, i]
                c, sn = math.cos(a), math.sin(a)
                pts = [((x + c * px - sn * py) * s, (y + sn * px + c * py) * s)
                       for px, py in ((-rad, -rad), (rad, -rad), (rad, rad), (-rad, rad))]
                d.polygon(pts, fill=colour)
        d.rectangle([ox0 * s, oy * s, ox1 * s, FLOOR_Y * s], fill=_OCCLUDER)
        out[f] = np.asarray(img.resize((size, size), Image.BOX))
    return out


@dataclass
class ProbePair:
    property: str
    possible: np.ndarray  # (T, H, W, 3) uint8
    impossible: np.ndarray
    departure_frame: int
    event_frame: int
    seed: int


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """First frame where the two renderings differ at all (None if never, or only faintly: < 4 pixels
    off by more than 8 levels in every frame)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)  # (T, H, W)
    if not ((diff > 8).sum(axis=(1, 2)) >= 4).any():
        return None
    return int(np.flatnonzero(diff.reshape(len(diff), -1).max(axis=1) > 0)[0])


def make_pair(prop: str, seed: int, size: int = 112, fps: float = 10.0, seconds: float = 3.5,
              min_departure: int = 6, max_tries: int = 200) -> ProbePair:
    """One matched pair breaking ``prop``; scenes are redrawn (deterministically) until the violation
    is visible after at least ``min_departure`` frames and before the end."""
    if prop not in PROPERTIES:
        raise UserError(f"unknown property {prop!r}; choose one of {', '.join(PROPERTIES)}")
    num_frames = max(int(round(seconds * fps)), min_departure + 4)
    for attempt in range(max_tries):
        rng = np.random.default_rng([seed, attempt, PROPERTIES.index(prop)])
        scene = _sample_scene(rng, prop)
        track = _simulate(scene, num_frames, fps)
        hide, change = None, None
        if prop in ("permanence", "constancy"):
            hidden = [f for f in range(min_departure - 2, num_frames - 4) if _inside_occluder(scene, track, f, 0)]
            if not hidden:
                continue
            e = hidden[0]
            if not any(_visible(scene, track, f, 0) for f in range(e + 1, num_frames - 2)):
                continue
            hide, change = (e, None) if prop == "permanence" else (None, e)
            imp_track = track
        else:
            cands = [f for f in range(min_departure, num_frames - 6)
                     if _visible(scene, track, f, 0) and _visible(scene, track, f - 1, 0)]
            if prop == "solidity":
                cands = [0]
            if not cands:
                continue
            e = int(rng.choice(cands[: max(1, len(cands) // 2)]))
            teleport = 0.0
            if prop == "continuity":
                x = track.pos[e, 0, 0]
                sgn = -1.0 if x > 50 else 1.0
                teleport = sgn * rng.uniform(30, 45)
            imp_track = _simulate(scene, num_frames, fps, prop, e, teleport)
            if prop == "continuity" and not _visible(scene, imp_track, e, 0):
                continue
        possible = render(scene, track, size)
        impossible = render(scene, imp_track, size, hide_from=hide, change_from=change)
        dep = _first_difference(possible, impossible)
        if dep is None or dep < min_departure or dep > num_frames - 3:
            continue
        if prop == "solidity":
            e = dep
        return ProbePair(prop, possible, impossible, dep, int(e), seed)
    raise RuntimeError(f"could not build a {prop} pair for seed {seed} in {max_tries} tries")


def make_plausible_video(seed: int, size: int = 112, fps: float = 10.0, seconds: float = 3.5) -> np.ndarray:
    """A training video: a scene from the same distribution as the pairs' (a random setup), no violation."""
    rng = np.random.default_rng([seed, 7919])
    scene = _sample_scene(rng, str(rng.choice(PROPERTIES)))
    return render(scene, _simulate(scene, max(int(round(seconds * fps)), 2), fps), size)


def write_physics_probe(out: str | Path, pairs: int = 24, train: int = 64, size: int = 112, fps: float = 10.0,
                        seconds: float = 3.5, seed: int = 0,
                        progress: Callable[[str], None] | None = None) -> dict:
    """Write the probe in the ``folder`` layout (see the module docstring); returns the ``pairs.json`` dict.

    ``pairs`` are spread round-robin over :data:`PROPERTIES`; training seeds never overlap pair seeds.
    """
    from ...data.video import write_video

    if size % 2 or size < 16:
        raise UserError(f"--size must be even and >= 16 (H.264), got {size}")
    if pairs < 0 or train < 0 or pairs + train == 0:
        raise UserError("nothing to write: give --pairs and/or --train > 0")
    root = Path(out)
    opts = {"crf": "16"}
    for i in range(train):
        write_video(root / "train" / f"train_{i:04d}.mp4",
                    make_plausible_video(seed * 1_000_003 + i, size, fps, seconds), fps, options=opts)
        if progress and (i + 1) % 16 == 0:
            progress(f"train {i + 1}/{train}")
    meta: dict = {"fps": fps, "size": size, "seconds": seconds, "seed": seed, "properties": list(PROPERTIES),
                  "pairs": {}}
    for i in range(pairs):
        prop = PROPERTIES[i % len(PROPERTIES)]
        name = f"{prop}_{i // len(PROPERTIES):04d}"
        p = make_pair(prop, seed * 1_000_003 + 500_000 + i, size, fps, seconds)
        write_video(root / "possible" / f"{name}.mp4", p.possible, fps, options=opts)
        write_video(root / "impossible" / f"{name}.mp4", p.impossible, fps, options=opts)
        meta["pairs"][name] = {"property": prop, "departure_frame": p.departure_frame,
                               "event_frame": p.event_frame, "seed": p.seed}
        if progress and (i + 1) % 5 == 0:
            progress(f"pairs {i + 1}/{pairs}")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "pairs.json", meta, indent=1)
    return meta
