"""New Driving episodes for many copies at once: road, ego start, traffic, named cars, text.

Every copy draws from its own generator, with the calls, order and sizes the per-copy
generator of Driving-v0/v1 always used, so copy ``i`` seeded ``s`` starts the episode a
single env seeded ``s`` starts (the seeding contract, tested against hashes recorded before
this module existed: ``tests/envs/test_reset_identity.py``). Those sizes depend on earlier
draws of the same copy (how many cars the spawn leaves, how many survive the clearing around
the named cars), and each copy has its own generator, so the random numbers cannot be drawn
for all copies in one call. A reset therefore runs in phases (issue 20): each phase is a
per-copy loop that **only** calls the generators (stored into padded arrays), followed by
array operations over all copies being reset (car placement, gaps, lane clearing, colours,
keeping the nearest cars, sorting into slots) that compute the next phase's sizes. The loops
are compiled (:mod:`mmrl.envs.driving.scene_kernels`): they make NumPy's calls on each
copy's own bit generator without NumPy's per-call overhead
(:mod:`mmrl.envs.driving.scene_kernels`).

Car lists of different lengths are kept padded (:class:`CarLists`): row ``j`` holds copy
``j``'s cars in its first ``count[j]`` columns, in the order the per-copy generator built
them, since that order decides which random number goes to which car.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Protocol

import numpy as np

from mmrl.envs.driving.config import DrivingConfig
from mmrl.envs.driving.instructions import (
    COLOR_RGB,
    COLORS,
    FOLLOW,
    LANE,
    NO_ARG,
    OVERTAKE,
    TASKS,
    allowed_args,
    combinations,
    phrases,
)
from mmrl.envs.driving.road import LANE_WIDTH, MAX_LANES, RAMP_LENGTH_RANGE
from mmrl.envs.driving.scene_kernels import (
    background_colours_kernel,
    candidate_positions_kernel,
    finish1_kernel,
    phase1_kernel,
    phase2_kernel,
    shift_kernel,
    spawn_kernel,
    stream_table,
)
from mmrl.envs.driving.traffic import (
    MEAN_GAP,
    PASSING_SPEED_RANGE,
    SPAWN_AHEAD,
    SPAWN_BEHIND,
    SPEED_RANGE,
    CarLists,
)
from mmrl.envs.numeric import scale_uniform

FOLLOW_WINDOW = (20.0, 60.0)
"""v0: start distance ahead of the ego (m) of the car to follow."""
OVERTAKE_WINDOW = (20.0, 50.0)
"""v0: start distance ahead of the ego (m) of the car to overtake."""
FOLLOW_SPEED = (17.0, 21.0)
"""v0: speed (m/s) of the car to follow: slower than the ego can drive, so it can catch up."""
OVERTAKE_SPEED = (13.0, 17.0)
"""v0: speed (m/s) of the car to overtake: slower than traffic, so passing it is feasible."""
CANDIDATES = 3
"""v1: cars an instruction could name, one per lane right of the passing lane (fewer on
narrower roads): the passing lane stays free of them, so "drive fast" and "overtake" always
have a way past."""
CANDIDATE_WINDOW = (15.0, 40.0)
"""v1: start distance ahead of the ego (m) of every candidate car."""
CANDIDATE_SPEED = (14.0, 19.0)
"""v1: speed (m/s) of every candidate car: slower than traffic and than the ego can drive,
so each can be caught up with, followed and passed."""
CANDIDATE_SEPARATION = 10.0
"""v1: smallest distance (m) along the road between two candidates."""
CANDIDATE_TRIES = 32
"""v1: candidate position sets drawn at once; the first separated one is used (the windows
are wide enough that one almost always is; else the first set, sorted)."""
TRAILER_WINDOW = (-22.0, -8.0)
"""v1: start position (m, relative to the ego) of a candidate lane's *trailer*: a car behind
the ego, where the camera (4 m behind) cannot see it and only the lidar does, driving a
little slower than the candidate (so it never closes in on it and no car slips in
between)."""
TRAILER_SLOWER = (1.0, 3.0)
"""v1: a trailer drives this much (m/s) slower than its candidate, so the gap between them
opens and the ego can always get in behind the candidate."""
TRAILER_PROBABILITY = 0.6
"""v1: chance that a candidate lane other than the ego's gets a trailer. Entering that lane
before the ego has pulled clear of it is a cut-in (see ``CUT_IN_STEPS`` in the simulator),
so lane changes need to know what is behind, and only the lidar tells."""

MIN_GAP = 12.0
"""Smallest mean spawn gap (m) whatever the density."""
MAX_DRAWS = int(np.ceil((SPAWN_AHEAD + SPAWN_BEHIND) / (0.5 * MIN_GAP))) + 1
"""Most spawn positions a lane draws (at the smallest gap): the padded width of the draws."""
_N_COLORS = len(COLOR_RGB)
# v0's named-car bounds as the kernels take them.
_FOLLOW_WINDOW, _OVERTAKE_WINDOW = np.array(FOLLOW_WINDOW), np.array(OVERTAKE_WINDOW)
_FOLLOW_SPEED, _OVERTAKE_SPEED = np.array(FOLLOW_SPEED), np.array(OVERTAKE_SPEED)


class SceneSource(Protocol):
    """What :func:`draw_scenes` reads of the simulator (its config, generators and the
    episode parameters of its version); :class:`~mmrl.envs.driving.simulator.DrivingSimulator`
    satisfies it structurally."""

    config: DrivingConfig
    rngs: list[np.random.Generator]
    scene_version: int
    slots: int
    ramp_end_range: tuple[float, float]
    start_levels: tuple[int, int]
    onramp_length: tuple[float, float] | None
    onramp_start: float
    passing_density: float


@dataclasses.dataclass
class Scenes:
    """New episodes of ``m`` copies (all ``(m,)`` unless noted), for the simulator to load.

    Attributes:
        n_lanes: Main lanes.  ramp_start, ramp_end: The exit lane (m).
        onramp_end: End of the on-ramp (m), ``None`` without on-ramps (v0).
        ego_y: The ego's lateral start (m).  level: Its cruise level.
        task: Task id.  arg: Lane or colour id, or ``NO_ARG``.  texts: ``m`` instructions.
        cars: The cars, named ones included.  target: Column of the named car in ``cars``,
            or -1.
    """

    n_lanes: np.ndarray
    ramp_start: np.ndarray
    ramp_end: np.ndarray
    onramp_end: np.ndarray | None
    ego_y: np.ndarray
    level: np.ndarray
    task: np.ndarray
    arg: np.ndarray
    texts: list[str]
    cars: CarLists
    target: np.ndarray


def draw_scenes(sim: SceneSource, idx: np.ndarray) -> Scenes:
    """Draws new episodes for copies ``idx`` of ``sim`` from their generators.

    Reads the simulator's config and class parameters (``ramp_end_range``, ``start_levels``,
    ``onramp_length``, ``onramp_start``, ``passing_density``, ``slots``, ``scene_version``)
    and ``sim.rngs``; writes nothing.
    """
    cfg = sim.config
    rngs = [sim.rngs[i] for i in idx]
    streams = stream_table(rngs)
    m = len(rngs)
    v1 = sim.scene_version >= 1
    split = cfg.instruction_split
    tables = _tables(split, cfg.tasks, cfg.max_lanes)
    n_lanes = np.empty(m, np.int64)
    ramp_start, ramp_end = np.empty(m), np.empty(m)
    onramp_end = None if sim.onramp_length is None else np.empty(m)
    task = np.empty(m, np.int64)
    combo = np.zeros(m, np.int64)  # v0: the instruction's index among the combinations
    lane0 = np.empty(m, np.int64)  # the ego's main lane draw
    on_ramp = np.zeros(m, bool)
    level = np.empty(m, np.int64)
    density = np.empty(m)
    draws = np.zeros(m, np.int64)
    u_spawn = np.zeros((m, MAX_LANES, MAX_DRAWS))
    n_cand = np.zeros(m, np.int64)  # v1: candidates per copy
    colours = np.zeros((m, CANDIDATES), np.int64)  # v1: their colours

    # Phase 1, per copy, generator calls only (compiled): road, instruction (v0) or task and
    # candidate colours (v1), ego start, traffic density and the spawn's gap draws.
    phase1_kernel(
        streams, v1, cfg.min_lanes, cfg.max_lanes, np.array(sim.ramp_end_range),
        np.array(RAMP_LENGTH_RANGE), np.array(sim.onramp_length or ()), sim.onramp_start,
        np.array(sim.start_levels), float(cfg.traffic_density), float(sim.passing_density),
        MEAN_GAP, MIN_GAP, SPAWN_AHEAD + SPAWN_BEHIND, tables.task_ids, tables.pal_len,
        tables.pal, tables.n_combos, _N_COLORS,
        n_lanes, ramp_start, ramp_end, np.empty(m) if onramp_end is None else onramp_end,
        task, combo, colours, n_cand, lane0, on_ramp, level, density, draws, u_spawn,
    )  # fmt: skip
    arg = np.full(m, NO_ARG, np.int64)
    texts = [""] * m
    if not v1:
        for j in range(m):
            arg[j], texts[j] = combinations(split, TASKS[task[j]], int(n_lanes[j]))[combo[j]]

    ego_lane = np.where(on_ramp, n_lanes, lane0)  # the on-ramp is lane n_lanes
    ego_y = (ego_lane + 0.5) * LANE_WIDTH
    # On the ramp, traffic keeps the rightmost lane's clearance (25 m) around the ego.
    clear_lane = np.where(on_ramp, n_lanes - 1, lane0)
    u_spawn = u_spawn[:, :, : max(int(draws.max(initial=0)), 1)]  # the widest copy's draws
    cars = _spawn_positions(u_spawn, draws, n_lanes, clear_lane, density, sim.passing_density)

    # Phase 2, per copy (compiled): the spawned cars' speeds and colours, then the named
    # car's (v0) or the candidates' and trailers' draws (v1).
    width = cars.x.shape[1]
    u_speed = np.zeros((m, width))
    colour = np.zeros((m, width), np.int64)
    kc = CANDIDATES
    named = np.zeros(m, bool)
    x_t, lane_t, v_t = np.zeros(m), np.zeros(m, np.int64), np.zeros(m)
    cand_lanes = np.zeros((m, kc), np.int64)
    # v1: the candidates' positions (CANDIDATE_TRIES, k), speeds, trailer chances, positions
    # and slow-downs (k each), raw: five consecutive uniform draws take the next doubles of
    # the stream in order, so they are drawn as rows of one array, scaled after the loop.
    u_cand = np.zeros((m, CANDIDATE_TRIES + 4, kc))
    phase2_kernel(
        streams, v1, cars.count, len(COLORS), n_lanes, n_cand, task, _FOLLOW_WINDOW,
        _OVERTAKE_WINDOW, _FOLLOW_SPEED, _OVERTAKE_SPEED,
        u_speed, colour, cand_lanes, u_cand, named, x_t, lane_t, v_t,
    )  # fmt: skip

    # Desired speeds: the leftmost lane is the passing lane.
    fast = cars.lane == 0
    lo = np.where(fast, PASSING_SPEED_RANGE[0], SPEED_RANGE[0])
    hi = np.where(fast, PASSING_SPEED_RANGE[1], SPEED_RANGE[1])
    cars.v0 = lo + u_speed * (hi - lo)
    cars.v = cars.v0.copy()
    cars.color = colour
    cars = cars.nearest(sim.slots)  # keep the cars nearest the ego
    if v1:
        cand_valid = np.arange(kc) < n_cand[:, None]
        cand_xs, cand_v, trailer_u, trailer_x, trailer_dv = _candidate_draws(u_cand, cand_valid)
        cars, x_c = _place_candidates_1(
            cars, cand_valid, cand_lanes, cand_xs, cand_v, trailer_u, trailer_x, trailer_dv,
            ego_lane,
        )  # fmt: skip
        return _finish_v1(
            sim, streams, tables, cars, cand_valid, cand_lanes, x_c, cand_v, colours,
            n_lanes, ramp_start, ramp_end, onramp_end, ego_y, level, task,
        )  # fmt: skip
    cars, target = _place_target_0(sim.slots, streams, cars, named, x_t, lane_t, v_t, task, arg)
    return Scenes(n_lanes, ramp_start, ramp_end, onramp_end, ego_y, level, task, arg, texts,
                  cars, target)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Tables:
    """What the draw kernels look up of the instruction grammar, per split and task set.

    Attributes:
        task_ids: Task ids of the config's tasks, in its order.
        pal_len: ``(tasks, lanes + 1)`` size of v1's candidate palette (the colours
            ``follow``/``overtake`` may name; -1 for the other tasks: no palette).
        pal: ``(tasks, lanes + 1, colours)`` the palettes, ascending.
        n_combos: ``(tasks, lanes + 1)`` v0's instruction count.
        lane_args: ``(lanes + 1, lanes)`` the lanes ``lane`` may name; n_lane_args: how many.
        n_texts: ``(tasks, lanes + 1, args + 1)`` phrases naming each argument (``arg + 1``).
        text_start: Where those phrases start in ``texts``, indexed as ``n_texts``.
        texts: Every :func:`~mmrl.envs.driving.instructions.phrases` list, concatenated.
    """

    task_ids: np.ndarray
    pal_len: np.ndarray
    pal: np.ndarray
    n_combos: np.ndarray
    lane_args: np.ndarray
    n_lane_args: np.ndarray
    n_texts: np.ndarray
    text_start: np.ndarray
    texts: tuple[str, ...]


@functools.cache
def _tables(split: str, tasks: tuple[str, ...], max_lanes: int) -> _Tables:
    """The grammar tables of ``split`` for roads of up to ``max_lanes`` lanes."""
    nt, nl = len(TASKS), max_lanes + 1
    n_args = max(_N_COLORS, MAX_LANES) + 1  # arguments -1 (NO_ARG), colours and lanes
    pal_len = np.full((nt, nl), -1, np.int64)
    pal = np.zeros((nt, nl, _N_COLORS), np.int64)
    n_combos = np.zeros((nt, nl), np.int64)
    lane_args = np.zeros((nl, MAX_LANES), np.int64)
    n_lane_args = np.zeros(nl, np.int64)
    n_texts = np.zeros((nt, nl, n_args), np.int64)
    text_start = np.zeros((nt, nl, n_args), np.int64)
    texts: list[str] = []
    for n in range(2, nl):
        for t, name in enumerate(TASKS):
            n_combos[t, n] = len(combinations(split, name, n))
            args = allowed_args(split, name, n)
            if t in (FOLLOW, OVERTAKE):
                pal_len[t, n] = len(args)
                pal[t, n, : len(args)] = args
            if t == LANE:
                n_lane_args[n] = len(args)
                lane_args[n, : len(args)] = args
            for a in range(NO_ARG, n_args - 1):
                found = phrases(split, name, n, a)
                n_texts[t, n, a + 1], text_start[t, n, a + 1] = len(found), len(texts)
                texts += found
    task_ids = np.array([TASKS.index(t) for t in tasks], np.int64)
    return _Tables(
        task_ids, pal_len, pal, n_combos, lane_args, n_lane_args, n_texts, text_start,
        tuple(texts),
    )  # fmt: skip


def _spawn_positions(
    u: np.ndarray,
    draws: np.ndarray,
    n_lanes: np.ndarray,
    clear_lane: np.ndarray,
    density: np.ndarray,
    passing_density: float,
) -> CarLists:
    """Spawned cars' positions and lanes from the gap draws ``u`` (``(m, MAX_LANES,
    MAX_DRAWS)``, copy ``j``'s in ``[:n_lanes[j], :draws[j]]``): see
    :func:`~mmrl.envs.driving.scene_kernels.spawn_kernel`. Speeds and colours are left for
    the next phase; padding columns hold zeros."""
    m = u.shape[0]
    xs = np.zeros((m, u.shape[1] * u.shape[2]))
    lanes = np.zeros_like(xs)
    count = np.zeros(m, np.int64)
    spawn_kernel(
        u, draws, n_lanes, clear_lane, density, passing_density, MEAN_GAP, MIN_GAP,
        SPAWN_BEHIND, SPAWN_AHEAD, xs, lanes, count,
    )  # fmt: skip
    width = max(int(count.max(initial=0)), 1)
    data = np.zeros((5, m, width))
    data[0], data[1] = xs[:, :width], lanes[:, :width]
    return CarLists(data, count)


def _place_target_0(
    slots: int,
    streams: np.ndarray,
    cars: CarLists,
    named: np.ndarray,
    x_t: np.ndarray,
    lane_t: np.ndarray,
    v_t: np.ndarray,
    task: np.ndarray,
    arg: np.ndarray,
) -> tuple[CarLists, np.ndarray]:
    """v0: adds the named car ahead of the ego, the only car of its colour.

    Only the named car is unique in colour and has its lane cleared, which is how the scene
    gives it away (v1 draws candidates instead).

    Returns:
        The cars and the named car's column (-1 where ``named`` is off).
    """
    # Clear the target's surroundings in its lane; for "follow" also the stretch behind it,
    # so no car can slip in between (traffic never changes lanes, so it stays clear).
    behind = np.where(task == OVERTAKE, 25.0, x_t + 60.0)[:, None]
    x = cars.x
    gone = (cars.lane == lane_t[:, None]) & (x > (x_t[:, None] - behind)) & (x < x_t[:, None] + 15)
    cars = cars.select(cars.valid & ~(gone & named[:, None]))
    # Other cars never share the target's colour: shift clashing colours by 1..7 (phase 3,
    # per copy: one draw per remaining car).
    shift = np.zeros(cars.x.shape, np.int64)
    shift_kernel(streams, np.flatnonzero(named), cars.count, _N_COLORS, shift)
    clash = (cars.color == arg[:, None]) & named[:, None]
    cars.color = np.where(clash, (cars.color + shift) % _N_COLORS, cars.color)
    # Make room by dropping the farthest car (the first of equals).
    full = named & (cars.count >= slots)
    if full.any():
        far = np.argmax(np.where(cars.valid, np.abs(cars.x), -np.inf), axis=1)
        drop = (np.arange(cars.x.shape[1]) == far[:, None]) & full[:, None]
        cars = cars.select(cars.valid & ~drop)
    target = np.where(named, cars.count, -1)
    new = CarLists.stack(x_t, lane_t, v_t, v_t, arg)[:, :, None]
    cars = cars.append(new, named[:, None])
    return cars, target


def _candidate_draws(
    u: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """v1: the candidates' positions ``(m, CANDIDATE_TRIES, CANDIDATES)``, speeds, trailer
    chances, trailer positions and slow-downs ``(m, CANDIDATES)`` from the raw draws ``u``
    ``(m, CANDIDATE_TRIES + 4, CANDIDATES)``; missing candidates (``~valid``) hold 0 (1 for
    the trailer chance, so never a trailer), as the padded per-copy draws did."""
    tries = CANDIDATE_TRIES
    xs = np.where(valid[:, None, :], scale_uniform(u[:, :tries], *CANDIDATE_WINDOW), 0.0)
    v_c = np.where(valid, scale_uniform(u[:, tries], *CANDIDATE_SPEED), 0.0)
    trailer_u = np.where(valid, u[:, tries + 1], 1.0)
    trailer_x = np.where(valid, scale_uniform(u[:, tries + 2], *TRAILER_WINDOW), 0.0)
    trailer_dv = np.where(valid, scale_uniform(u[:, tries + 3], *TRAILER_SLOWER), 0.0)
    return xs, v_c, trailer_u, trailer_x, trailer_dv


def _place_candidates_1(
    cars: CarLists,
    cand_valid: np.ndarray,
    lanes: np.ndarray,
    xs: np.ndarray,
    v_c: np.ndarray,
    trailer_u: np.ndarray,
    trailer_x: np.ndarray,
    trailer_dv: np.ndarray,
    ego_lane: np.ndarray,
) -> tuple[CarLists, np.ndarray]:
    """v1: picks each copy's candidate positions, clears their lanes and adds the trailers.

    Returns:
        The background cars (trailers included, before recolouring: the next phase draws one
        colour per car) and the candidates' positions ``(m, CANDIDATES)``.
    """
    x_c = np.zeros(cand_valid.shape)
    candidate_positions_kernel(xs, cand_valid.sum(axis=1), CANDIDATE_SEPARATION, x_c)
    # Clear each candidate's lane from behind the ego to just ahead of the candidate, so
    # every candidate can be followed without a car slipping in between (traffic never
    # changes lanes, so it stays clear).
    x = cars.x[:, :, None]
    hit = (
        (cars.lane[:, :, None] == lanes[:, None, :])
        & (x > -60.0)
        & (x < (x_c + 15.0)[:, None, :])
        & cand_valid[:, None, :]
    ).any(axis=2)
    trailer = (trailer_u < TRAILER_PROBABILITY) & (lanes != ego_lane[:, None]) & cand_valid
    v_tr = v_c - trailer_dv
    new = CarLists.stack(trailer_x, lanes, v_tr, v_tr, np.zeros_like(v_tr))
    return cars.append(new, trailer, keep=cars.valid & ~hit), x_c


def _finish_v1(
    sim: SceneSource,
    streams: np.ndarray,
    tables: _Tables,
    cars: CarLists,
    cand_valid: np.ndarray,
    cand_lanes: np.ndarray,
    x_c: np.ndarray,
    cand_v: np.ndarray,
    colours: np.ndarray,
    n_lanes: np.ndarray,
    ramp_start: np.ndarray,
    ramp_end: np.ndarray,
    onramp_end: np.ndarray | None,
    ego_y: np.ndarray,
    level: np.ndarray,
    task: np.ndarray,
) -> Scenes:
    """v1's last phase: background colours, the referent and the phrase (per-copy draws,
    compiled), then the candidates appended (array operations)."""
    split = sim.config.instruction_split
    m = len(streams)
    n_cand = cand_valid.sum(axis=1)
    free_n = _N_COLORS - n_cand  # candidate colours are distinct
    draw = np.zeros(cars.x.shape, np.int64)
    pick = np.full(m, -1, np.int64)
    arg = np.full(m, NO_ARG, np.int64)
    text_index = np.zeros(m, np.int64)
    finish1_kernel(
        streams, cars.count, free_n, task, n_lanes, n_cand, colours, tables.pal_len,
        tables.lane_args, tables.n_lane_args, tables.n_texts, tables.text_start, draw, pick,
        arg, text_index,
    )  # fmt: skip
    if (text_index < 0).any():
        j = int(np.argmax(text_index < 0))
        name, a = TASKS[task[j]], int(arg[j])
        raise ValueError(f"no {split!r} instruction of task {name!r} names argument {a}")
    texts = [tables.texts[i] for i in text_index.tolist()]

    cars.color = _background_colours(cars, draw, colours, cand_valid)
    cars = cars.nearest(sim.slots - n_cand)  # make room by dropping the farthest cars
    target = np.where(pick >= 0, cars.count + pick, -1)
    cars = cars.append(CarLists.stack(x_c, cand_lanes, cand_v, cand_v, colours), cand_valid)
    return Scenes(n_lanes, ramp_start, ramp_end, onramp_end, ego_y, level, task, arg, texts,
                  cars, target)  # fmt: skip


def _background_colours(
    cars: CarLists, draw: np.ndarray, reserved: np.ndarray, reserved_valid: np.ndarray
) -> np.ndarray:
    """Recolours background cars so none has a reserved colour and none is alone in its colour.

    A colour word can name a car only if exactly one car has that colour; keeping every
    background colour at zero or two-plus cars leaves the reserved candidates as the only
    cars an instruction could name. (A lone background car, possible on empty roads, keeps
    its colour.) The loop is :func:`~mmrl.envs.driving.scene_kernels.background_colours_kernel`.

    Args:
        cars: The background cars of ``m`` copies.
        draw: ``(m, C)`` int64: each car's draw among its copy's free colours.
        reserved: ``(m, K)`` int64 candidate colours, where ``reserved_valid`` (each row's
            first columns).
    """
    out = np.empty(draw.shape, np.int64)
    background_colours_kernel(
        draw, reserved, reserved_valid.sum(axis=1), cars.count, cars.color, _N_COLORS, out
    )
    return out
