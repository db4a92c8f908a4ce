"""mmrl.spaces: the policy's view, descriptions, differences and the one SpaceMismatchError."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.errors import CheckpointError, DatasetError, MmrlError, SpaceMismatchError
from mmrl.spaces import check, describe, differences, policy_view, summary

CAMERA = spaces.Box(0, 255, (16, 16, 3), np.uint8)
LIDAR = spaces.Box(0.0, 1.0, (8,), np.float32)
TEXT = spaces.Box(0, 30, (6,), np.int64)


def _env(**changes: spaces.Space) -> spaces.Dict:
    return spaces.Dict({"camera": CAMERA, "lidar": LIDAR, "text": TEXT, **changes})


def test_policy_view_transposes_channel_last_images_like_sb3():
    from stable_baselines3.common.vec_env import VecTransposeImage

    env = spaces.Dict([("text", TEXT), ("camera", CAMERA), ("lidar", LIDAR)])
    view = policy_view(env)
    assert view["camera"] == VecTransposeImage.transpose_space(CAMERA, "camera")
    assert view["camera"].shape == (3, 16, 16)
    assert list(view.spaces) == ["text", "camera", "lidar"]  # key order kept
    assert view["lidar"] is LIDAR and view["text"] is TEXT
    assert policy_view(CAMERA).shape == (3, 16, 16)
    assert policy_view(view["camera"]) is view["camera"]  # already channel-first
    assert policy_view(LIDAR) is LIDAR


def test_describe_and_summary():
    assert describe(CAMERA) == "Box(16, 16, 3) uint8 [0, 255]"
    assert describe(spaces.Discrete(3)) == "Discrete(3)"
    assert describe(spaces.Dict(lidar=LIDAR, text=TEXT)) == (
        "lidar: Box(8,) float32 [0, 1], text: Box(6,) int64 [0, 30]"
    )
    assert summary(LIDAR) == {
        "type": "Box", "shape": [8], "dtype": "float32", "low": 0.0, "high": 1.0,
    }  # fmt: skip
    assert summary(spaces.Box(-np.inf, np.inf, (2,)))["low"] is None
    assert summary(spaces.Discrete(4))["n"] == 4


def test_differences_name_the_key_and_what_differs():
    assert differences(_env(), _env()) == []
    names = ("model", "environment e")
    assert differences(_env(camera=spaces.Box(0, 255, (8, 8, 3), np.uint8)), _env(), names) == [
        "key 'camera': model Box(8, 8, 3) uint8 [0, 255] vs environment e "
        "Box(16, 16, 3) uint8 [0, 255] (different shape)"
    ]
    (entry,) = differences(_env(lidar=spaces.Box(0.0, 1.0, (8,), np.float64)), _env(), names)
    assert entry.startswith("key 'lidar': ") and entry.endswith("(different dtype)")
    (entry,) = differences(_env(lidar=spaces.Box(0.0, 2.0, (8,), np.float32)), _env(), names)
    assert entry.endswith("(different bounds)")
    (entry,) = differences(_env(text=spaces.Box(0, 30, (4,), np.int32)), _env(), names)
    assert entry.endswith("(different shape, dtype)")
    missing = spaces.Dict({"camera": CAMERA, "depth": LIDAR})
    assert differences(_env(), missing, names) == [
        "keys only in the model: ['lidar', 'text']",
        "keys only in the environment e: ['depth']",
    ]
    assert differences(spaces.Discrete(3), spaces.Discrete(4), names) == [
        "model Discrete(3) vs environment e Discrete(4) (different size)"
    ]
    assert differences(spaces.Discrete(3), LIDAR) == [
        "expected Discrete(3) vs actual Box(8,) float32 [0, 1] (different type)"
    ]
    # Key order does not count; bounds equal within float rounding do not differ.
    reordered = spaces.Dict([("text", TEXT), ("lidar", LIDAR), ("camera", CAMERA)])
    assert differences(_env(), reordered) == []
    close = spaces.Box(np.float32(1e-9), np.float32(1.0), (8,), np.float32)
    assert differences(_env(), _env(lidar=close)) == []


def test_check_raises_one_space_mismatch_error_naming_the_differing_key():
    other = _env(lidar=spaces.Box(0.0, 1.0, (16,), np.float32))
    with pytest.raises(SpaceMismatchError) as err:
        check(_env(), spaces.Discrete(3), other, spaces.Discrete(5), "dataset d vs env e",
              names=("environment", "dataset"))  # fmt: skip
    message = str(err.value)
    assert message == (
        "dataset d vs env e: spaces differ: observation key 'lidar': environment Box(8,) "
        "float32 [0, 1] vs dataset Box(16,) float32 [0, 1] (different shape); action space: "
        "environment Discrete(3) vs dataset Discrete(5) (different size)"
    )
    # Callers that caught the model-file or the dataset kind of error keep catching it.
    for kind in (MmrlError, CheckpointError, DatasetError, ValueError):
        assert isinstance(err.value, kind)
    check(_env(), spaces.Discrete(3), _env(), spaces.Discrete(3), "same")  # equal: no error
