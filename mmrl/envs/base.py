"""The batched-simulator core every mmrl environment is built on.

An environment is written once, as a :class:`BatchedSimulator` that advances ``n`` copies
with array operations. The Gymnasium env (:class:`MultimodalEnv`) is that simulator with
``n = 1``, and :class:`mmrl.envs.vec_env.BatchedVecEnv` is the same simulator with ``n`` copies
behind SB3's ``VecEnv`` API. Each copy owns its random generator, so copy ``i`` of a vec env
seeded with ``s`` follows exactly the trajectory of a single env reset with seed ``s + i``.

Subclasses implement the hooks ``_reset_envs``, ``_step``, ``_observe``, ``instructions``,
``labels`` and ``expert_action``; action checking, step counting, truncation, reward
summation, the ``info`` dictionaries and the camera frame stack (``camera_frames``) live
here, once.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.envs.config import SensorConfig, check_seed
from mmrl.envs.frames import FramePainter, Scene, status_lines
from mmrl.envs.tokenizer import Tokenizer


@dataclasses.dataclass
class StepResult:
    """What a simulator's ``_step`` hook reports for its ``n`` copies.

    Attributes:
        rewards: Named reward terms, each ``(n,)`` float32; their sum is the scalar reward.
        terminated: ``(n,)`` bool, the episode reached a terminal state (goal, crash ...).
        success: ``(n,)`` bool, the instruction has been carried out (read at episode end).
        collision: ``(n,)`` bool, a collision happened on this step.
    """

    rewards: dict[str, np.ndarray]
    terminated: np.ndarray
    success: np.ndarray
    collision: np.ndarray


def check_actions(actions: Any, space: spaces.Space, n: int, env_id: str) -> np.ndarray:
    """Validates a batch of ``n`` actions of ``space`` and returns it in canonical form.

    One function for every stepper of ``n`` copies (a simulator, or the worker pool that
    splits one batch over processes), so the checks and messages are the same everywhere.

    Discrete spaces give ``(n,)`` int64; Box spaces give ``(n, *shape)`` float32 clipped
    to the bounds (clipping out-of-bound continuous actions is documented behaviour).

    Raises:
        ValueError: Wrong shape, NaN or infinite values, or discrete ids out of range.
    """
    arr = np.asarray(actions)
    if isinstance(space, spaces.Discrete):
        if arr.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"{env_id}: expected {n} discrete action(s) of shape ({n},), got shape {arr.shape}"
            )
        arr = arr.reshape(n)
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ValueError(f"{env_id}: action contains NaN or infinity: {arr}")
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"{env_id}: discrete actions must be integers: {arr}")
        elif arr.dtype.kind not in "iub":
            raise ValueError(f"{env_id}: discrete actions must be integers, got {arr}")
        arr = arr.astype(np.int64)
        if (arr < 0).any() or (arr >= space.n).any():
            raise ValueError(
                f"{env_id}: discrete action out of range, allowed 0..{space.n - 1}, got {arr}"
            )
        return arr
    assert isinstance(space, spaces.Box)
    if arr.shape != (n, *space.shape):
        raise ValueError(
            f"{env_id}: expected actions of shape {(n, *space.shape)}, got {arr.shape}"
        )
    if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
        raise ValueError(f"{env_id}: action contains NaN or infinity: {arr}")
    return np.clip(arr, space.low, space.high).astype(np.float32)


def infos_from_arrays(arrays: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``info`` dict per copy from a step's batched info contents.

    Args:
        arrays: What :meth:`BatchedSimulator.info_arrays` returns for ``n`` copies (or the
            worker pool's concatenation of its workers' ones).

    Returns:
        ``n`` dicts: ``instruction``, ``is_success``, ``collision``, ``rewards``, ``labels``.
    """
    n = len(arrays["instruction"])
    return [
        {
            "instruction": text,
            "is_success": success,
            "collision": collision,
            "rewards": rewards,
            "labels": labels,
        }
        for text, success, collision, rewards, labels in zip(
            arrays["instruction"],
            arrays["is_success"].tolist(),
            arrays["collision"].tolist(),
            _row_dicts(arrays["rewards"], n),
            _row_dicts(arrays["labels"], n),
        )
    ]


def _row_dicts(columns: dict[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    """``n`` dicts, row ``i`` mapping each key to ``columns[key][i]`` as a Python scalar.

    Zips rows out of columns converted once with ``tolist``: this runs every step for every
    copy (SB3's per-copy infos), where indexing each column per copy costs ~30 % more.
    """
    if not columns:
        return [{} for _ in range(n)]
    keys = list(columns)
    return [dict(zip(keys, row)) for row in zip(*(v.tolist() for v in columns.values()))]


def reset_infos_from_arrays(arrays: dict[str, Any]) -> list[dict[str, Any]]:
    """One reset ``info`` dict per copy (``instruction``, ``is_success`` False, ``labels``)
    from :meth:`BatchedSimulator.reset_info_arrays`."""
    texts = arrays["instruction"]
    return [
        {"instruction": text, "is_success": False, "labels": labels}
        for text, labels in zip(texts, _row_dicts(arrays["labels"], len(texts)))
    ]


class BatchedSimulator(abc.ABC):
    """``n`` independent copies of one environment, advanced together.

    Attributes:
        num_envs: Number of copies.
        observation_space: Space of *one* copy's observation (a flat ``spaces.Dict``).
        action_space: Space of one copy's action.
        max_episode_steps: Steps after which an episode is truncated.
        rngs: One ``numpy.random.Generator`` per copy; all randomness of copy ``i`` must come
            from ``rngs[i]`` so batched and single runs agree.
        elapsed: ``(n,)`` int64 steps taken in the current episode of each copy.
    """

    env_id: ClassVar[str] = ""
    reward_terms: ClassVar[tuple[str, ...]] = ()
    label_names: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Per integer label of ``info["labels"]``, the name of each value (value ``i`` is
    ``label_names[key][i]``), e.g. ``{"target_color": ("red", ...)}``: evaluation names
    instruction groups with them, whatever the environment (no per-env special cases)."""
    action_names: ClassVar[tuple[str, ...] | None] = None
    """Name of each discrete action (action ``i`` is ``action_names[i]``, e.g. ``"FASTER"``),
    shown on video frames and replays; ``None`` where actions have no names. Used only while
    ``action_space`` is ``Discrete`` (a continuous variant's actions stay numbers)."""
    state_names: ClassVar[tuple[str, ...]] = ()
    """Name of each ``state`` entry (entry ``i`` is ``state_names[i]``, e.g. ``"speed"``),
    printed beside its value on frames; ``()`` where entries have no names."""
    painter: ClassVar[type[FramePainter]] = FramePainter
    """How frames of this env are drawn: panel titles from the config, camera marks, extra
    panels (see :mod:`mmrl.envs.frames`)."""
    unversioned_class: ClassVar[type | None] = None
    """The class a simulator pickled before env versions existed (no ``scene_version`` in
    its state, e.g. in an old run checkpoint) is restored as: its v0 class."""

    observation_space: spaces.Dict
    action_space: spaces.Space
    max_episode_steps: int

    def __getstate__(self) -> dict[str, Any]:
        """The simulator's state without what only rendering keeps (frame trails)."""
        state = dict(self.__dict__)
        state.pop("_frame_trails", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restores a pickled simulator; one from before versions resumes as v0, exactly."""
        if "scene_version" not in state and self.unversioned_class is not None:
            self.__class__ = self.unversioned_class
            state = self._upgrade_unversioned(state)
        self.__dict__.update(state)

    def _upgrade_unversioned(self, state: dict[str, Any]) -> dict[str, Any]:
        """Adds what a simulator pickled before versions lacks (override to add more)."""
        state["scene_version"] = 0
        return state

    def __init__(self, num_envs: int, sensors: SensorConfig) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        sensors.validate()
        self.num_envs = int(num_envs)
        self.sensors = sensors
        self.tokenizer = Tokenizer(max_len=sensors.max_text_len)
        self.rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self.success = np.zeros(num_envs, dtype=bool)
        if sensors.camera_frames > 1:
            self._init_frame_stack(sensors)

    def _init_frame_stack(self, sensors: SensorConfig) -> None:
        """Allocates the camera history of ``camera_frames > 1`` (see :meth:`observe`).

        ``_frames`` is ``(n, S, S, 3h)`` uint8, the last ``h = (k - 1) s + 1`` frames
        (``k`` frames, stride ``s``), oldest first; the observation is every ``s``-th slot,
        the last included. The last slot holds a copy's current frame once :meth:`observe`
        has rendered it (``_frame_current``); a copy reset since (``_frame_first``) gets the
        first frame in every slot instead.
        """
        n, size = self.num_envs, sensors.camera_size
        history = (sensors.camera_frames - 1) * sensors.camera_frame_stride + 1
        self._frames = np.zeros((n, size, size, 3 * history), dtype=np.uint8)
        self._frame_current = np.zeros(n, dtype=bool)
        self._frame_first = np.ones(n, dtype=bool)

    def contract_observation_space(self, state_dim: int, state_bound: float) -> spaces.Dict:
        """The observation space every mmrl environment shares, from the sensor config.

        Args:
            state_dim: Length of the ``state`` proprioception vector.
            state_bound: ``state`` values lie in ``[-state_bound, state_bound]``.

        Returns:
            ``Dict(camera (S, S, 3k) uint8, lidar (beams,) float32 in [0, 1], text (L,) int64,
            state (state_dim,) float32)`` in that key order; ``k`` is ``camera_frames``.
        """
        size = self.sensors.camera_size
        channels = 3 * self.sensors.camera_frames
        # A list of pairs keeps the contract's key order (a plain dict would be sorted).
        return spaces.Dict(
            [
                ("camera", spaces.Box(0, 255, (size, size, channels), np.uint8)),
                ("lidar", spaces.Box(0.0, 1.0, (self.sensors.lidar_beams,), np.float32)),
                (
                    "text",
                    spaces.Box(
                        0, self.tokenizer.vocab_size - 1, (self.sensors.max_text_len,), np.int64
                    ),
                ),
                ("state", spaces.Box(-state_bound, state_bound, (state_dim,), np.float32)),
            ]
        )

    # ------------------------------------------------------------------ hooks to implement
    @abc.abstractmethod
    def _reset_envs(self, idx: np.ndarray) -> None:
        """Starts new episodes in the copies ``idx`` (``(k,)`` int64), drawing from ``rngs``."""

    @abc.abstractmethod
    def _step(self, actions: np.ndarray) -> StepResult:
        """Advances every copy by one step with already-validated ``actions``."""

    @abc.abstractmethod
    def _observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Batched observation of copies ``idx`` (all when ``None``), each key ``(m, ...)``,
        with the current camera frame only (``(m, S, S, 3)``; :meth:`observe` stacks frames).

        A pure function of the state: calling it twice gives the same arrays.
        """

    @abc.abstractmethod
    def instructions(self) -> list[str]:
        """The current instruction string of every copy."""

    @abc.abstractmethod
    def labels(self) -> dict[str, np.ndarray]:
        """Privileged labels of every copy, each ``(n,)`` (float32 or int64)."""

    @abc.abstractmethod
    def expert_action(self) -> np.ndarray:
        """Actions of the scripted expert for every copy (batched like ``step``'s input)."""

    def render_frames(self) -> list[np.ndarray]:
        """RGB frames (H, W, 3) uint8 for humans, one per copy: titled sensor panels (and the
        painter's extra panels), instruction, step, the last step's reward terms, success and
        collision, and the named state entries (:func:`mmrl.envs.visualize.compose_frame`).

        Extra panels see the scenes of the episode so far that were rendered or noted
        (:meth:`note_scenes`; the Navigation map draws the path from them). They are read on
        the rendering path only, so a ``step`` without rendering pays nothing for them.
        """
        from mmrl.envs.visualize import compose_frame

        obs = self.observe()
        instructions = self.instructions()
        spec = self.painter.spec(self)
        last: dict[str, Any] = getattr(self, "_last_step", {})
        frames = []
        for i in range(self.num_envs):
            t = int(self.elapsed[i])
            terms = {k: float(v[i]) for k, v in last.get("rewards", {}).items()} if t else {}
            collision = bool(t and last.get("collision", np.zeros(i + 1, bool))[i])
            lines = [f"step {t}", *status_lines(terms, bool(self.success[i]), collision)]
            frames.append(
                compose_frame(
                    {k: v[i] for k, v in obs.items()},
                    instructions[i],
                    lines,
                    spec,
                    self.painter.panels(self._frame_trail(i)),
                )
            )
        return frames

    def note_scenes(self) -> None:
        """Adds every copy's current scene to its episode's trail without drawing (a
        ``render_mode="rgb_array"`` env calls this each reset and step, so a frame rendered
        now and then still shows the whole path; nothing for painters without scenes)."""
        if self.painter.scene is not FramePainter.scene:
            for i in range(self.num_envs):
                self._frame_trail(i)

    def _frame_trail(self, i: int) -> list[Scene]:
        """Copy ``i``'s scenes of this episode's rendered frames, the current one appended
        (empty for painters without scenes)."""
        scene = self.painter.scene(self, i)
        if scene is None:
            return []
        trails: list[list[tuple[int, Scene]]] = self.__dict__.setdefault(
            "_frame_trails", [[] for _ in range(self.num_envs)]
        )
        t = int(self.elapsed[i])
        if trails[i] and trails[i][-1][0] >= t:  # a new episode (or a repeated render)
            trails[i] = [entry for entry in trails[i] if entry[0] < t] if t else []
        trails[i].append((t, scene))
        return [entry[1] for entry in trails[i]]

    # ------------------------------------------------------------------ shared driver
    def seed(self, seeds: Sequence[int | None]) -> None:
        """Re-seeds copy ``i`` with ``seeds[i]`` (``None`` leaves its generator as is).

        Raises:
            ConfigError: A seed is negative, above ``2**32 - 1`` or not an integer.
        """
        for seed in seeds:
            check_seed("seed", seed)
        for i, seed in enumerate(seeds):
            if seed is not None:
                self.rngs[i] = np.random.default_rng(seed)

    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Batched observation of copies ``idx`` (all when ``None``), each key ``(m, ...)``.

        With ``camera_frames = k > 1`` the ``camera`` key is ``(m, S, S, 3k)`` uint8: the
        copy's last ``k`` frames along the channels (every ``camera_frame_stride``-th one),
        oldest first, the current one last; a slot from before the copy's reset shows the
        episode's first frame (nothing of the previous episode). Observing again without a
        step gives the same arrays. All keys are new arrays the caller may write to.
        """
        obs = self._observe(idx)
        if self.sensors.camera_frames == 1:
            return obs
        sel = slice(None) if idx is None else np.asarray(idx, dtype=np.int64)
        # Viewed with one 3-byte item per pixel, a frame slot is a plain (n, S, S) array, so
        # NumPy copies whole pixels instead of looping over 3-byte channel runs (3x faster).
        frames = self._frames.view("V3")  # (n, S, S, h)
        camera = np.ascontiguousarray(obs["camera"]).view("V3")[..., 0]  # (m, S, S)
        frames[sel, ..., -1] = camera
        first = self._frame_first[sel]
        if first.any():
            rows = np.arange(self.num_envs)[sel][first]
            for slot in range(frames.shape[-1] - 1):  # each slot for all those copies at once
                frames[rows, ..., slot] = camera[first]
        self._frame_current[sel] = True
        self._frame_first[sel] = False
        stride = self.sensors.camera_frame_stride
        if stride == 1:
            # Fancy indexing copies; a full slice must be copied so later shifts leave it be.
            obs["camera"] = self._frames.copy() if idx is None else self._frames[sel]
        else:
            # Slots 0, s, ..., h - 1: every s-th frame, the oldest kept and the current one.
            picked = np.ascontiguousarray(frames[sel, ..., ::stride])  # (m, S, S, k) copied
            obs["camera"] = picked.view(np.uint8)
        return obs

    def _record_frames(self) -> None:
        """Before a step (``k > 1``): observes the copies whose current frame is not in the
        history yet (stepped right after a reset, or twice without an observation), so the
        history skips no frame whoever drives the simulator."""
        unseen = np.flatnonzero(~self._frame_current)
        if unseen.size:
            self.observe(unseen)

    def _shift_frames(self) -> None:
        """After a step (``k > 1``): moves every copy's history one slot older; the last
        slot is rewritten by the next :meth:`observe` with the new frame."""
        # One memmove of the whole buffer, 3 bytes down (20x faster than the strided
        # frames[..., :-3] = frames[..., 3:]; NumPy handles the overlap): every slot gets its
        # successor's frame, and each pixel's last slot gets the next pixel's oldest one,
        # which no one reads: observe writes the new frame there first (_frame_current).
        flat = self._frames.reshape(-1)  # a view: the buffer is C-contiguous
        flat[:-3] = flat[3:]
        self._frame_current[:] = False

    def reset_envs(self, idx: np.ndarray | None = None) -> None:
        """Starts new episodes in copies ``idx`` (all when ``None``)."""
        idx = np.arange(self.num_envs) if idx is None else np.asarray(idx, dtype=np.int64)
        if idx.size:
            self.elapsed[idx] = 0
            self.success[idx] = False
            self._reset_envs(idx)
            if self.sensors.camera_frames > 1:
                self._frame_current[idx] = False
                self._frame_first[idx] = True

    def check_actions(self, actions: Any) -> np.ndarray:
        """Validates a batch of ``num_envs`` actions (see :func:`check_actions`)."""
        return check_actions(actions, self.action_space, self.num_envs, self.env_id)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, StepResult]:
        """Validates ``actions`` and steps every copy.

        Returns:
            ``(reward (n,) float32, terminated (n,) bool, truncated (n,) bool, result)``.
        """
        actions = self.check_actions(actions)
        stacked = self.sensors.camera_frames > 1
        if stacked:
            self._record_frames()
        result = self._step(actions)
        if stacked:
            self._shift_frames()
        self.elapsed += 1
        # Kept for frames (reward terms, collision): references, nothing computed.
        self._last_step = {"rewards": result.rewards, "collision": result.collision}
        self.success |= result.success
        reward = np.zeros(self.num_envs, dtype=np.float32)
        for term in result.rewards.values():
            reward += term
        # A copy: a hook may return its own state array, which the auto-reset then rewrites.
        terminated = np.array(result.terminated, dtype=bool)
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        return reward, terminated, truncated, result

    def info_arrays(self, result: StepResult) -> dict[str, Any]:
        """The step's ``info`` contents batched over copies (what :meth:`infos` splits up).

        Returns:
            ``instruction`` (list of n str), ``is_success`` and ``collision`` ((n,) bool),
            ``rewards`` and ``labels`` (name to (n,) array). A snapshot that outlives the
            auto-reset of finished copies: ``success`` and ``collision`` are copied because
            resets rewrite them in place (Navigation's ``collision`` is its ``bumped``
            state); ``_step``'s reward terms and :meth:`labels` are fresh arrays every call.
        """
        return {
            "instruction": self.instructions(),
            "is_success": self.success.copy(),
            "collision": np.array(result.collision, dtype=bool),
            "rewards": result.rewards,
            "labels": self.labels(),
        }

    def infos(
        self, result: StepResult, arrays: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """One ``info`` dict per copy: instruction, is_success, collision, rewards, labels
        (from ``arrays`` = :meth:`info_arrays` when already computed)."""
        return infos_from_arrays(self.info_arrays(result) if arrays is None else arrays)

    def reset_info_arrays(self, idx: np.ndarray | None = None) -> dict[str, Any]:
        """The reset ``info`` contents of copies ``idx`` (all when ``None``), batched:
        ``instruction`` (list of str) and ``labels`` (name to ``(k,)`` array)."""
        instructions = self.instructions()
        labels = self.labels()
        if idx is None:
            return {"instruction": instructions, "labels": labels}
        return {
            "instruction": [instructions[i] for i in idx],
            "labels": {k: v[idx] for k, v in labels.items()},
        }

    def reset_infos(self, idx: np.ndarray | None = None) -> list[dict[str, Any]]:
        """``info`` dicts returned by ``reset`` for copies ``idx``."""
        return reset_infos_from_arrays(self.reset_info_arrays(idx))


class MultimodalEnv(gym.Env):
    """A Gymnasium env that runs one copy of a :class:`BatchedSimulator`.

    Subclasses set ``simulator_cls`` and document the task (Gymnasium docstring sections).

    Args:
        render_mode: ``None``; ``"rgb_array"``: :meth:`render` returns the frame (camera,
            lidar polar plot and instruction); ``"human"``: ``reset`` and ``step`` show that
            frame in a window at ``metadata["render_fps"]`` (:mod:`mmrl.envs.viewer`, the
            ``viewer`` extra) and :meth:`render` returns ``None``, as Gymnasium specifies.
        **kwargs: Passed to the simulator; unknown names raise ``ValueError``.

    Raises:
        MissingDependencyError: ``render_mode="human"`` without pygame-ce installed.
    """

    simulator_cls: ClassVar[type[BatchedSimulator]]
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["human", "rgb_array"],
        "render_fps": 15,
    }

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.viewer = None
        if render_mode == "human":
            # Opened here so a missing extra or display fails at make(), not mid-episode.
            from mmrl.envs.viewer import Viewer

            self.viewer = Viewer(f"mmrl {self.simulator_cls.env_id}", self.metadata["render_fps"])
        self._kwargs = dict(kwargs)
        self.sim = self.simulator_cls(1, **kwargs)
        self.observation_space = self.sim.observation_space
        self.action_space = self.sim.action_space
        self._needs_reset = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # Gymnasium's np_random is Generator(PCG64(seed)), the same stream as
        # np.random.default_rng(seed), so a vec-env copy seeded with s matches this env.
        self.sim.rngs[0] = self.np_random
        self.sim.reset_envs()
        self._needs_reset = False
        obs = self.sim.observe()
        self._show_or_note()
        return {k: v[0] for k, v in obs.items()}, self.sim.reset_infos()[0]

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        arr = np.asarray(action)
        expected = self.action_space.shape  # () for Discrete, which also takes shape (1,)
        if arr.shape != expected and not (expected == () and arr.shape == (1,)):
            # Checked here so the message shows the user's shape, not the batched (1, ...).
            raise ValueError(
                f"{self.sim.env_id}: expected an action of shape {expected}, got shape {arr.shape}"
            )
        reward, terminated, truncated, result = self.sim.step(arr[None])
        obs = self.sim.observe()
        info = self.sim.infos(result)[0]
        done = bool(terminated[0] or truncated[0])
        self._needs_reset = done
        self._show_or_note()
        return (
            {k: v[0] for k, v in obs.items()},
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            info,
        )

    def _show_or_note(self) -> None:
        """After a reset or step: ``human`` shows the frame; ``rgb_array`` notes the scene
        (a later :meth:`render` then draws the whole path so far, as the window does)."""
        if self.render_mode == "human":
            self.render()
        elif self.render_mode == "rgb_array":
            self.sim.note_scenes()

    def expert_action(self) -> Any:
        """The scripted expert's action for the current state (privileged information)."""
        action = self.sim.expert_action()[0]
        return int(action) if isinstance(self.action_space, spaces.Discrete) else action

    def render(self) -> np.ndarray | None:
        """The current frame (``rgb_array``), or ``None`` after showing it in the window
        (``human``; ``reset`` and ``step`` call this themselves)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; use render_mode='rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            return self.sim.render_frames()[0]
        if self.viewer is None:  # the window was closed
            return None
        self.viewer.show(self.sim.render_frames()[0])
        if self.viewer.poll().quit:
            # Closing the window ends the showing, not the episode: a script stepping this
            # env keeps running, without a window (Gymnasium's envs behave alike).
            self.close()
        return None

    def close(self) -> None:
        """Closes the window of ``render_mode="human"`` (nothing else holds resources)."""
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None
