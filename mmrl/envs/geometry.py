"""Batched 2-D ray casting shared by the lidar and camera of every mmrl environment.

All functions take a batch of ``B`` environments with ``R`` rays each and ``K`` primitives
each, and return the distance along every ray to the nearest hit (``max_range`` when nothing
is hit). They broadcast over ``(B, R, K)`` with no Python loop, which is what makes the
sensors cheap enough for thousands of steps per second.
"""

from __future__ import annotations

import numpy as np

_EPS = np.float32(1e-9)


def beam_angles(n_beams: int) -> np.ndarray:
    """Evenly spaced beam angles in radians, ``(n_beams,)`` float32, starting at 0 (ahead)."""
    return np.linspace(0.0, 2.0 * np.pi, n_beams, endpoint=False, dtype=np.float32)


def ray_directions(headings: np.ndarray, rel_angles: np.ndarray) -> np.ndarray:
    """Unit ray directions.

    Args:
        headings: ``(B,)`` sensor headings in radians.
        rel_angles: ``(R,)`` or ``(B, R)`` ray angles relative to the heading.

    Returns:
        ``(B, R, 2)`` float32 unit vectors.
    """
    angles = np.asarray(headings, np.float32)[:, None] + np.asarray(rel_angles, np.float32)
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32, copy=False)


def _finalize(t: np.ndarray, hit: np.ndarray, max_range: float) -> np.ndarray:
    t = np.where(hit, t, np.float32(max_range))
    if t.shape[-1] == 0:
        return np.full(t.shape[:-1], max_range, dtype=np.float32)
    return np.minimum(t.min(axis=-1), np.float32(max_range)).astype(np.float32, copy=False)


def ray_segments(
    origins: np.ndarray,
    dirs: np.ndarray,
    seg_a: np.ndarray,
    seg_b: np.ndarray,
    max_range: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Distance to the nearest line segment along each ray.

    Args:
        origins: ``(B, 2)`` ray origins.
        dirs: ``(B, R, 2)`` unit ray directions.
        seg_a: ``(B, S, 2)`` or ``(S, 2)`` segment start points.
        seg_b: ``(B, S, 2)`` or ``(S, 2)`` segment end points.
        max_range: Range returned when nothing is hit.
        valid: Optional ``(B, S)`` bool mask of segments that exist.

    Returns:
        ``(B, R)`` float32 distances in ``[0, max_range]``.
    """
    seg_a = np.broadcast_to(seg_a, (origins.shape[0], *seg_a.shape[-2:]))
    seg_b = np.broadcast_to(seg_b, seg_a.shape)
    e = (seg_b - seg_a)[:, None, :, :]  # (B,1,S,2)
    ap = (seg_a - origins[:, None, :])[:, None, :, :]  # (B,1,S,2)
    dx, dy = dirs[..., 0:1], dirs[..., 1:2]  # (B,R,1)
    denom = dx * e[..., 1] - dy * e[..., 0]  # (B,R,S)
    safe = np.where(np.abs(denom) < _EPS, _EPS, denom)
    t = (ap[..., 0] * e[..., 1] - ap[..., 1] * e[..., 0]) / safe
    u = (ap[..., 0] * dy - ap[..., 1] * dx) / safe
    hit = (np.abs(denom) >= _EPS) & (t >= 0) & (u >= 0) & (u <= 1)
    if valid is not None:
        hit &= valid[:, None, :]
    return _finalize(t, hit, max_range)


def ray_circles(
    origins: np.ndarray,
    dirs: np.ndarray,
    centers: np.ndarray,
    radii: np.ndarray,
    max_range: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Distance to the nearest circle along each ray (0 when the origin is inside one).

    Args:
        origins: ``(B, 2)``; dirs: ``(B, R, 2)`` unit vectors.
        centers: ``(B, C, 2)`` circle centres; radii: ``(B, C)`` or ``(C,)``.
        max_range: Range returned when nothing is hit.
        valid: Optional ``(B, C)`` bool mask of circles that exist.

    Returns:
        ``(B, R)`` float32 distances.
    """
    m = (origins[:, None, :] - centers)[:, None, :, :]  # (B,1,C,2)
    b = dirs[..., 0:1] * m[..., 0] + dirs[..., 1:2] * m[..., 1]  # (B,R,C)
    r = np.broadcast_to(radii, centers.shape[:-1])[:, None, :]
    c = m[..., 0] ** 2 + m[..., 1] ** 2 - r**2  # (B,1,C)
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0))
    t = np.where(c <= 0, np.float32(0), -b - root)
    hit = (disc >= 0) & ((c <= 0) | (t >= 0))
    if valid is not None:
        hit &= valid[:, None, :]
    return _finalize(t, hit, max_range)


def ray_boxes(
    origins: np.ndarray,
    dirs: np.ndarray,
    centers: np.ndarray,
    half_sizes: np.ndarray,
    headings: np.ndarray,
    max_range: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Distance to the nearest oriented rectangle along each ray (slab method in box frame).

    Args:
        origins: ``(B, 2)``; dirs: ``(B, R, 2)`` unit vectors.
        centers: ``(B, K, 2)`` box centres.
        half_sizes: ``(B, K, 2)`` or ``(K, 2)`` half length (along heading) and half width.
        headings: ``(B, K)`` box orientations in radians.
        max_range: Range returned when nothing is hit.
        valid: Optional ``(B, K)`` bool mask of boxes that exist.

    Returns:
        ``(B, R)`` float32 distances (0 when the origin is inside a box).
    """
    cos, sin = np.cos(headings), np.sin(headings)  # (B,K)
    rel = origins[:, None, :] - centers  # (B,K,2)
    # Ray origin and direction expressed in each box's frame.
    ox = (rel[..., 0] * cos + rel[..., 1] * sin)[:, None, :]  # (B,1,K)
    oy = (-rel[..., 0] * sin + rel[..., 1] * cos)[:, None, :]
    dx = dirs[..., 0:1] * cos[:, None, :] + dirs[..., 1:2] * sin[:, None, :]  # (B,R,K)
    dy = -dirs[..., 0:1] * sin[:, None, :] + dirs[..., 1:2] * cos[:, None, :]
    half = np.broadcast_to(half_sizes, centers.shape)
    hx, hy = half[..., 0][:, None, :], half[..., 1][:, None, :]
    inv_dx = 1.0 / np.where(np.abs(dx) < _EPS, _EPS, dx)
    inv_dy = 1.0 / np.where(np.abs(dy) < _EPS, _EPS, dy)
    tx1, tx2 = (-hx - ox) * inv_dx, (hx - ox) * inv_dx
    ty1, ty2 = (-hy - oy) * inv_dy, (hy - oy) * inv_dy
    t_near = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
    t_far = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
    hit = (t_near <= t_far) & (t_far >= 0)
    if valid is not None:
        hit &= valid[:, None, :]
    return _finalize(np.maximum(t_near, 0), hit, max_range)
