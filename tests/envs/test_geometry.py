import numpy as np
import pytest

from mmrl.envs.geometry import (
    beam_angles,
    ray_boxes,
    ray_circles,
    ray_directions,
    ray_segments,
)


def _rays(angles, origin=(0.0, 0.0)):
    origins = np.array([origin], dtype=np.float32)
    return origins, ray_directions(np.zeros(1, np.float32), np.asarray(angles, np.float32))


def test_beam_angles_cover_full_circle():
    a = beam_angles(8)
    assert a.shape == (8,) and a.dtype == np.float32
    np.testing.assert_allclose(a[2], np.pi / 2, rtol=1e-6)


def test_segment_hit_distance_and_miss():
    origins, dirs = _rays([0.0, np.pi / 2, np.pi])
    seg_a = np.array([[[5.0, -1.0]]], np.float32)
    seg_b = np.array([[[5.0, 1.0]]], np.float32)
    d = ray_segments(origins, dirs, seg_a, seg_b, max_range=20.0)
    np.testing.assert_allclose(d[0], [5.0, 20.0, 20.0], atol=1e-5)


def test_segment_validity_mask_hides_segments():
    origins, dirs = _rays([0.0])
    seg_a = np.array([[[5.0, -1.0], [3.0, -1.0]]], np.float32)
    seg_b = np.array([[[5.0, 1.0], [3.0, 1.0]]], np.float32)
    valid = np.array([[True, False]])
    assert ray_segments(origins, dirs, seg_a, seg_b, 20.0, valid)[0, 0] == pytest.approx(5.0)
    assert ray_segments(origins, dirs, seg_a, seg_b, 20.0)[0, 0] == pytest.approx(3.0)


def test_circle_hit_inside_and_miss():
    origins, dirs = _rays([0.0, np.pi])
    centers = np.array([[[10.0, 0.0]]], np.float32)
    d = ray_circles(origins, dirs, centers, np.array([2.0], np.float32), max_range=30.0)
    np.testing.assert_allclose(d[0], [8.0, 30.0], atol=1e-4)
    inside = ray_circles(origins, dirs, np.zeros((1, 1, 2), np.float32), np.ones(1), 30.0)
    np.testing.assert_allclose(inside[0], [0.0, 0.0])


def test_oriented_box_hit_matches_geometry():
    origins, dirs = _rays([0.0, np.pi / 2])
    centers = np.array([[[10.0, 0.0]]], np.float32)
    half = np.array([[2.0, 1.0]], np.float32)
    d = ray_boxes(origins, dirs, centers, half, np.zeros((1, 1), np.float32), 50.0)
    np.testing.assert_allclose(d[0], [8.0, 50.0], atol=1e-4)
    # Rotated by 90 degrees the box is 2 long along x instead of 4.
    rot = ray_boxes(origins, dirs, centers, half, np.full((1, 1), np.pi / 2, np.float32), 50.0)
    np.testing.assert_allclose(rot[0, 0], 9.0, atol=1e-4)


def test_batched_shapes_and_nearest_of_many():
    rng = np.random.default_rng(0)
    b, r, k = 3, 16, 5
    origins = np.zeros((b, 2), np.float32)
    dirs = ray_directions(np.zeros(b, np.float32), beam_angles(r))
    centers = rng.uniform(5, 10, size=(b, k, 2)).astype(np.float32)
    d = ray_circles(origins, dirs, centers, np.full(k, 0.5, np.float32), 40.0)
    assert d.shape == (b, r) and d.dtype == np.float32
    assert (d >= 0).all() and (d <= 40.0).all()
    # Adding a primitive never increases a range.
    more = np.concatenate([centers, np.full((b, 1, 2), 3.0, np.float32)], axis=1)
    d2 = ray_circles(origins, dirs, more, np.full(k + 1, 0.5, np.float32), 40.0)
    assert (d2 <= d + 1e-6).all()
