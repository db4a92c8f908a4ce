"""Loading a policy to act with: :func:`load_policy`, one function for every kind of reference.

``mmrl evaluate``, ``mmrl evaluate-offline``, ``mmrl collect``, ``mmrl bench`` and the scripts
all act through the :class:`Policy` that :func:`load_policy` returns, whatever names it:

=====================  ===================================================================
reference              what acts
=====================  ===================================================================
``RUN_DIR``            its ``model.zip`` (or, for a killed run, its newest checkpoint's)
``RUN_DIR/x.zip``      that model, with the run's config and normalization statistics
``RUN/checkpoints/s``  that checkpoint's model and statistics (the folder or its model.zip)
``MODEL.zip``          a bare SB3 model with no run around it (no normalization)
``ENCODER.pt``         the behaviour-cloning policy of a pretraining checkpoint
``expert``             the environment's batched scripted expert
``random``             uniform random actions
=====================  ===================================================================

Two things are decided here once. The SB3 class that reads a ``model.zip`` is the one that
saved it (:func:`algorithm_class`): ``PPO.load`` passes PPO-only policy arguments
(``use_sde``) that a DQN policy refuses (issue 14, defect 5). And the ``VecNormalize``
observation statistics a run trained with are applied inside :meth:`Policy.predict`, to the
raw observations every caller hands it, so no caller normalizes by hand and none can forget
to (``model.zip`` does not hold the statistics; the run's checkpoints do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.checkpoint import check_model_file
from mmrl.config import EnvConfig, RunConfig
from mmrl.densities import finite_box, uniform_log_prob
from mmrl.envs.vec_env import find_expert, vec_env_layers
from mmrl.errors import CheckpointError, ConfigError, one_line
from mmrl.runs import CHECKPOINTS_DIR, CONFIG_FILE, MODEL_FILE, RunFolder
from mmrl.spaces import check, differences, policy_view

__all__ = [
    "REFERENCE_POLICIES",
    "ModelPolicy",
    "Policy",
    "ReferencePolicy",
    "algorithm_class",
    "check_spaces",
    "find_expert",
    "load_policy",
    "load_sb3_model",
    "normalize_observations",
    "one_line",
    "policy_view",
    "random_actions",
    "recorded_env",
    "space_differences",
    "vec_env_layers",
]

REFERENCE_POLICIES = ("expert", "random")
"""References that name a policy rather than a file."""

#: ``VecNormalize``'s defaults, which ``mmrl train`` uses (``mmrl.agent.build_vec_env``).
_NORM_EPSILON = 1e-8
_NORM_CLIP = 10.0

#: SB3 algorithms whose policies live in their own module (``stable_baselines3.<name>.policies``);
#: PPO and A2C share ``common.policies``, and PPO's ``load`` reads both.
_OWN_POLICY_MODULES = ("dqn", "sac", "td3", "ddpg")


# ---------------------------------------------------------------------------- SB3 model files
def algorithm_class(model_path: str | Path) -> type:
    """The SB3 algorithm class that saved ``model_path``, from the policy class in its data.

    DQN, SAC, TD3 and DDPG have their own policy modules; sb3-contrib's ``RecurrentPPO`` its
    recurrent policies; PPO and A2C share ``common.policies`` and differ in their saved
    hyperparameters (only PPO has a ``clip_range``).

    Raises:
        CheckpointError: The archive cannot be read.
        MissingDependencyError: A ``RecurrentPPO`` model without sb3-contrib installed.
    """
    import stable_baselines3 as sb3
    from stable_baselines3.common.save_util import load_from_zip_file

    from mmrl.agent import algorithm_class as recipe_algorithm

    try:
        data, _, _ = load_from_zip_file(model_path, device="cpu", load_data=True)
    except Exception as err:  # SB3 raises bare ValueError/KeyError/pickle errors here.
        raise CheckpointError(f"cannot read {model_path}: {one_line(err)}") from None
    data = data or {}
    module = getattr(data.get("policy_class"), "__module__", "")
    for name in _OWN_POLICY_MODULES:
        if f".{name}." in f"{module}.":
            return getattr(sb3, name.upper())
    if ".recurrent." in f"{module}.":
        return recipe_algorithm("recurrent-ppo")
    if data and "clip_range" not in data and "n_steps" in data:
        return sb3.A2C
    return sb3.PPO


def load_sb3_model(model_path: str | Path, device: Any = "cpu") -> Any:
    """Loads an SB3 ``model.zip`` with the algorithm class that saved it (no env attached).

    Args:
        model_path: The ``.zip`` file.
        device: Torch device (``"cpu"``, ``"cuda"`` or a :class:`torch.device`).

    Raises:
        CheckpointError: Missing or foreign file, or an archive SB3 cannot load (e.g. saved
            by another version of its extractor).
    """
    model_path = Path(model_path)
    check_model_file(model_path)
    cls = algorithm_class(model_path)
    try:
        return cls.load(model_path, device=device)
    except (ValueError, KeyError, RuntimeError, AttributeError, TypeError) as err:
        raise CheckpointError(
            f"cannot load {model_path} (saved by another version of its extractor?): "
            f"{one_line(err)}"
        ) from None


# ---------------------------------------------------------------------------- spaces
def space_differences(
    model_space: spaces.Space, other_space: spaces.Space, other: str = "environment"
) -> list[str]:
    """Human-readable differences between a model's space and another (empty if equal); see
    :func:`mmrl.spaces.differences`."""
    return differences(model_space, other_space, ("model", other))


def check_spaces(
    model: Any,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    other: str,
) -> None:
    """Refuses a model whose spaces differ from an environment's or a dataset's.

    Args:
        model: Anything with ``observation_space`` (as a policy stores it) and
            ``action_space``: an SB3 model, its policy, or a :class:`Policy`.
        observation_space: The environment's (or dataset's) observation space, channel-last
            images as environments report them.
        action_space: Its action space.
        other: What it is, for the message (``"environment mmrl/Driving-v0"``).

    Raises:
        SpaceMismatchError: Naming every differing key and both spaces.
    """
    check(
        model.observation_space,
        model.action_space,
        policy_view(observation_space),
        action_space,
        f"the model does not fit the {other}",
        names=("model", other),
    )


# ---------------------------------------------------------------------------- normalization
def normalize_observations(
    observations: Mapping[str, np.ndarray] | np.ndarray, obs_rms: Any
) -> Any:
    """Applies ``VecNormalize`` observation statistics as ``VecNormalize`` does.

    ``(x - mean) / sqrt(var + 1e-8)`` clipped to ``[-10, 10]`` (its defaults, which
    ``mmrl train`` uses), as float32.

    Args:
        observations: Batched observations: key -> ``(n, ...)`` array, or one array.
        obs_rms: ``{key: RunningMeanStd}`` (only those keys are normalized) or one
            ``RunningMeanStd`` for an array observation.

    Returns:
        The observations with the normalized keys replaced (other keys untouched).
    """

    def one(x: np.ndarray, rms: Any) -> np.ndarray:
        norm = (np.asarray(x) - rms.mean) / np.sqrt(rms.var + _NORM_EPSILON)
        return np.clip(norm, -_NORM_CLIP, _NORM_CLIP).astype(np.float32)

    if not isinstance(obs_rms, Mapping):
        return one(observations, obs_rms)
    out = dict(observations)
    for key, rms in obs_rms.items():
        out[key] = one(observations[key], rms)
    return out


# ---------------------------------------------------------------------------- built-in actors
def random_actions(space: spaces.Space, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random actions as one batch (``(n,)`` int64 or ``(n, *shape)`` float32)."""
    if isinstance(space, spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n, dtype=np.int64)
    if isinstance(space, spaces.Box):
        low, high = finite_box(space)  # the bounds uniform_log_prob integrates over
        return rng.uniform(low, high, size=(n, *space.shape)).astype(np.float32)
    raise ConfigError(f"random actions for {space} are not supported (Discrete or Box only)")


def _batch_size(observation: Any) -> int:
    if isinstance(observation, Mapping):
        return len(next(iter(observation.values())))
    return len(observation)


# ---------------------------------------------------------------------------- policies
class Policy:
    """Something that acts on batched raw observations, with SB3's ``predict`` signature.

    What :func:`load_policy` returns. Callers hand it observations exactly as the
    environment emits them (channel-last images, unnormalized); whatever the policy needs
    (normalization, image transposition) happens inside. Before acting in an environment,
    call :meth:`attach` with its ``VecEnv``: it checks that the policy fits that env and
    binds the built-in actors to it.

    Attributes:
        kind: ``"run"``, ``"model"`` (a bare ``model.zip``), ``"bc"`` (a pretraining
            checkpoint), ``"expert"`` or ``"random"``.
        label: A short name for tables (the run folder's, the file's, or the kind).
        policy: The torch policy (an SB3 ``BasePolicy``: its extractor can mask modalities),
            or ``None`` for the built-in actors, which have no network.
        whole_batch: Whether :meth:`predict` must be given every copy's observation (the
            scripted expert acts for all copies at once from the simulator's state).
        env_name: The environment preset or id the policy acts in (``--env`` if given, else
            the one its run or checkpoint records; ``None`` when nothing says).
        env_config: That environment's :class:`~mmrl.config.EnvConfig`, or ``None``.
        run: The run folder it came from, or ``None``.
        config: The run's resolved configuration, or ``None``.
        model_path: The file it was loaded from (``None`` for the built-in actors).
        checkpoint: The checkpoint folder whose normalization statistics are applied.
        obs_rms: The ``VecNormalize`` observation statistics applied, or ``None``.
    """

    kind = "policy"
    policy: Any = None
    whole_batch = False

    def __init__(self, label: str) -> None:
        self.label = label
        self.env_name: str | None = None
        self.env_config: EnvConfig | None = None
        self.run: RunFolder | None = None
        self.config: RunConfig | None = None
        self.model_path: Path | None = None
        self.checkpoint: Path | None = None
        self.obs_rms: Any = None
        self.observation_space: spaces.Space | None = None
        self.action_space: spaces.Space | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r}, kind={self.kind!r})"

    @property
    def gamma(self) -> float:
        """The run's discount factor (0.99 without a run)."""
        return self.config.agent.ppo.gamma if self.config is not None else 0.99

    def require_env(self) -> EnvConfig:
        """The environment to act in.

        Raises:
            ConfigError: Nothing names one (a bare model file or a built-in actor without
                ``env``), saying to pass ``--env``.
        """
        if self.env_config is not None:
            return self.env_config
        from mmrl.config import available_presets

        what = (
            f"{self.model_path} is a bare model file (no run folder with {CONFIG_FILE})"
            if self.model_path is not None
            else f"{self.label}: no environment to act in"
        )
        raise ConfigError(
            f"{what}: pass --env with an env preset ({', '.join(available_presets('envs'))}) "
            "or a Gymnasium id"
        )

    def normalize(self, observations: Any) -> Any:
        """Raw observations as the network sees them (the run's ``VecNormalize`` statistics
        applied; unchanged when the run did not normalize)."""
        if self.obs_rms is None:
            return observations
        return normalize_observations(observations, self.obs_rms)

    def attach(self, venv: Any, what: str = "environment") -> None:
        """Checks that the policy fits ``venv`` (the raw environment, channel-last images).

        Args:
            venv: The ``VecEnv`` the policy is about to act in.
            what: How to name it in errors (``"environment mmrl/Driving-v0"``).

        Raises:
            SpaceMismatchError: Naming every differing key and both spaces.
        """
        check_spaces(self, venv.observation_space, venv.action_space, what)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Actions for a batch of raw observations, as SB3's ``model.predict`` returns them.

        Args:
            observation: Batched raw observations (key -> ``(n, ...)``).
            state: Recurrent state returned by the previous call (``None`` at the start;
                only recurrent policies use it).
            episode_start: ``(n,)`` bool, which copies begin an episode (recurrent policies
                reset their state there).
            deterministic: Greedy actions (``False``: sample).

        Returns:
            ``(actions, state)``: ``(n,)`` int64 or ``(n, d)`` float32 actions.
        """
        raise NotImplementedError

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state between steps (an LSTM: ``recurrent-ppo``)."""
        return False

    def act(self, observation: Any, episode_start: np.ndarray | None = None) -> np.ndarray:
        """Deterministic actions for a batch of raw observations.

        A recurrent policy keeps its state between calls, so successive calls must be
        successive steps of the same copies; ``episode_start`` says which copies begin a new
        episode (their state is reset).

        Args:
            observation: Batched raw observations (key -> ``(n, ...)``).
            episode_start: ``(n,)`` bool; ``None`` on a first call means every copy starts.

        Raises:
            ConfigError: A recurrent policy called again without ``episode_start``.
        """
        if not self.recurrent:
            action, _ = self.predict(observation, deterministic=True)
            return np.asarray(action)
        state = getattr(self, "_act_state", None)
        if episode_start is None:
            if state is not None:
                raise ConfigError(
                    f"{self.label}: a recurrent policy needs episode_start on every act() "
                    "after the first (which copies begin an episode), or reset() first"
                )
            episode_start = np.ones(_batch_size(observation), dtype=bool)
        action, self._act_state = self.predict(
            observation, state, np.asarray(episode_start, dtype=bool), deterministic=True
        )
        return np.asarray(action)

    def reset(self) -> None:
        """Forgets the state :meth:`act` keeps for a recurrent policy."""
        self._act_state = None

    def log_prob(
        self, observation: Any, actions: np.ndarray, deterministic: bool = False
    ) -> np.ndarray:
        """``log pi(a|s)`` of ``actions`` in a batch of raw observations.

        The convention of :mod:`mmrl.densities`: discrete actions get log-probabilities,
        continuous ones log-densities, and a deterministic policy's own choice ``0``
        (discrete) or ``+inf`` (continuous, a point mass).

        Args:
            observation: Batched raw observations (key -> ``(n, ...)``).
            actions: ``(n,)`` int or ``(n, d)`` float actions.
            deterministic: The greedy policy (a point mass at ``predict``'s action) rather
                than the sampling one.

        Returns:
            ``(n,)`` float64.

        Raises:
            ConfigError: A policy whose probabilities are unknown (the scripted expert).
        """
        raise ConfigError(f"{self.label}: its action probabilities are unknown")


class ModelPolicy(Policy):
    """A trained network: an SB3 model (``kind`` ``run`` or ``model``) or the BC policy of a
    pretraining checkpoint (``bc``), with its run's normalization statistics.

    Args:
        label: Short name.
        kind: ``run``, ``model`` or ``bc``.
        model: The SB3 model (``predict``, ``policy``, spaces) or the BC policy itself.
    """

    def __init__(self, label: str, kind: str, model: Any) -> None:
        super().__init__(label)
        self.kind = kind
        self.model = model
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    @property
    def policy(self) -> Any:  # type: ignore[override]
        """The torch policy (``model.policy`` for SB3 models, the BC policy itself)."""
        return getattr(self.model, "policy", None) if self.kind != "bc" else self.model

    @property
    def recurrent(self) -> bool:
        """Whether the network is recurrent (sb3-contrib's LSTM policies)."""
        return hasattr(self.policy, "lstm_actor")

    def to(self, device: Any) -> ModelPolicy:
        """Moves the network to ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``); returns self."""
        from mmrl.agent import resolve_device

        self.policy.to(resolve_device(device))
        return self

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        return self.model.predict(
            self.normalize(observation), state, episode_start, deterministic=deterministic
        )

    def log_prob(
        self, observation: Any, actions: np.ndarray, deterministic: bool = False
    ) -> np.ndarray:
        """``log pi(a|s)`` under the network's action distribution (see :meth:`Policy.log_prob`).

        Policies without a distribution (DQN, TD3) and ``deterministic=True`` are point masses
        at the greedy action. SAC's squashed Gaussian includes the Jacobian of the rescaling
        to the action bounds. PPO's Gaussian is evaluated at the logged action, which
        ``predict`` clipped to the bounds, so the density is exact inside the bounds only.
        """
        import torch as th

        from mmrl.densities import point_mass_log_prob

        net = self.policy
        actions = np.asarray(actions)
        if deterministic or not hasattr(net, "get_distribution"):
            return point_mass_log_prob(self.action_space, actions, self.act(observation))
        obs_t, _ = net.obs_to_tensor(self.normalize(observation))
        box = isinstance(self.action_space, spaces.Box)
        act = actions.reshape(len(actions), *self.action_space.shape) if box else actions
        jacobian = 0.0
        if box and getattr(net, "squash_output", False):
            act = net.scale_action(act)  # the distribution lives in [-1, 1]
            low, high = self.action_space.low, self.action_space.high
            jacobian = float(np.sum(np.log((high - low) / 2.0)))
        with th.no_grad():
            dist = net.get_distribution(obs_t)
            act_t = th.as_tensor(act, device=net.device)
            out = dist.log_prob(act_t if box else act_t.long()).double().cpu().numpy()
        return out.reshape(-1) - jacobian


class ReferencePolicy(Policy):
    """The scripted expert (``"expert"``) or uniform random actions (``"random"``).

    Reference points for evaluation tables (a ceiling acting from the simulator's privileged
    state, which masking or corrupting observations cannot change, and a floor that ignores
    observations) and the default policies of ``mmrl collect``. :meth:`attach` binds them to
    an environment: the expert reads its actions from that env's simulator, and the random
    actor restarts its generator from ``seed``, so every evaluation condition draws the same
    random actions.

    Args:
        name: ``"expert"`` or ``"random"``.
        seed: Seed of the random actions.

    Raises:
        ConfigError: An unknown name.
    """

    def __init__(self, name: str, seed: int = 0) -> None:
        if name not in REFERENCE_POLICIES:
            raise ConfigError(
                f"unknown reference policy {name!r}; allowed: {', '.join(REFERENCE_POLICIES)}"
            )
        super().__init__(name)
        self.kind = self.name = name
        self.seed = seed
        self.whole_batch = name == "expert"
        self._expert: Callable[[], np.ndarray] | None = None
        self._rng = np.random.default_rng(seed)

    def attach(self, venv: Any, what: str = "environment") -> None:
        """Binds the actor to ``venv`` (the raw env, below any observation wrapper).

        Raises:
            ConfigError: ``expert`` on an environment without a batched scripted expert.
        """
        if self.name == "expert":
            self._expert = find_expert(venv)
            if self._expert is None:
                raise ConfigError(
                    "expert: this environment has no batched scripted expert (mmrl environments "
                    "only); use the random policy or a trained one"
                )
        self._rng = np.random.default_rng(self.seed)
        self.observation_space = policy_view(venv.observation_space)
        self.action_space = venv.action_space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for a batch (only its size is read); ``deterministic`` is ignored.

        Raises:
            RuntimeError: Before :meth:`attach`, or the expert given a part of the batch.
        """
        if self.action_space is None:
            raise RuntimeError(f"{self.name}: call attach(venv) before predict")
        n = _batch_size(observation)
        if self.name == "random":
            return random_actions(self.action_space, n, self._rng), None
        actions = np.asarray(self._expert())
        if len(actions) != n:
            raise RuntimeError(
                f"expert: acts for all {len(actions)} copies at once but was given {n} rows "
                "(collect_episodes(..., subset_rows=False))"
            )
        return actions, None

    def log_prob(
        self, observation: Any, actions: np.ndarray, deterministic: bool = False
    ) -> np.ndarray:
        """Uniform for ``random``; the expert acts from the simulator's state, so its
        probabilities need that state: :meth:`Policy.log_prob` raises, and ``mmrl collect``
        logs them from the expert's action instead."""
        if self.name != "random":
            return super().log_prob(observation, actions, deterministic)
        if self.action_space is None:
            raise RuntimeError(f"{self.name}: call attach(venv) before log_prob")
        return np.full(len(actions), uniform_log_prob(self.action_space), dtype=np.float64)


# ---------------------------------------------------------------------------- references
def _is_encoder_checkpoint(path: Path) -> bool:
    from mmrl.pretrain.bc_policy import is_encoder_checkpoint

    return is_encoder_checkpoint(path)


def _locate(path: Path) -> tuple[str, Path, RunFolder | None, Path | None]:
    """``(label, model_path, run, checkpoint)`` of a run folder, checkpoint or model file.

    Raises:
        CheckpointError: Missing path, a folder that is neither a run nor a checkpoint, or a
            run without any model.
    """
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or model file")
    if path.is_dir() and (path / MODEL_FILE).is_file() and path.parent.name == CHECKPOINTS_DIR:
        path = path / MODEL_FILE  # a checkpoint folder: its model
    if path.is_dir():
        if not RunFolder.is_run(path):
            raise CheckpointError(
                f"{path}: not an mmrl run folder (no {CONFIG_FILE}); pass a model .zip with --env"
            )
        run = RunFolder(path)
        model_path = run.policy_model_path()
        # A killed run acts with its newest checkpoint's model: that checkpoint's statistics.
        checkpoint = run.latest_checkpoint()
        return path.name, model_path, run, checkpoint
    run = RunFolder.containing(path)
    if run is None:
        label = path.stem if path.stem != "model" else path.parent.name or path.stem
        return label, path, None, None
    if path.parent.parent.name == CHECKPOINTS_DIR:
        return f"{run.path.name}/{path.parent.name}", path, run, path.parent
    label = run.path.name if path.name == MODEL_FILE else f"{run.path.name}/{path.stem}"
    return label, path, run, run.latest_checkpoint()


def recorded_env(ref: str | Path) -> tuple[str, EnvConfig] | None:
    """The environment a policy reference records, read without loading any network.

    Returns:
        ``(name, config)`` from a run folder's config or a pretraining checkpoint's info;
        ``None`` for ``expert``, ``random`` and bare model files.

    Raises:
        CheckpointError: A missing path, or a checkpoint that records no environment.
        ConfigError: An invalid run config, or a recorded preset that no longer exists.
    """
    if str(ref) in REFERENCE_POLICIES:
        return None
    path = Path(ref)
    if path.is_file() and _is_encoder_checkpoint(path):
        from mmrl.make import resolve_env
        from mmrl.pretrain import load_encoder_checkpoint
        from mmrl.pretrain.resolve import env_preset_for

        recorded = load_encoder_checkpoint(path, "--policy").get("info", {}).get("env")
        if not recorded:
            raise CheckpointError(f"{path}: the checkpoint records no environment; pass --env")
        name = env_preset_for(recorded)
        return name, resolve_env(name)
    _, _, run, _ = _locate(path)
    if run is None:
        return None
    config = run.config()
    return config.env_name, config.env


def load_policy(
    ref: str | Path,
    *,
    env: str | EnvConfig | None = None,
    device: Any = "cpu",
    seed: int = 0,
) -> Policy:
    """Loads whatever ``ref`` names as a :class:`Policy`.

    Args:
        ref: A run folder, a model ``.zip`` (in a run, in one of its checkpoints, or bare),
            a checkpoint folder, a pretraining checkpoint ``.pt`` (its BC policy),
            ``"expert"`` or ``"random"`` (see the module docstring).
        env: The environment to act in: an env preset name/path, a Gymnasium id or an
            :class:`~mmrl.config.EnvConfig`. Default: the one the run or checkpoint records
            (a BC policy is rebuilt for this environment's spaces).
        device: Torch device of the network (``"cpu"``, ``"cuda"``, ``"auto"``).
        seed: Seed of the ``random`` policy's actions.

    Returns:
        The policy; its ``env_config`` is set when ``env`` or the reference names one.

    Raises:
        CheckpointError: A missing path, a folder that is not a run, a run without a model,
            a file that is not a model, a run that normalizes observations without saved
            statistics.
        ConfigError: An invalid run config or an unknown environment.
    """
    from mmrl.agent import resolve_device
    from mmrl.make import resolve_env

    ref_text = str(ref)
    env_name: str | None = None
    env_config: EnvConfig | None = None
    if env is not None:
        env_name = env if isinstance(env, str) else env.env_id
        env_config = resolve_env(env)
    elif (recorded := recorded_env(ref)) is not None:
        env_name, env_config = recorded

    if ref_text in REFERENCE_POLICIES:
        policy: Policy = ReferencePolicy(ref_text, seed=seed)
    elif _is_encoder_checkpoint(Path(ref)):
        from mmrl.pretrain.bc_policy import load_bc_policy

        path = Path(ref)
        bc_env = env_name if isinstance(env, str) or env is None else None
        _, bc, config = load_bc_policy(path, bc_env, "--policy")
        policy = ModelPolicy(path.stem, "bc", bc.to(resolve_device(device)))
        policy.model_path = path
        env_name = env_name or config.env_name
        env_config = env_config or config.env
    else:
        label, model_path, run, checkpoint = _locate(Path(ref))
        check_model_file(model_path)
        model = load_sb3_model(model_path, resolve_device(device))
        policy = ModelPolicy(label, "run" if run is not None else "model", model)
        policy.model_path, policy.run, policy.checkpoint = model_path, run, checkpoint
        if run is not None:
            policy.config = run.config()
            policy.obs_rms = run.normalization_stats(checkpoint)
    policy.env_name, policy.env_config = env_name, env_config
    return policy
