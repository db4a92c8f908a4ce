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

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.commands.collect import CollectOptions
from mmrl.config import ConfigError, EnvConfig, RunConfig
from mmrl.data.background import BackgroundWriter
from mmrl.data.dataset import (
    BEHAVIOUR_LOG_PROB_KEY,
    EXPERT_ACTION_KEY,
    DatasetError,
    dataset_root,
    validate_dataset_id,
)
from mmrl.data.writer import AtomicDatasetWriter, EpisodeRecorder
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
            waiting for HDF5 writes (which overlap the rollout unless ``overlap_writes`` is
            off).
        write_seconds: Wall time of the HDF5 writes (Minari creates ~30 small datasets per
            episode), overlapped or not.
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
    overlap_writes: bool = True,
    venv: Any = None,
    description: str | None = None,
    expert_labels: bool = False,
    stochastic: bool = False,
    log_interval: float | None = None,
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
        overlap_writes: Write each chunk on a background thread while stepping goes on
            (:class:`~mmrl.data.background.BackgroundWriter`); ``False`` writes it before
            stepping on. The dataset is the same either way.
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

    Returns:
        A :class:`CollectResult`.

    Raises:
        DatasetError: Existing id without ``force``, malformed id, model/env mismatch.
        ConfigError: Bad arguments, unknown preset, or no expert in this environment.
    """
    from tqdm import tqdm

    validate_dataset_id(dataset_id)
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"--epsilon must be in [0, 1], got {epsilon}")
    if n_envs is not None and n_envs < 1:
        raise ConfigError(f"--n-envs must be >= 1, got {n_envs}")
    root = dataset_root()
    if (root / dataset_id).exists() and not force:
        raise DatasetError(
            f"dataset {dataset_id!r} already exists at {root / dataset_id}; pass --force to "
            "replace it or use a new version (e.g. -v1)"
        )

    env_name, env_config = (
        ("custom", EnvConfig()) if venv is not None else _resolve_env(env, policy)
    )
    own_venv = venv is None
    if not own_venv and n_workers != 1:
        raise ConfigError("must be 1 with a given venv (build it with workers)", field="n_workers")
    if own_venv:
        from mmrl.make import make_training_vec_env

        check_n_workers(n_workers, env_config.n_envs if n_envs is None else n_envs)
        try:
            venv = make_training_vec_env(
                env_config, n_envs=n_envs, seed=seed, monitor=False, n_workers=n_workers
            )
        except ValueError as err:
            raise ConfigError(f"--env {env_name}: {err}") from None
    else:
        venv.seed(seed)
    n = venv.num_envs
    obs_space, action_space = venv.observation_space, venv.action_space
    rng = np.random.default_rng(seed)

    expert_fn = find_expert(venv)
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

            def policy_fn(o: dict[str, np.ndarray], starts: np.ndarray) -> np.ndarray:
                return np.asarray(actor.predict(o, deterministic=False)[0])

    record_expert = policy == "expert" or expert_labels

    env_spec = None
    if isinstance(env_config, EnvConfig) and env_config.adapter is None and own_venv:
        import gymnasium as gym

        if env_config.env_id in gym.registry:
            spec = gym.spec(env_config.env_id)
            env_spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **env_config.kwargs})
            try:  # Minari stores the spec as JSON; envs registered with a callable cannot be
                env_spec.to_json()
            except (ValueError, TypeError):
                env_spec = None
    writer = AtomicDatasetWriter(
        dataset_id,
        env_spec,
        obs_space,
        action_space,
        algorithm_name=f"mmrl-{policy if policy in BUILTIN_POLICIES else 'run'}",
        author="mmrl",
        description=description
        or f"{env_name}: {episodes} episodes of the {policy} policy (epsilon {epsilon})",
        jpeg_encoding=jpeg,
    )
    # The writer's temporary folder exists from here: an interrupt (SIGTERM) anywhere after
    # it, even before the rollout's own try below, must remove it.
    try:
        rec = EpisodeRecorder(n, obs_space, action_space, record_expert, _episode_rows(venv))
        chunks = BackgroundWriter(writer) if overlap_writes else None
        write_chunk = writer.write if chunks is None else chunks.write
        returns: list[float] = []
        successes: list[bool] = []
        pending: list[Any] = []
        written = env_steps = steps = 0
        started = min(n, episodes)
        active = np.arange(n) < episodes
        first = np.ones(n, bool)  # copy i's first episode was reset with seed + i
        t0, c0 = time.perf_counter(), time.process_time()
        bar = tqdm(total=episodes, unit="ep", disable=not progress, desc=f"collect {dataset_id}")
        lines = None
        if log_interval is not None:
            lines = ProgressLines(episodes, "episodes", log_interval, "[collect]")
            lines.say(f"{dataset_id}: {episodes:,} episodes of {policy} on {env_name}, {n} copies")
    except BaseException:
        writer.discard()
        raise

    def progress_line() -> str:
        assert lines is not None
        text = f"{lines.count(len(returns))}  {env_steps:,} steps  "
        text += f"{lines.rate(env_steps, 'steps')}  "
        text += lines.eta(len(returns))
        if returns:
            text += f"  success {np.mean(successes):.2f}  return {np.mean(returns):.2f}"
        return text

    # Unwrapped mmrl vec envs hand over their infos as arrays (no per-copy loop per step).
    batched_infos = isinstance(venv, BatchedVecEnv | WorkerVecEnv)
    try:
        obs = venv.reset()
        starts = np.ones(n, dtype=bool)
        rec.write_obs(np.zeros(n, np.int64), rec.cols, obs)
        rec.write_infos(np.zeros(n, np.int64), rec.cols, _reset_infos(venv))
        while written + len(pending) < episodes:
            rec.ensure_capacity()
            pos = rec.pos.copy()
            expert = expert_fn() if (record_expert or policy_fn is None) else None
            base = np.array(expert if policy_fn is None else policy_fn(obs, starts), copy=True)
            actions = base.copy()
            if record_expert:
                rec.expert[pos, rec.cols] = expert
            if epsilon > 0.0:
                noisy = rng.random(n) < epsilon
                if noisy.any():
                    actions[noisy] = random_actions(action_space, n, rng)[noisy]
            # log mu(a|s) of the executed action: the base policy's, mixed with the noise.
            if policy_fn is None or not (stochastic or policy == "random"):
                base_lp = point_mass_log_prob(action_space, actions, base)
            else:
                base_lp = actor.log_prob(obs, actions)
            rec.behaviour_log_prob[pos, rec.cols] = epsilon_mixture(base_lp, action_space, epsilon)
            rec.actions[pos, rec.cols] = actions.reshape(rec.actions.shape[1:])
            obs, rewards, dones, infos = venv.step(actions)
            starts = dones  # a recurrent policy resets its state where an episode begins
            env_steps += n
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
                rec.write_info_arrays(pos + 1, rec.cols, venv.step_info_arrays)
            else:
                rec.write_infos(pos + 1, rec.cols, infos)
            rec.pos += 1
            if done_idx.size:
                reset_infos = _reset_infos(venv)
                for i in done_idx:
                    if active[i]:
                        t = int(rec.pos[i])
                        returns.append(float(rec.rewards[:t, i].sum()))
                        successes.append(bool(rec.success[t, i]))
                        steps += t
                        pending.append(rec.episode(i, seed + int(i) if first[i] else None))
                        bar.update(1)
                    first[i] = False
                    active[i] = started < episodes
                    started += int(active[i])
                    rec.pos[i] = 0
                rows = np.zeros(done_idx.size, np.int64)
                rec.write_obs(rows, done_idx, {k: v[done_idx] for k, v in obs.items()})
                rec.write_infos(rows, done_idx, [reset_infos[i] for i in done_idx])
                if len(pending) >= flush_every:
                    write_chunk(pending)
                    written += len(pending)
                    pending = []
                elapsed = time.perf_counter() - t0
                bar.set_postfix(steps_per_s=f"{env_steps / max(elapsed, 1e-9):.0f}")
            if lines is not None and lines.due():
                lines.say(progress_line())
        if chunks is None:
            rollout_seconds = time.perf_counter() - t0 - writer.seconds
        else:  # the writes overlapped the rollout: only the time spent waiting for them
            rollout_seconds = time.perf_counter() - t0 - chunks.wait_seconds
            chunks.finish()
        # The writer counts its own thread's CPU time, wherever it ran.
        rollout_cpu = time.process_time() - c0 - writer.cpu_seconds
        pending = pending[: episodes - written]
        writer.write(pending)
        written += len(pending)
        if lines is not None:
            lines.say(progress_line())
        meta = {
            "env": env_name,
            "env_id": env_config.env_id if own_venv else "custom",
            "env_kwargs": dict(env_config.kwargs) if own_venv else {},
            "policy": policy,
            "epsilon": epsilon,
            "seed": seed,
            "n_envs": n,
            "expert_labels": record_expert,
            "bc_target": EXPERT_ACTION_KEY if record_expert else "actions",
            "behaviour": {
                "policy": policy,
                "epsilon": epsilon,
                "stochastic": bool(stochastic and policy not in BUILTIN_POLICIES),
                "log_prob_key": BEHAVIOUR_LOG_PROB_KEY,
                "log_prob_kind": "probability"
                if isinstance(action_space, spaces.Discrete)
                else "density",
            },
            "mean_return": float(np.mean(returns)),
            "success_rate": float(np.mean(successes)),
        }
        path = writer.commit({"mmrl": meta}, force)
    except BaseException:
        if chunks is not None:
            chunks.close()  # the write in progress ends before its folder is removed
        writer.discard()
        raise
    finally:
        if chunks is not None:
            chunks.close()
        bar.close()
        if own_venv:
            venv.close()
    total = time.perf_counter() - t0
    return CollectResult(
        dataset_id=dataset_id,
        path=path,
        episodes=written,
        steps=steps,
        env_steps=env_steps,
        rollout_seconds=rollout_seconds,
        write_seconds=writer.seconds,
        total_seconds=total,
        steps_per_second=env_steps / max(rollout_seconds, 1e-9),
        steps_per_cpu_second=env_steps / max(rollout_cpu, 1e-9),
        end_to_end_steps_per_second=env_steps / max(total, 1e-9),
        mean_return=float(np.mean(returns)),
        success_rate=float(np.mean(successes)),
    )
