"""``mmrl collect``: roll a policy out through the batched ``VecEnv`` into a Minari dataset.

All copies step together; each step's observations, actions and infos are written into
per-copy buffers with one vectorised assignment per key, and a finished episode is
sliced out of its column. Episodes are counted when they *start* (the first ``N`` started
episodes are kept, the rest discarded), so the dataset is not biased towards short
episodes as "keep the first N to finish" would be.

Layout of each Minari episode (``T`` steps, Minari's own convention):

* ``observations[key]``: ``T + 1`` rows (reset observation ... final observation), as the env
  emits them (images channel-last ``uint8``);
* ``actions``, ``rewards``, ``terminations``, ``truncations``: ``T`` rows; actions are the
  ones executed (epsilon noise included);
* ``infos`` (``T + 1`` rows, row ``t`` describes observation ``t``): ``instruction`` (str),
  ``is_success``, ``collision``, ``rewards/<term>``, ``labels/<name>``,
  ``behaviour_log_prob`` (``log mu(a_t|s_t)`` of the executed action under the behaviour
  policy, epsilon noise included, exact; a log-probability for discrete actions and a
  log-density for continuous ones, ``+inf`` marking a deterministic policy's continuous
  choice, see :mod:`mmrl.densities`; the final row NaN) and, when the policy
  is the expert or ``expert_labels`` is set, ``expert_action`` (the expert's choice at
  observation ``t`` even when noise replaced it; the final row, which has no decision, holds
  -1 / NaN).

The metadata's ``mmrl.behaviour`` names the behaviour policy that produced the data
(``policy``, ``epsilon``, ``stochastic``, and ``log_prob_key``), for ``mmrl evaluate-offline``.

The dataset is built in a hidden temporary folder inside Minari's datasets folder and renamed
into place, so readers never see a half-written dataset and an interrupted run leaves none.
Chunks of finished episodes are written on a background thread while the rollout goes on
(:mod:`mmrl.data.background`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.commands.collect import CollectOptions
from mmrl.config import ConfigError, EnvConfig, RunConfig
from mmrl.data.background import WRITE_MODES, BackgroundWriter, WriterProcess
from mmrl.data.dataset import (
    BEHAVIOUR_LOG_PROB_KEY,
    EXPERT_ACTION_KEY,
    DatasetError,
    dataset_root,
    validate_dataset_id,
)
from mmrl.data.writer import HDF5_WRITERS, AtomicDatasetWriter, EpisodeRecorder
from mmrl.densities import epsilon_mixture, point_mass_log_prob
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.envs.workers import WorkerVecEnv, check_n_workers
from mmrl.errors import CheckpointError
from mmrl.policies import (
    REFERENCE_POLICIES,
    find_expert,
    load_policy,
    random_actions,
    recorded_env,
    vec_env_layers,
)
from mmrl.progress import ProgressLines

__all__ = ["BUILTIN_POLICIES", "CollectResult", "collect", "find_expert", "random_actions"]

PolicyFn = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]
BUILTIN_POLICIES = REFERENCE_POLICIES
#: ``writes="auto"`` uses a writer process from this many chunks (``flush_every`` episodes
#: each) on: its start (~1 s, a fresh Python importing h5py and Minari) pays off only when
#: there are writes to overlap.
PROCESS_WRITES_FROM = 4


@dataclasses.dataclass
class CollectResult:
    """What :func:`collect` wrote and measured.

    Attributes:
        dataset_id: Minari id.
        path: Dataset folder.
        episodes: Episodes written.
        steps: Transitions written.
        env_steps: Environment steps taken (includes discarded surplus episodes).
        rollout_seconds: Wall time stepping the env and recording, less the time spent
            waiting for HDF5 writes (which overlap the rollout unless ``writes`` is
            ``"inline"``).
        write_seconds: Wall time of the HDF5 writes (~30 small datasets per episode),
            overlapped or not.
        write_cpu_seconds: CPU time of the thread that wrote (on a background thread, wall
            time includes waiting for the GIL the rollout holds; this does not), in this
            process or the writer process.
        total_seconds: Wall time of everything.
        steps_per_second: ``env_steps / rollout_seconds`` (the rollout throughput).
        steps_per_cpu_second: ``env_steps`` per CPU-second of this process in the rollout
            (HDF5 excluded); what an otherwise idle core would deliver.
        end_to_end_steps_per_second: ``env_steps / total_seconds``.
        mean_return: Mean undiscounted episode return.
        success_rate: Fraction of episodes with ``is_success`` at their last step.
    """

    dataset_id: str
    path: Path
    episodes: int
    steps: int
    env_steps: int
    rollout_seconds: float
    write_seconds: float
    write_cpu_seconds: float
    total_seconds: float
    steps_per_second: float
    steps_per_cpu_second: float
    end_to_end_steps_per_second: float
    mean_return: float
    success_rate: float


# ---------------------------------------------------------------------------- vec env access
def _reset_infos(venv: Any) -> list[dict[str, Any]]:
    """The innermost VecEnv's ``reset_infos``: SB3's VecEnv wrappers keep empty ones."""
    return list(vec_env_layers(venv)[-1].reset_infos)


def _episode_rows(venv: Any) -> int:
    """Recorder rows for the longest episode of an mmrl vec env (its step limit + the
    final observation + one spare), or a small start that grows for other envs."""
    layer = vec_env_layers(venv)[-1]
    # BatchedVecEnv's simulator holds the limit; WorkerVecEnv holds it itself.
    limit = getattr(getattr(layer, "sim", layer), "max_episode_steps", None)
    return int(limit) + 2 if isinstance(limit, int | np.integer) and limit > 0 else 64


# ---------------------------------------------------------------------------- the command
def collect(
    env: str | EnvConfig | None = RunConfig.env_name,
    policy: str = CollectOptions.policy,
    episodes: int = CollectOptions.episodes,
    dataset_id: str = "mmrl/driving/expert-v0",
    *,
    epsilon: float = CollectOptions.epsilon,
    seed: int = CollectOptions.seed,
    n_envs: int | None = None,
    n_workers: int = CollectOptions.n_workers,
    force: bool = False,
    progress: bool = False,
    jpeg: bool = False,
    flush_every: int = 64,
    writes: str = "auto",
    venv: Any = None,
    description: str | None = None,
    expert_labels: bool = False,
    stochastic: bool = False,
    log_interval: float | None = None,
    hdf5_writer: str = "direct",
) -> CollectResult:
    """Rolls ``policy`` out for ``episodes`` episodes and writes a Minari dataset.

    Args:
        env: Env preset name/path, Gymnasium id or :class:`EnvConfig` (``None`` with a run
            folder as ``policy``: the run's environment).
        policy: ``"expert"`` (the env's scripted expert), ``"random"``, a training run
            folder / ``model.zip``, or a pretraining checkpoint ``.pt`` with a BC head
            (deterministic actions).
        episodes: Episodes to write (>= 1).
        dataset_id: Minari id, ``(namespace/)name-v<version>``.
        epsilon: Probability per step of replacing the action by a uniform random one, for
            state coverage beyond the expert's trajectories (the expert's own choice is
            still logged in ``infos["expert_action"]``).
        seed: Seeds the environment copies (copy ``i``: ``seed + i``) and the noise.
        n_envs: Copies stepped together (default: the preset's).
        n_workers: Processes stepping the copies (1: this one); the same dataset either way.
        force: Replace an existing dataset with this id.
        progress: Show a tqdm progress bar.
        jpeg: Store images JPEG-encoded (Minari's option; smaller, lossy). Default: raw.
        flush_every: Episodes buffered in memory between HDF5 writes.
        writes: How chunks are written (:data:`WRITE_MODES`): ``"process"`` in a writer
            process while stepping goes on (:class:`~mmrl.data.background.WriterProcess`:
            the write gets a core of its own); ``"thread"`` on a background thread
            (:class:`~mmrl.data.background.BackgroundWriter`: h5py holds the GIL, so it
            overlaps little); ``"inline"`` before stepping on; ``"auto"`` (default): a
            process when at least :data:`PROCESS_WRITES_FROM` chunks are written (its ~1 s
            start pays only then), else inline. The dataset is the same every way.
        venv: Use this already-built SB3 ``VecEnv`` instead of building one from ``env``
            (``env`` then only names it in the metadata).
        description: Dataset description (default: generated).
        expert_labels: Also log the scripted expert's action in the states ``policy``
            visits (``infos["expert_action"]``, then the BC target): DAgger-style relabelling
            of a learner's own states, which behaviour cloning from expert trajectories
            never sees. Always on for ``policy="expert"``.
        stochastic: Sample a trained policy's actions from its action distribution
            (default: its greedy actions). Either way the probability of every executed
            action is logged (``infos["behaviour_log_prob"]``).
        log_interval: Print a progress line (episodes and steps done, steps/s, ETA, success
            and return so far) every ``log_interval`` seconds and a last one when done, for
            logs that are not a terminal (:mod:`mmrl.progress`); ``None``: no lines.
        hdf5_writer: ``"direct"`` writes the episodes in Minari's HDF5 layout in one pass
            per chunk (:mod:`mmrl.data.minari_hdf5`, several times faster); ``"minari"``
            with Minari's own ``update_episodes`` (the reference). The same dataset either
            way.

    Returns:
        A :class:`CollectResult`.

    Raises:
        DatasetError: Existing id without ``force``, malformed id, model/env mismatch.
        ConfigError: Bad arguments, unknown preset, or no expert in this environment.
    """
    _check_arguments(dataset_id, episodes, epsilon, n_envs, hdf5_writer, writes)
    _refuse_existing_dataset(dataset_id, force)
    if writes == "auto":
        writes = "process" if episodes >= PROCESS_WRITES_FROM * flush_every else "inline"
    own_venv = venv is None
    env_name, env_config = _resolve_env(env, policy) if own_venv else ("custom", EnvConfig())
    venv = _open_venv(venv, env_name, env_config, n_envs, n_workers, seed)
    with contextlib.ExitStack() as stack:
        if own_venv:  # closed however collection ends, refusals of the policy included
            stack.callback(venv.close)
        behaviour = _behaviour(policy, venv, env_name, epsilon, expert_labels, stochastic, seed)
        writer_class = WriterProcess if writes == "process" else AtomicDatasetWriter
        writer = writer_class(
            dataset_id=dataset_id,
            env_spec=_env_spec(env_config) if own_venv else None,
            obs_space=venv.observation_space,
            action_space=venv.action_space,
            algorithm_name=f"mmrl-{policy if policy in BUILTIN_POLICIES else 'run'}",
            author="mmrl",
            description=description
            or f"{env_name}: {episodes} episodes of the {policy} policy (epsilon {epsilon})",
            jpeg_encoding=jpeg,
            hdf5_writer=hdf5_writer,
        )
        # The writer's temporary folder exists from here: an interrupt (SIGTERM) anywhere
        # after it, even before the rollout's own try below, must remove it.
        try:
            rollout = _Rollout(
                venv, writer, behaviour, episodes, seed, flush_every=flush_every,
                writes=writes, progress=progress, log_interval=log_interval,
                dataset_id=dataset_id, env_name=env_name,
            )  # fmt: skip
        except BaseException:
            writer.discard()
            raise
        stack.callback(rollout.close)  # before the venv's close
        try:
            rollout.run()
            meta = _metadata(env_name, env_config, own_venv, behaviour, seed, rollout)
            path = writer.commit({"mmrl": meta}, force)
        except BaseException:
            rollout.stop_writes()  # the write in progress ends before its folder is removed
            writer.discard()
            raise
    return rollout.result(dataset_id, path)


# ---------------------------------------------------------------------------- its steps
def _check_arguments(
    dataset_id: str,
    episodes: int,
    epsilon: float,
    n_envs: int | None,
    hdf5_writer: str,
    writes: str,
) -> None:
    validate_dataset_id(dataset_id)
    if writes not in WRITE_MODES:
        allowed = ", ".join(WRITE_MODES)
        raise ConfigError(f"must be one of {allowed}, got {writes!r}", field="writes")
    if hdf5_writer not in HDF5_WRITERS:
        raise ConfigError(
            f"must be one of {', '.join(HDF5_WRITERS)}, got {hdf5_writer!r}", field="hdf5_writer"
        )
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"--epsilon must be in [0, 1], got {epsilon}")
    if n_envs is not None and n_envs < 1:
        raise ConfigError(f"--n-envs must be >= 1, got {n_envs}")


def _refuse_existing_dataset(dataset_id: str, force: bool) -> None:
    root = dataset_root()
    if (root / dataset_id).exists() and not force:
        raise DatasetError(
            f"dataset {dataset_id!r} already exists at {root / dataset_id}; pass --force to "
            "replace it or use a new version (e.g. -v1)"
        )


def _check_policy_exists(policy: str) -> None:
    if policy not in BUILTIN_POLICIES and not Path(policy).exists():
        raise ConfigError(
            f"--policy {policy!r}: not 'expert', 'random', or an existing run folder / "
            "model.zip / pretraining checkpoint (.pt)"
        )


def _resolve_env(env: str | EnvConfig | None, policy: str) -> tuple[str, EnvConfig]:
    from mmrl.make import resolve_env

    if env is None and policy not in BUILTIN_POLICIES:
        _check_policy_exists(policy)
        try:
            recorded = recorded_env(policy)
        except CheckpointError as err:
            raise ConfigError(f"--policy {err}") from None
        if recorded is None:
            raise ConfigError(
                f"--policy {policy}: a bare model file (no run folder around it to take the "
                "environment from); pass --env"
            )
        return recorded
    name = env if env is not None else RunConfig.env_name
    return (name if isinstance(name, str) else name.env_id), resolve_env(name)


def _open_venv(
    venv: Any,
    env_name: str,
    env_config: EnvConfig,
    n_envs: int | None,
    n_workers: int,
    seed: int,
) -> Any:
    """The vec env stepped, seeded: ``venv`` when given, else built from ``env_config``."""
    if venv is not None:
        if n_workers != 1:
            raise ConfigError(
                "must be 1 with a given venv (build it with workers)", field="n_workers"
            )
        venv.seed(seed)
        return venv
    from mmrl.make import make_training_vec_env

    check_n_workers(n_workers, env_config.n_envs if n_envs is None else n_envs)
    try:
        return make_training_vec_env(
            env_config, n_envs=n_envs, seed=seed, monitor=False, n_workers=n_workers
        )
    except ValueError as err:
        raise ConfigError(f"--env {env_name}: {err}") from None


@dataclasses.dataclass
class _Behaviour:
    """The behaviour policy: how each step's actions are chosen, and their probability.

    Attributes:
        name: ``policy`` as given (``expert``, ``random``, a path).
        action_space: The vec env's action space.
        epsilon: Probability per copy and step of a uniform random action instead.
        stochastic: Sample a trained policy's actions (else its greedy ones).
        record_expert: Also log the scripted expert's choice.
        expert_fn: The scripted expert of the env's current states (``None``: none).
        policy_fn: ``(obs, episode_starts) -> actions``; ``None``: the scripted expert.
        actor: The loaded policy behind ``policy_fn`` (``None`` for the expert).
    """

    name: str
    action_space: spaces.Space
    epsilon: float
    stochastic: bool
    record_expert: bool
    expert_fn: Callable[[], np.ndarray] | None
    policy_fn: PolicyFn | None
    actor: Any

    def act(
        self, obs: dict[str, np.ndarray], starts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(executed actions, the expert's actions or None, log mu(a|s))`` of one step,
        for ``n`` copies: actions ``(n, *action_shape)``, ``log mu`` ``(n,)`` float64."""
        n = len(starts)
        wants_expert = self.record_expert or self.policy_fn is None
        expert = self.expert_fn() if wants_expert else None
        base = np.array(
            expert if self.policy_fn is None else self.policy_fn(obs, starts), copy=True
        )
        actions = base.copy()
        if self.epsilon > 0.0:
            noisy = rng.random(n) < self.epsilon
            if noisy.any():
                actions[noisy] = random_actions(self.action_space, n, rng)[noisy]
        # log mu(a|s) of the executed action: the base policy's, mixed with the noise.
        if self.policy_fn is None or not (self.stochastic or self.name == "random"):
            base_lp = point_mass_log_prob(self.action_space, actions, base)
        else:
            base_lp = self.actor.log_prob(obs, actions)
        return actions, expert, epsilon_mixture(base_lp, self.action_space, self.epsilon)


def _behaviour(
    policy: str,
    venv: Any,
    env_name: str,
    epsilon: float,
    expert_labels: bool,
    stochastic: bool,
    seed: int,
) -> _Behaviour:
    """The scripted expert or the loaded ``policy``, attached to ``venv`` and checked."""
    expert_fn = find_expert(venv)
    actor: Any = None
    if policy == "expert":
        if expert_fn is None:
            raise ConfigError(
                f"--policy expert: {env_name} has no batched scripted expert (mmrl environments "
                "only); use --policy random or a trained run folder"
            )
        policy_fn: PolicyFn | None = None
    elif expert_labels and expert_fn is None:
        raise ConfigError(
            f"--expert-labels: {env_name} has no batched scripted expert (mmrl environments only)"
        )
    else:
        _check_policy_exists(policy)
        actor = load_policy(policy, env=None if env_name == "custom" else env_name, seed=seed)
        actor.attach(venv, f"environment {env_name}")
        if stochastic and policy != "random" and not hasattr(actor.policy, "get_distribution"):
            raise ConfigError(
                f"--stochastic: {actor.label} has no action distribution (a DQN or TD3 "
                "policy); use its greedy actions with --epsilon noise"
            )
        if stochastic and actor.recurrent:
            raise ConfigError(
                f"--stochastic: {actor.label} is recurrent; its logged probabilities would need "
                "the LSTM state per step: use its greedy actions with --epsilon noise"
            )
        policy_fn = actor.act
        if stochastic:
            policy_fn = _SeededSampling(actor, seed)

    return _Behaviour(
        name=policy,
        action_space=venv.action_space,
        epsilon=epsilon,
        stochastic=stochastic,
        record_expert=policy == "expert" or expert_labels,
        expert_fn=expert_fn,
        policy_fn=policy_fn,
        actor=actor,
    )


class _SeededSampling:
    """A policy's sampled actions, drawn from a torch random stream of their own.

    SB3's action distributions sample from torch's global generator, so without this the
    episodes ``collect(..., stochastic=True, seed=S)`` logs would depend on whatever the
    process drew before (a training run in the same process, another collection): this
    stream is seeded by ``seed`` and kept between calls, and the caller's global generator
    is left as it was (``torch.random.fork_rng``).
    """

    def __init__(self, actor: Any, seed: int) -> None:
        import torch as th

        self.actor = actor
        device = getattr(getattr(actor, "policy", None), "device", th.device("cpu"))
        self.cuda = [device] if th.device(device).type == "cuda" else []
        with th.random.fork_rng(devices=self.cuda):
            th.manual_seed(seed)
            self.state = self._rng_state()

    def _rng_state(self) -> tuple:
        import torch as th

        return th.get_rng_state(), [th.cuda.get_rng_state(d) for d in self.cuda]

    def __call__(self, observation: dict[str, np.ndarray], starts: np.ndarray) -> np.ndarray:
        import torch as th

        with th.random.fork_rng(devices=self.cuda):
            cpu, cuda = self.state
            th.set_rng_state(cpu)
            for device, state in zip(self.cuda, cuda):
                th.cuda.set_rng_state(state, device)
            actions = self.actor.predict(observation, deterministic=False)[0]
            self.state = self._rng_state()
        return np.asarray(actions)


def _env_spec(env_config: Any) -> Any:
    """The Gymnasium spec Minari records (registration kwargs + the preset's), or ``None``
    for an adapter, an unregistered id or a spec that is not JSON."""
    if not isinstance(env_config, EnvConfig) or env_config.adapter is not None:
        return None
    import gymnasium as gym

    if env_config.env_id not in gym.registry:
        return None
    spec = gym.spec(env_config.env_id)
    env_spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **env_config.kwargs})
    try:  # Minari stores the spec as JSON; envs registered with a callable cannot be
        env_spec.to_json()
    except (ValueError, TypeError):
        return None
    return env_spec


class _Rollout:
    """Steps every copy until ``episodes`` episodes are written; keeps the counts and times.

    Episodes are counted when they start (see the module docstring); finished ones are
    written in chunks of ``flush_every``: by ``writer`` itself (``writes="inline"``, or
    ``"process"``, where ``writer`` is a :class:`~mmrl.data.background.WriterProcess`), or
    on a background thread (``"thread"``).
    """

    def __init__(
        self,
        venv: Any,
        writer: AtomicDatasetWriter | WriterProcess,
        behaviour: _Behaviour,
        episodes: int,
        seed: int,
        *,
        flush_every: int,
        writes: str,
        progress: bool,
        log_interval: float | None,
        dataset_id: str,
        env_name: str,
    ) -> None:
        from tqdm import tqdm

        n = venv.num_envs
        self.venv, self.writer, self.behaviour = venv, writer, behaviour
        self.episodes, self.seed, self.flush_every = episodes, seed, flush_every
        self.rng = np.random.default_rng(seed)
        self.rec = EpisodeRecorder(
            n, venv.observation_space, venv.action_space, behaviour.record_expert,
            _episode_rows(venv),
        )  # fmt: skip
        # What overlaps the rollout and is waited for at the end (None: inline writes).
        self.in_process = writes == "process"  # the writer is a WriterProcess
        self.chunks: BackgroundWriter | WriterProcess | None = None
        if writes == "thread":
            self.chunks = BackgroundWriter(writer)
        elif self.in_process:
            self.chunks = writer
        self.write_chunk = writer.write if self.chunks is None else self.chunks.write
        self.returns: list[float] = []
        self.successes: list[bool] = []
        self.pending: list[Any] = []
        self.written = self.env_steps = self.steps = 0
        self.started = min(n, episodes)
        self.active = np.arange(n) < episodes
        self.first = np.ones(n, bool)  # copy i's first episode was reset with seed + i
        self.rollout_seconds = self.rollout_cpu = 0.0
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.bar = tqdm(
            total=episodes, unit="ep", disable=not progress, desc=f"collect {dataset_id}"
        )
        self.lines = None
        if log_interval is not None:
            self.lines = ProgressLines(episodes, "episodes", log_interval, "[collect]")
            self.lines.say(
                f"{dataset_id}: {episodes:,} episodes of {behaviour.name} on {env_name}, {n} copies"
            )

    def run(self) -> None:
        """Steps until enough episodes are buffered, then writes the last chunk."""
        venv, rec, n = self.venv, self.rec, self.venv.num_envs
        # Unwrapped mmrl vec envs hand over their infos as arrays (no per-copy loop per step).
        batched_infos = isinstance(venv, BatchedVecEnv | WorkerVecEnv)
        obs = venv.reset()
        starts = np.ones(n, dtype=bool)
        rec.write_obs(np.zeros(n, np.int64), rec.cols, obs)
        rec.write_infos(np.zeros(n, np.int64), rec.cols, _reset_infos(venv))
        while self.written + len(self.pending) < self.episodes:
            rec.ensure_capacity()
            pos = rec.pos.copy()
            actions = self._act(obs, starts, pos)
            obs, rewards, dones, infos = venv.step(actions)
            starts = dones  # a recurrent policy resets its state where an episode begins
            self.env_steps += n
            done_idx = self._record_step(pos, obs, rewards, dones, infos, batched_infos)
            if done_idx.size:
                self._end_episodes(done_idx, obs)
            if self.lines is not None and self.lines.due():
                self.lines.say(self.progress_line())
        self._finish()

    def _act(self, obs: dict[str, np.ndarray], starts: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The behaviour policy's actions, recorded at row ``pos`` of each copy."""
        rec = self.rec
        actions, expert, log_mu = self.behaviour.act(obs, starts, self.rng)
        if self.behaviour.record_expert:
            rec.expert[pos, rec.cols] = expert
        rec.behaviour_log_prob[pos, rec.cols] = log_mu
        rec.actions[pos, rec.cols] = actions.reshape(rec.actions.shape[1:])
        return actions

    def _record_step(
        self,
        pos: np.ndarray,
        obs: dict[str, np.ndarray],
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
        batched_infos: bool,
    ) -> np.ndarray:
        """Records a step's outcome after row ``pos``; returns the copies whose episode ended."""
        rec, n = self.rec, len(dones)
        done_idx = np.flatnonzero(dones)
        truncated = np.zeros(n, bool)
        for i in done_idx:
            truncated[i] = bool(infos[i].get("TimeLimit.truncated", False))
        rec.rewards[pos, rec.cols] = rewards
        rec.terminated[pos, rec.cols] = dones & ~truncated
        rec.truncated[pos, rec.cols] = truncated
        rec.write_obs(pos + 1, rec.cols, obs)
        for i in done_idx:  # the observation after a done is the next episode's first
            for key, buf in rec.obs.items():
                buf[pos[i] + 1, i] = infos[i]["terminal_observation"][key]
        if batched_infos:
            rec.write_info_arrays(pos + 1, rec.cols, self.venv.step_info_arrays)
        else:
            rec.write_infos(pos + 1, rec.cols, infos)
        rec.pos += 1
        return done_idx

    def _end_episodes(self, done_idx: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        """Buffers the ended episodes that count, starts the copies' next ones, and writes a
        chunk when ``flush_every`` are buffered."""
        rec = self.rec
        reset_infos = _reset_infos(self.venv)
        for i in done_idx:
            if self.active[i]:
                t = int(rec.pos[i])
                self.returns.append(float(rec.rewards[:t, i].sum()))
                self.successes.append(bool(rec.success[t, i]))
                self.steps += t
                self.pending.append(rec.episode(i, self.seed + int(i) if self.first[i] else None))
                self.bar.update(1)
            self.first[i] = False
            self.active[i] = self.started < self.episodes
            self.started += int(self.active[i])
            rec.pos[i] = 0
        rows = np.zeros(done_idx.size, np.int64)
        rec.write_obs(rows, done_idx, {k: v[done_idx] for k, v in obs.items()})
        rec.write_infos(rows, done_idx, [reset_infos[i] for i in done_idx])
        if len(self.pending) >= self.flush_every:
            self.write_chunk(self.pending)
            self.written += len(self.pending)
            self.pending = []
        elapsed = time.perf_counter() - self.t0
        self.bar.set_postfix(steps_per_s=f"{self.env_steps / max(elapsed, 1e-9):.0f}")

    def _finish(self) -> None:
        """Times the rollout and writes the buffered episodes still wanted."""
        if self.chunks is None:
            self.rollout_seconds = time.perf_counter() - self.t0 - self.writer.seconds
        else:  # the writes overlapped the rollout: only the time spent waiting for them
            self.rollout_seconds = time.perf_counter() - self.t0 - self.chunks.wait_seconds
            self.chunks.finish()
        # The writer counts its own thread's CPU time, wherever it ran; a writer process's
        # is not this process's.
        writer_cpu = 0.0 if self.in_process else self.writer.cpu_seconds
        self.rollout_cpu = time.process_time() - self.c0 - writer_cpu
        self.pending = self.pending[: self.episodes - self.written]
        self.writer.write(self.pending)
        self.written += len(self.pending)
        if self.lines is not None:
            self.lines.say(self.progress_line())

    def progress_line(self) -> str:
        lines = self.lines
        assert lines is not None
        done = len(self.returns)
        text = f"{lines.count(done)}  {self.env_steps:,} steps  "
        text += f"{lines.rate(self.env_steps, 'steps')}  "
        text += lines.eta(done)
        if self.returns:
            text += f"  success {np.mean(self.successes):.2f}  return {np.mean(self.returns):.2f}"
        return text

    def stop_writes(self) -> None:
        """Waits for the background write in progress (on a failure, before discarding)."""
        if self.chunks is not None:
            self.chunks.close()

    def close(self) -> None:
        self.stop_writes()
        self.bar.close()

    def result(self, dataset_id: str, path: Path) -> CollectResult:
        total = time.perf_counter() - self.t0
        env_steps = self.env_steps
        return CollectResult(
            dataset_id=dataset_id,
            path=path,
            episodes=self.written,
            steps=self.steps,
            env_steps=env_steps,
            rollout_seconds=self.rollout_seconds,
            write_seconds=self.writer.seconds,
            write_cpu_seconds=self.writer.cpu_seconds,
            total_seconds=total,
            steps_per_second=env_steps / max(self.rollout_seconds, 1e-9),
            steps_per_cpu_second=env_steps / max(self.rollout_cpu, 1e-9),
            end_to_end_steps_per_second=env_steps / max(total, 1e-9),
            mean_return=float(np.mean(self.returns)),
            success_rate=float(np.mean(self.successes)),
        )


def _metadata(
    env_name: str,
    env_config: EnvConfig,
    own_venv: bool,
    behaviour: _Behaviour,
    seed: int,
    rollout: _Rollout,
) -> dict[str, Any]:
    """The dataset's ``mmrl`` metadata: where it came from and its behaviour policy."""
    policy, epsilon, record_expert = behaviour.name, behaviour.epsilon, behaviour.record_expert
    return {
        "env": env_name,
        "env_id": env_config.env_id if own_venv else "custom",
        "env_kwargs": dict(env_config.kwargs) if own_venv else {},
        "policy": policy,
        "epsilon": epsilon,
        "seed": seed,
        "n_envs": rollout.venv.num_envs,
        "expert_labels": record_expert,
        "bc_target": EXPERT_ACTION_KEY if record_expert else "actions",
        "behaviour": {
            "policy": policy,
            "epsilon": epsilon,
            "stochastic": bool(behaviour.stochastic and policy not in BUILTIN_POLICIES),
            "log_prob_key": BEHAVIOUR_LOG_PROB_KEY,
            "log_prob_kind": "probability"
            if isinstance(behaviour.action_space, spaces.Discrete)
            else "density",
        },
        "mean_return": float(np.mean(rollout.returns)),
        "success_rate": float(np.mean(rollout.successes)),
    }
