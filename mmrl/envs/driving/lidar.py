"""Batched 360-degree lidar of the ego: ranges to other cars and to the road's kerbs.

Everything the lidar can hit is axis-aligned in road coordinates (traffic never turns; the
kerbs run along the road, with one step across it where the exit lane opens), so each test
costs a multiplication by a precomputed inverse direction: a line crossing for kerbs, a slab
test for car boxes. Kerbs are stored per episode as four along-road lines and one across-road
line; only the ``NEAREST`` cars of each copy are tested. Lane markings are paint:
the lidar cannot see them, which leaves lane identity and car colours to the camera.
"""

from __future__ import annotations

import numpy as np

from mmrl.envs.driving.kernels import beam_constants, scan_kernel
from mmrl.envs.driving.road import LANE_WIDTH
from mmrl.envs.driving.traffic import CAR_LENGTH, CAR_WIDTH
from mmrl.envs.geometry import beam_angles

NEAREST = 8
"""Cars tested per copy and step: the nearest ones (farther cars are hidden behind them or
out of range at the densities the env produces)."""
_HX, _HY = 0.5 * CAR_LENGTH, 0.5 * CAR_WIDTH
_BIG = 1e9
_FAR = 1e6  # where missing cars are put: beyond any lidar range


class Lidar:
    """Scans of a batch of egos.

    Args:
        num_envs: Number of copies.
        n_beams: Beams over 360 degrees, counter-clockwise from the heading (beam 0 ahead).
        max_range: Range (m) returned when nothing is hit.
        kerbs: Whether the road's kerbs are seen (``False``: only cars).
    """

    kerbs = True  # class default: lidars pickled before the option saw kerbs

    onramp = False  # class default: lidars pickled before on-ramps had none

    def __init__(
        self,
        num_envs: int,
        n_beams: int,
        max_range: float,
        kerbs: bool = True,
        onramp: bool = False,
    ) -> None:
        self.kerbs = bool(kerbs)
        self.onramp = bool(onramp)
        self.angles = beam_angles(n_beams).astype(np.float64)
        self.max_range = float(max_range)
        # Straight-ahead beam geometry, reused whenever no copy is turned (most steps).
        self._beams0 = self._beams(np.zeros(1))
        # Along-road kerbs y = c for x in [lo, hi]: left kerb, right kerb before and after the
        # exit lane, the exit lane's kerb. One across-road kerb x = c for y in [lo, hi].
        # Small axes lead: numpy reduces over a leading axis as fast elementwise minima, but
        # over a short trailing axis it runs one tiny loop per beam (15x slower here).
        # float32 throughout: half the memory traffic of float64 on the (K, n, R) arrays, and
        # positions (< 1 km) keep millimetre precision.
        f32 = np.float32
        # With an on-ramp (v1): a fifth along-road kerb (the ramp's) and a second across-road
        # one (where the ramp ends).
        rows, steps = (5, 2) if self.onramp else (4, 1)
        self.h_c = np.zeros((rows, num_envs, 1), f32)
        self.h_lo = np.zeros((rows, num_envs, 1), f32)
        self.h_hi = np.zeros((rows, num_envs, 1), f32)
        self.v_c = np.zeros((steps, num_envs, 1), f32)
        self.v_lo = np.zeros((steps, num_envs, 1), f32)
        self.v_hi = np.zeros((steps, num_envs, 1), f32)

    def __setstate__(self, state: dict) -> None:
        # Lidars pickled before on-ramps kept their one across-road kerb as (n, 1) arrays.
        for key in ("v_c", "v_lo", "v_hi"):
            if state[key].ndim == 2:
                state[key] = state[key][None]
        self.__dict__.update(state)

    def set_roads(
        self,
        idx: np.ndarray,
        n_lanes: np.ndarray,
        ramp_start: np.ndarray,
        ramp_end: np.ndarray,
        onramp_end: np.ndarray | None = None,
    ) -> None:
        """Stores the kerbs of copies ``idx`` (``(k,)``) for new episodes on the given roads
        (``onramp_end``: where each on-ramp ends; only for a lidar made with ``onramp``)."""
        main = n_lanes * LANE_WIDTH
        start = -_BIG if onramp_end is None else onramp_end
        kerbs = [
            (0.0, -_BIG, _BIG),
            (main, start, ramp_start),
            (main, ramp_end, _BIG),
            (main + LANE_WIDTH, ramp_start, ramp_end),
        ]
        steps = [ramp_start]
        if self.h_c.shape[0] == 5:  # made with onramp (pickles from before have 4 rows)
            kerbs.append((main + LANE_WIDTH, -_BIG, start))
            steps.append(start)
        for row, (c, lo, hi) in enumerate(kerbs):
            self.h_c[row, idx, 0] = c
            self.h_lo[row, idx, 0] = lo
            self.h_hi[row, idx, 0] = hi
        for row, c in enumerate(steps):
            self.v_c[row, idx, 0] = c
            self.v_lo[row, idx, 0] = main
            self.v_hi[row, idx, 0] = main + LANE_WIDTH

    def _beams(self, heading: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-beam constants ``(dx, dy, 1/dx, 1/dy, HX/|dx|, HY/|dy|)``, each ``(k, R)``."""
        # Road frame has y to the right and the heading turns clockwise (to the right), so a
        # beam at counter-clockwise angle a from the heading points to (cos b, -sin b) with
        # b = a - heading.
        ang = self.angles - heading[:, None]
        # NumPy's float64 cos/sin; the inverses, products and float32 roundings of the six
        # arrays in one compiled loop (issue 20: they were 12 array passes).
        out = np.empty((6, *ang.shape), np.float32)
        beam_constants(np.cos(ang), np.sin(ang), _HX, _HY, out)
        return tuple(out)

    def scan(
        self,
        idx: np.ndarray | slice,
        ego_x: np.ndarray,
        ego_y: np.ndarray,
        heading: np.ndarray,
        car_x: np.ndarray,
        car_y: np.ndarray,
        valid: np.ndarray,
    ) -> np.ndarray:
        """Ranges (m) of ``k`` egos, ``(k, beams)`` float32 in ``[0, max_range]``.

        Args:
            idx: The copies (indices or a slice), for their kerbs.
            ego_x, ego_y, heading: ``(k,)`` ego poses (heading positive to the right).
            car_x, car_y, valid: ``(k, N)`` other cars.
        """
        r_max = np.float32(self.max_range)
        beams = self._beams(heading) if np.count_nonzero(heading) else self._beams0
        # Cars: only the NEAREST of each copy are tested, chosen here (argpartition's choice
        # among equal distances is NumPy's own).
        if car_x.shape[1] > NEAREST:
            rel_x = car_x - ego_x[:, None]
            rel_y = car_y - ego_y[:, None]
            d2 = np.where(valid, rel_x * rel_x + rel_y * rel_y, np.inf)
            near = np.argpartition(d2, NEAREST - 1, axis=1)[:, :NEAREST]
        else:
            near = np.broadcast_to(np.arange(car_x.shape[1]), car_x.shape)
        # The kerb crossings and car slab tests per beam: one compiled loop per copy (issue
        # 20: the (kerbs or cars, copies, beams) array code was ~5 us per env-step).
        out = np.empty((len(ego_x), len(self.angles)), np.float32)
        scan_kernel(
            np.arange(self.h_c.shape[1])[idx], ego_x, ego_y, *beams, self.kerbs, self.h_c,
            self.h_lo, self.h_hi, self.v_c, self.v_lo, self.v_hi, car_x, car_y, valid,
            np.ascontiguousarray(near), _FAR, r_max, out,
        )  # fmt: skip
        return out
