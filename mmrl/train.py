"""``mmrl train``: PPO on a multimodal environment from an env preset and an agent recipe.

Reads top to bottom like a CleanRL script — resolve config, build envs, build the model,
learn with callbacks, evaluate, save — but each step lives once here and is shared by the
CLI, the Python API (:func:`train`) and ``mmrl bench``.

The run folder's layout and file names are :class:`mmrl.runs.RunFolder`'s (``config.yaml``,
``model.zip``, ``best_model.zip``, ``metrics.json``, ``evaluations.jsonl``, ``tb/run_1/`` (a
resumed run continues this curve), ``checkpoints/``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch as th
import yaml

from mmrl.agent import (
    build_model,
    build_vec_env,
    evaluation_splits,
    policy_kwargs,
    resolve_device,
)
from mmrl.checkpoint import (
    MODEL_FILE,
    CheckpointError,
    RunLock,
    atomic_save_model,
    atomic_write_bytes,
    check_model_file,
    check_output_dir,
    read_state,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from mmrl.config import (
    ConfigError,
    RunConfig,
    resolve_run_config,
    to_dict,
    validate_run_config,
)
from mmrl.errors import MmrlError
from mmrl.runs import CONFIG_FILE, METRICS_FILE, RunFolder, load_run_config

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import CallbackList

    from mmrl.tracking import Tracking

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "build_model",
    "build_vec_env",
    "env_state",
    "load_run_config",
    "policy_kwargs",
    "resolve_device",
    "restore_env_state",
    "train",
]

TB_NAME = "run"


# ---------------------------------------------------------------------------- env state I/O
def _wrapper_chain(venv: Any) -> list[Any]:
    chain = [venv]
    while hasattr(chain[-1], "venv"):
        chain.append(chain[-1].venv)
    return chain


def env_state(venv: Any) -> list[dict[str, Any]]:
    """Picklable state of every layer of a VecEnv stack (simulator included)."""
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from mmrl.envs.vec_env import BatchedVecEnv
    from mmrl.envs.workers import WorkerVecEnv

    states: list[dict[str, Any]] = []
    for layer in _wrapper_chain(venv):
        if isinstance(layer, VecNormalize):
            states.append({"kind": "VecNormalize", "obs_rms": layer.obs_rms,
                           "ret_rms": layer.ret_rms, "returns": layer.returns})  # fmt: skip
        elif isinstance(layer, VecMonitor):
            states.append({"kind": "VecMonitor", "episode_returns": layer.episode_returns,
                           "episode_lengths": layer.episode_lengths,
                           "episode_count": layer.episode_count})  # fmt: skip
        elif isinstance(layer, BatchedVecEnv):
            states.append({"kind": "BatchedVecEnv", "sim": layer.sim, "obs": layer._obs,
                           "reset_infos": layer.reset_infos})  # fmt: skip
        elif isinstance(layer, WorkerVecEnv):
            states.append({"kind": "WorkerVecEnv", **layer.get_state()})
        else:
            states.append({"kind": type(layer).__name__})
    return states


def restore_env_state(venv: Any, states: list[dict[str, Any]]) -> bool:
    """Restores :func:`env_state`; returns whether the simulator itself was restored."""
    chain = _wrapper_chain(venv)
    kinds = [type(layer).__name__ for layer in chain]
    if kinds != [s["kind"] for s in states]:
        raise CheckpointError(
            f"checkpoint environment stack {[s['kind'] for s in states]} does not match the "
            f"run's {kinds}"
        )
    exact = False
    for layer, state in zip(chain, states):
        kind = state["kind"]
        if kind == "VecNormalize":
            layer.obs_rms, layer.ret_rms, layer.returns = (
                state["obs_rms"], state["ret_rms"], state["returns"])  # fmt: skip
        elif kind == "VecMonitor":
            layer.episode_returns = state["episode_returns"]
            layer.episode_lengths = state["episode_lengths"]
            layer.episode_count = state["episode_count"]
        elif kind == "BatchedVecEnv":
            layer.sim, layer._obs, layer.reset_infos = (
                state["sim"], state["obs"], state["reset_infos"])  # fmt: skip
            exact = True
        elif kind == "WorkerVecEnv":
            layer.set_state(state)
            exact = True
    return exact


# ---------------------------------------------------------------------------- the run
class _Start(NamedTuple):
    """Where a run starts: its config, folder, checkpoint (``None``: a new run) and lock."""

    config: RunConfig
    run_dir: Path
    checkpoint: Path | None
    lock: RunLock


def train(
    env: str | None = None,
    agent: str | None = None,
    *,
    steps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    n_workers: int | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
    stop_success: float | None = None,
    stop_split: str | None = None,
    force: bool = False,
    progress_bar: bool = False,
    verbose: int = 1,
    log_interval: float | None = None,
    on_evaluation: Callable[[int, dict[str, dict[str, float]]], bool] | None = None,
    video_every: int | None = None,
    track: str | Tracking | None = None,
) -> Path:
    """Trains PPO with a multimodal extractor; returns the run folder.

    Args:
        env: Environment preset name or YAML path (``driving``, ``navigation`` ...; default
            ``driving``). Not with ``resume``.
        agent: Agent recipe name or YAML path (``ppo-attention`` ...; default
            ``ppo-concat``). Not with ``resume``.
        steps: Total environment steps (default: the run config's).
        seed: Run seed.
        n_envs: Environment copies (default: the preset's).
        n_workers: Processes stepping the training copies (default: the preset's
            ``n_workers``, 1); the same results on more cores, see :mod:`mmrl.envs.workers`.
        device: ``auto``, ``cpu`` or ``cuda``; the environment always steps on the CPU.
        out: Run folder (default ``runs/<env>-<agent>-s<seed>-<time>``).
        overrides: ``dotted.key=value`` overrides of the run config.
        resume: A run folder to continue from its latest checkpoint. Its ``config.yaml`` is
            fixed: ``env``, ``agent``, ``n_envs``, ``n_workers``, ``overrides``, ``out`` and
            another ``seed`` are refused, not ignored.
        stop_success: Stop at the first evaluation with at least this success rate on
            ``stop_split`` (default: the run config's ``stop_success``). Like ``steps``, it
            may be changed when resuming.
        stop_split: ``train`` or ``test`` instructions (default: the run config's).
        force: Overwrite ``out`` even if it holds a finished or started run.
        progress_bar: Show SB3's progress bar.
        verbose: 0 silent, 1 a summary line per evaluation.
        log_interval: Print a progress line (steps, steps/s, ETA, recent success and return)
            every this many seconds and a line per periodic evaluation, for logs that are not
            a terminal (:mod:`mmrl.progress`); ``None``: no lines.
        on_evaluation: Called with ``(step, {split: summary})`` after each periodic
            evaluation; returning ``False`` stops the run there (``metrics.json`` records
            the step as ``stopped_early_at``). ``mmrl tune`` prunes trials through it.
        video_every: Every this many environment steps, record one episode of the current
            policy to ``videos/step_<steps>.mp4`` and TensorBoard
            (:mod:`mmrl.train_video`); ``None``: no videos. May be given when resuming.
        track: ``wandb``, ``mlflow`` or a :class:`mmrl.tracking.Tracking`: also send the
            config, the logged scalars and the final files to that tracking service
            (:mod:`mmrl.tracking`); ``None``: TensorBoard and the run folder only.

    Returns:
        The run folder.

    Raises:
        ConfigError: Bad presets, overrides, device or run folder (the CLI exits with 2).
        CheckpointError: A corrupt or foreign checkpoint on resume.
        MissingDependencyError: ``track`` names a library that is not installed.
    """
    _check_video_every(video_every)
    from mmrl.tracking import tracking_service

    track = tracking_service(track)  # a missing library fails before the run folder is touched
    fields = {
        "steps": steps,
        "seed": seed,
        "device": device,
        "stop_success": stop_success,
        "stop_split": stop_split,
    }
    if resume is not None:
        fixed = {"env": env, "agent": agent, "n_envs": n_envs, "n_workers": n_workers}
        start = _resumed_run(Path(resume), fields, **fixed, seed=seed, out=out, overrides=overrides)
    else:
        start = _new_run(env, agent, overrides, fields, n_envs, n_workers, out, force)
    config, run_dir, checkpoint, lock = start
    folder = RunFolder(run_dir)
    with contextlib.ExitStack() as stack:
        stack.callback(lock.release)  # last out: after the tracked run is finished
        torch_device = _seed_process(config)
        venv = build_vec_env(config, seed=config.seed)
        stack.callback(venv.close)  # also when learning raises (worker processes end)
        if checkpoint is None:
            model = _build_new_model(config, venv, torch_device, folder)
            _create_run_folder(folder, config, force, lock)
            _load_pretrained(model, config, verbose)
            resumed = None
        else:
            model, resumed = _load_checkpoint(checkpoint, venv, torch_device, run_dir, config)
        evaluator = _evaluator(config, folder, model, resumed, on_evaluation)
        tracker = _start_tracking(track, stack, folder, config, venv, new_run=checkpoint is None)
        callbacks = _callbacks(
            config, folder, model, evaluator, log_interval, video_every, tracker, resumed
        )
        elapsed = _learn(model, config, callbacks, new_run=checkpoint is None, bar=progress_bar)
        _save_checkpoint(folder, model, config, evaluator, model.num_timesteps, callbacks)
        atomic_save_model(model, folder.model_path)
        final = _final_evaluation(evaluator, model, config)
        _write_metrics(folder, config, model, torch_device, elapsed, evaluator, final)
        venv.close()
        if tracker is not None:
            _finish_tracking(tracker, folder, final, int(model.num_timesteps))
        if verbose:
            _print_summary(run_dir, model.num_timesteps, final)
        return run_dir


# ---------------------------------------------------------------------------- its steps
def _check_video_every(video_every: int | None) -> None:
    if video_every is not None and (
        isinstance(video_every, bool) or not isinstance(video_every, int) or video_every < 1
    ):
        raise ConfigError(f"must be an integer >= 1, got {video_every!r}", field="video_every")


def _resumed_run(run_dir: Path, fields: dict[str, Any], **options: Any) -> _Start:
    """The run config of ``run_dir`` with the resumable ``fields`` changed, its latest
    complete checkpoint and its lock, taken; ``options`` it would ignore are refused."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{run_dir}: no {CONFIG_FILE} there (not an mmrl run folder)", field="resume"
        )
    config = load_run_config(run_dir)
    _refuse_resume_changes(config, run_dir, **options)
    for key, value in fields.items():
        if value is not None:
            setattr(config, key, value)
    validate_run_config(config)
    checkpoint = RunFolder(run_dir).latest_checkpoint()
    if checkpoint is None:
        raise CheckpointError(f"--resume {run_dir}: no complete checkpoint in checkpoints/")
    lock = RunLock(run_dir, field="resume")
    lock.acquire()
    return _Start(config, run_dir, checkpoint, lock)


def _new_run(
    env: str | None,
    agent: str | None,
    overrides: list[str] | None,
    fields: dict[str, Any],
    n_envs: int | None,
    n_workers: int | None,
    out: str | Path | None,
    force: bool,
) -> _Start:
    """The resolved run config of a new run and its folder, checked (nothing written yet);
    the lock is only checked: it is taken once the folder is prepared."""
    env = RunConfig.env_name if env is None else env
    agent = RunConfig.agent_name if agent is None else agent
    config = resolve_run_config(env, agent, overrides, **fields)
    if n_envs is not None:
        if n_envs < 1:
            raise ConfigError(f"must be >= 1, got {n_envs}", field="n_envs")
        config.env.n_envs = n_envs
    if n_workers is not None:
        from mmrl.envs.workers import check_n_workers

        config.env.n_workers = check_n_workers(n_workers, config.env.n_envs)
    if n_envs is not None:
        validate_run_config(config)  # env.n_workers (from --set) against the new n_envs
    run_dir = Path(out) if out is not None else _new_run_dir(config)
    from mmrl.pretrain.finetune import check_init

    check_init(config)  # a bad --init-from fails before the run folder is touched
    _check_run_dir(run_dir, force)
    lock = RunLock(run_dir)
    lock.check()  # --force must not wipe a folder another process trains in
    return _Start(config, run_dir, None, lock)


def _new_run_dir(config: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = Path(config.env_name).stem
    agent = Path(config.agent_name).stem
    return Path("runs") / f"{env}-{agent}-s{config.seed}-{stamp}"


def _refuse_resume_changes(
    config: RunConfig,
    run_dir: Path,
    env: str | None,
    agent: str | None,
    n_envs: int | None,
    n_workers: int | None,
    seed: int | None,
    out: str | Path | None,
    overrides: list[str] | None,
) -> None:
    """A resumed run follows its config.yaml: options it would ignore are errors (issue 15)."""
    fixed = {
        "env": env,
        "agent": agent,
        "n_envs": n_envs,
        "n_workers": n_workers,
        "overrides": overrides or None,
    }
    for name, value in fixed.items():
        if value is not None:
            raise ConfigError(
                f"cannot change a resumed run (its {CONFIG_FILE} fixes it); drop it or start "
                "a new run",
                field=name if name != "overrides" else "set",
            )
    if seed is not None and seed != config.seed:
        raise ConfigError(
            f"{seed} differs from the resumed run's seed {config.seed}; drop it", field="seed"
        )
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise ConfigError(f"{out}: a resumed run writes to its own folder {run_dir}", field="out")


def _seed_process(config: RunConfig) -> th.device:
    """Resolves the run's device, sets torch's threads and seeds every generator."""
    from stable_baselines3.common.utils import set_random_seed

    torch_device = resolve_device(config.device)
    if config.torch_threads > 0:
        th.set_num_threads(config.torch_threads)
    set_random_seed(config.seed, using_cuda=torch_device.type == "cuda")
    return torch_device


def _build_new_model(config: RunConfig, venv: Any, device: th.device, folder: RunFolder) -> Any:
    """A new run's model; a recipe SB3 or the extractor refuses fails before the run folder
    is written, and so do the held-out split's env kwargs and guidance without an expert."""
    from mmrl.guidance import check_guidance

    try:
        if "test" in evaluation_splits(config.env):
            build_vec_env(config, config.eval_seed, 1, "test").close()
        model = build_model(config, venv, device, folder.tb_dir)
        check_guidance(config, venv)
        return model
    except ConfigError:
        venv.close()
        raise


def _create_run_folder(folder: RunFolder, config: RunConfig, force: bool, lock: RunLock) -> None:
    """Empties (``force``) or creates the folder, takes its lock and writes ``config.yaml``."""
    _prepare_run_dir(folder.path, force)
    lock.acquire()
    atomic_write_bytes(folder.config_path, yaml.safe_dump(to_dict(config)).encode())


def _load_pretrained(model: Any, config: RunConfig, verbose: int) -> None:
    """The recipe's ``init`` (``--init-from``) weights, into a new run's model."""
    from mmrl.pretrain.finetune import load_pretrained

    load_pretrained(model, config, verbose=verbose)


def _evaluator(
    config: RunConfig,
    folder: RunFolder,
    model: Any,
    resumed: dict[str, Any] | None,
    on_evaluation: Callable[[int, dict[str, dict[str, float]]], bool] | None,
) -> Any:
    """The periodic held-out evaluation, on the train split and (with the preset's
    ``eval_kwargs``) the test split; a resumed run continues its best score and history."""
    from mmrl.callbacks import HeldOutEvalCallback

    copies = _eval_copies(config)
    eval_envs = {
        split: functools.partial(build_vec_env, config, config.eval_seed, copies, split)
        for split in evaluation_splits(config.env)
    }
    evaluator = HeldOutEvalCallback(
        eval_envs,
        eval_seed=config.eval_seed,
        n_episodes=config.eval_episodes,
        eval_freq=config.eval_freq,
        best_model_path=folder.best_model_path,
        history_path=folder.evaluations_path,
        stop_success=config.stop_success,
        stop_split=config.stop_split,
        on_evaluation=on_evaluation,
    )
    if resumed is not None:
        evaluator.restore(resumed.get("evaluation"), step=model.num_timesteps)
    return evaluator


def _eval_copies(config: RunConfig) -> int:
    return max(1, min(config.eval_episodes, config.env.n_envs))


def _start_tracking(
    track: Tracking | None,
    stack: contextlib.ExitStack,
    folder: RunFolder,
    config: RunConfig,
    venv: Any,
    new_run: bool,
) -> Any:
    """The tracked run, entered on ``stack`` so that it is finished (as failed on an
    exception) before the lock is released; ``None`` without ``track``."""
    if track is None:
        return None
    from mmrl.tracking import tracked

    try:
        return stack.enter_context(tracked(track, folder, to_dict(config)))
    except MmrlError:
        venv.close()
        if new_run:  # leave no folder behind, like other refusals
            import shutil

            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def _callbacks(
    config: RunConfig,
    folder: RunFolder,
    model: Any,
    evaluator: Any,
    log_interval: float | None,
    video_every: int | None,
    tracker: Any,
    resumed: dict[str, Any] | None,
) -> CallbackList:
    """The run's SB3 callbacks, in the order SB3 calls them after each step.

    The one place that lists them: a new callback is one more line here. ``resumed``: the
    checkpoint state of a resumed run (callbacks with state of their own restore it).
    """
    from stable_baselines3.common.callbacks import CallbackList

    from mmrl.callbacks import CheckpointCallback, MultimodalMetricsCallback
    from mmrl.guidance import guidance_callbacks
    from mmrl.pretrain.finetune import init_callbacks

    guides = guidance_callbacks(config, resumed)

    def save(step: int) -> None:
        _save_checkpoint(folder, model, config, evaluator, step, guides)

    return CallbackList(
        [
            MultimodalMetricsCallback(),
            evaluator,
            CheckpointCallback(config.checkpoint_freq, save),
            *init_callbacks(config.agent.init, config.agent.algo),
            *guides,
            *_progress_lines(config, folder, log_interval),  # after the evaluator: reads its file
            *_videos(config, folder, video_every),
            *_tracking_callbacks(tracker),
        ]
    )


def _progress_lines(config: RunConfig, folder: RunFolder, interval: float | None) -> list:
    """The log-line callback of ``log_interval`` (none when it is ``None``)."""
    if interval is None:
        return []
    from mmrl.progress import ProgressLinesCallback

    return [
        ProgressLinesCallback(config.steps, interval, config.eval_freq, folder.evaluations_path)
    ]


def _videos(config: RunConfig, folder: RunFolder, every: int | None) -> list:
    """The training-video callback of ``video_every`` (none when it is ``None``)."""
    if every is None:
        return []
    from mmrl.make import make_training_vec_env
    from mmrl.train_video import VideoCallback

    def make_env() -> Any:
        # The raw training distribution, one copy, seeded like the periodic evaluation.
        return make_training_vec_env(config.env, n_envs=1, seed=config.eval_seed, monitor=False)

    return [VideoCallback(every, make_env, folder.videos_dir, seed=config.eval_seed)]


def _tracking_callbacks(tracker: Any) -> list:
    """The callback sending logged scalars to the tracked run (none when not tracked)."""
    if tracker is None:
        return []
    from mmrl.tracking import TrackingCallback

    return [TrackingCallback(tracker)]


def _learn(
    model: Any, config: RunConfig, callbacks: CallbackList, new_run: bool, bar: bool
) -> float:
    """Trains the steps left (none: a resumed run that had them all); returns the seconds."""
    remaining = config.steps - model.num_timesteps
    t0 = time.perf_counter()
    if remaining > 0:
        try:
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                reset_num_timesteps=new_run,
                tb_log_name=TB_NAME,
                progress_bar=bar,
            )
        except ValueError as err:
            # torch.distributions refuses NaN outputs ("... found invalid values"): the
            # policy diverged. The checkpoints written before it are intact.
            if "invalid values" not in str(err):
                raise
            raise ConfigError(
                f"training diverged at step {model.num_timesteps}: the policy's outputs "
                "became NaN; lower agent.ppo.learning_rate (now "
                f"{config.agent.ppo.learning_rate:g}) or agent.ppo.max_grad_norm"
            ) from None
    return time.perf_counter() - t0


def _save_checkpoint(
    folder: RunFolder, model: Any, config: RunConfig, evaluator: Any, step: int, callbacks: Any
) -> None:
    from mmrl.guidance import guidance_state

    state = _checkpoint_state(model, config, evaluator.state())
    state["guidance"] = guidance_state(callbacks)  # its label head, if it has one
    write_checkpoint(folder.checkpoints_dir, step, model, state)


def _final_evaluation(evaluator: Any, model: Any, config: RunConfig) -> dict[str, Any]:
    """``{split: summary}`` of the final model (empty with ``eval_episodes`` 0)."""
    if getattr(evaluator, "model", None) is None:
        # learn() never ran: a resumed run whose checkpoint already held every step.
        evaluator.init_callback(model)
    return evaluator.evaluate() if config.eval_episodes else {}


def _write_metrics(
    folder: RunFolder,
    config: RunConfig,
    model: Any,
    device: th.device,
    elapsed: float,
    evaluator: Any,
    final: dict[str, Any],
) -> None:
    metrics = {
        "env": config.env_name,
        "agent": config.agent_name,
        "seed": config.seed,
        "steps": int(model.num_timesteps),
        "device": str(device),
        "train_seconds_this_session": round(elapsed, 2),
        "stopped_early_at": evaluator.stopped_at,
        "eval_seed": config.eval_seed,
        "eval": final,
    }
    atomic_write_bytes(folder.metrics_path, json.dumps(metrics, indent=2).encode())


def _finish_tracking(tracker: Any, folder: RunFolder, final: dict[str, Any], step: int) -> None:
    """Sends the final evaluation and the run folder's files to the tracked run."""
    from mmrl.tracking import final_scalars, run_files

    tracker.log_scalars(final_scalars(final), step)
    tracker.log_files(run_files(folder))


def _print_summary(run_dir: Path, steps: int, final: dict[str, Any]) -> None:
    parts = [
        f"{split}: success {m['success_rate']:.2f} return {m['mean_return']:.2f}"
        for split, m in final.items()
    ]
    print(f"run {run_dir}: {steps} steps; " + "; ".join(parts))


def _check_run_dir(run_dir: Path, force: bool) -> None:
    """Refuses a non-empty run folder unless ``force``, and one that cannot be written (a
    file, below a file, read-only): nothing is written here."""
    check_output_dir(run_dir, field="out")
    if run_dir.exists() and any(run_dir.iterdir()) and not force:
        finished = (run_dir / METRICS_FILE).exists()
        what = "a finished run" if finished else "files (an unfinished run? use --resume)"
        raise ConfigError(f"--out {run_dir} already holds {what}; pass --force to overwrite")


def _prepare_run_dir(run_dir: Path, force: bool) -> None:
    _check_run_dir(run_dir, force)
    if run_dir.exists() and any(run_dir.iterdir()):
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _checkpoint_state(model: Any, config: RunConfig, evaluation: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_timesteps": int(model.num_timesteps),
        "rng": rng_state(),
        "last_obs": model._last_obs,
        "last_episode_starts": model._last_episode_starts,
        "last_original_obs": getattr(model, "_last_original_obs", None),
        "last_lstm_states": getattr(model, "_last_lstm_states", None),
        "ep_info_buffer": list(model.ep_info_buffer or []),
        "ep_success_buffer": list(model.ep_success_buffer or []),
        "env": env_state(model.get_env()),
        "config": to_dict(config),
        "evaluation": evaluation,  # best score: best_model.zip survives a resume
        "mmrl_checkpoint": 1,
    }


#: Run-config fields a resumed run may change (``train(resume=..., steps=...)``).
RESUMABLE_FIELDS = ("steps", "device", "stop_success", "stop_split")


def _check_checkpoint_config(checkpoint: Path, recorded: Any, config: RunConfig) -> None:
    """Refuses a checkpoint written by another run config (another fusion's checkpoints
    copied in): it would load, or fail deep inside SB3, as a model the config does not
    describe (issue 15)."""
    if not isinstance(recorded, dict):
        return  # checkpoints before the config was recorded
    from mmrl.pretrain.checkpoint import config_differences

    current = to_dict(config)
    for key in RESUMABLE_FIELDS:
        recorded.pop(key, None)
        current.pop(key, None)
    # Keys only one side has are fields added or removed by an mmrl upgrade, not a mismatch.
    diffs = [
        d.replace("(policy)", f"({CONFIG_FILE})")
        for d in config_differences(recorded, current)
        if not d.endswith(("only in the checkpoint", "only in the policy"))
    ]
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; ... ({len(diffs) - 4} more)" if len(diffs) > 4 else "")
        raise CheckpointError(
            f"{checkpoint} was written by another run config than {CONFIG_FILE}: {shown}"
        )


def _load_checkpoint(
    checkpoint: Path, venv: Any, device: th.device, run_dir: Path, config: RunConfig
):
    from collections import deque

    from mmrl.agent import algorithm_class

    model_path = checkpoint / MODEL_FILE
    check_model_file(model_path)
    state = read_state(checkpoint)
    _check_checkpoint_config(checkpoint, state.get("config"), config)
    try:
        model = algorithm_class(config.agent.algo).load(
            model_path, env=venv, device=device, tensorboard_log=str(RunFolder(run_dir).tb_dir)
        )
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"cannot load {model_path}: {err}") from None
    exact = restore_env_state(model.get_env(), state["env"])
    set_rng_state(state["rng"])
    if exact:
        model._last_obs = state["last_obs"]
        model._last_episode_starts = state["last_episode_starts"]
        model._last_original_obs = state["last_original_obs"]
        lstm = state.get("last_lstm_states")
        if lstm is not None:  # recurrent-ppo: the LSTM's state mid-episode, per copy
            model._last_lstm_states = type(lstm)(
                *(tuple(t.to(model.device) for t in pair) for pair in lstm)
            )
    model.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=100)
    model.ep_success_buffer = deque(state["ep_success_buffer"], maxlen=100)
    return model, state
