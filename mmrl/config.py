"""Typed configuration: environment presets (``envs/*.yaml``) and agent recipes (``agents/*.yaml``).

Presets are plain YAML mapped onto dataclasses by :func:`from_dict`, which rejects unknown
keys and wrong types with a message naming the key and the file (highway-env's nested dicts
silently drop misspelt keys; here a typo is an error). ``--set dotted.key=value`` overrides
apply to the merged tree before validation, and the fully resolved config is saved with
every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from mmrl.errors import ConfigError, one_line

T = TypeVar("T")


# ---------------------------------------------------------------------------- the schema
@dataclasses.dataclass
class WrapperSpec:
    """One observation wrapper applied to the environment.

    Attributes:
        name: Class name in ``mmrl.wrappers`` (``SensorNoise``, ``ModalityMask``, ...).
        kwargs: Keyword arguments of that wrapper.
    """

    name: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EnvConfig:
    """An environment preset.

    Attributes:
        env_id: Gymnasium id (``mmrl/Driving-v1``) or, with ``adapter``, the id in that suite.
        kwargs: Environment keyword arguments.
        n_envs: Copies stepped together during training.
        n_workers: Processes stepping the training copies (1: all in the training process;
            ``K`` splits them into ``K`` blocks, see ``mmrl.envs.workers``). The same
            results either way; more workers use more cores. Between 1 and ``n_envs``.
        adapter: ``None`` for mmrl ids, or ``"minigrid"`` / ``"highway"`` for other suites.
        wrappers: Observation wrappers applied in order (mmrl ids: applied per copy is not
            possible in the batched env, so only adapters accept wrappers).
        eval_kwargs: Extra environment kwargs for evaluation (e.g. the test instruction split).
        description: One line shown by ``mmrl envs``.
    """

    env_id: str = "mmrl/Driving-v1"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_envs: int = 16
    n_workers: int = 1
    adapter: str | None = None
    wrappers: list[WrapperSpec] = dataclasses.field(default_factory=list)
    eval_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def with_kwargs(self, **kwargs: Any) -> EnvConfig:
        """A copy whose environment takes ``kwargs`` in training and evaluation alike
        (e.g. ``tasks=["follow"]`` for a probe of one task); the rest is unchanged."""
        return dataclasses.replace(
            self,
            kwargs={**self.kwargs, **kwargs},
            eval_kwargs={**self.eval_kwargs, **kwargs},
        )


@dataclasses.dataclass
class ExtractorConfig:
    """The multimodal features extractor (see ``mmrl.extractor.MultimodalExtractor``).

    Attributes:
        fusion: Registered fusion name (``concat``, ``mean``, ``gated``, ``film``,
            ``attention``, ``perceiver``, ``query`` or a user-registered one).
        features_dim: Width of the fused feature vector.
        encoders: Per-key encoder override by name, e.g. ``{camera: impala}``.
        modality_dropout: Probability of dropping each modality per sample in training.
        fusion_kwargs: Extra arguments of the fusion module.
        encoder_kwargs: Extra arguments per encoder key.
    """

    fusion: str = "attention"
    features_dim: int = 256
    encoders: dict[str, str] = dataclasses.field(default_factory=dict)
    modality_dropout: float = 0.0
    fusion_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    encoder_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PolicyConfig:
    """Actor-critic heads on top of the extractor.

    Attributes:
        pi: Hidden layer sizes of the policy head.
        vf: Hidden layer sizes of the value head.
        activation: ``tanh`` or ``relu``.
        share_features_extractor: One extractor for actor and critic (SB3's default).
        ortho_init: Orthogonal initialization (SB3's default for PPO).
    """

    pi: list[int] = dataclasses.field(default_factory=lambda: [128])
    vf: list[int] = dataclasses.field(default_factory=lambda: [128])
    activation: str = "tanh"
    share_features_extractor: bool = True
    ortho_init: bool = True


#: Algorithms a recipe's ``algo`` may name (built by :func:`mmrl.agent.build_model`).
ALGORITHMS = ("ppo", "a2c", "recurrent-ppo", "dqn", "sac")
#: Those that learn from rollouts (they read ``ppo``); the others read ``off_policy``.
ON_POLICY = ("ppo", "a2c", "recurrent-ppo")
#: Those ``agent.guidance`` works with (``mmrl.guidance``).
GUIDED_ALGORITHMS = ("ppo", "a2c", "recurrent-ppo")


@dataclasses.dataclass
class PPOConfig:
    """PPO hyperparameters, passed to ``stable_baselines3.PPO`` (see its docs).

    Every algorithm reads ``learning_rate``, ``lr_schedule`` and ``gamma`` from here;
    ``recurrent-ppo`` reads all of it, ``a2c`` all but ``batch_size``, ``n_epochs``,
    ``clip_range`` and ``target_kl``; ``dqn`` and ``sac`` read the rest from
    :class:`OffPolicyConfig`.

    Attributes:
        learning_rate: Adam step size (linearly annealed to 0 when ``lr_schedule`` is linear).
        lr_schedule: ``constant`` or ``linear``.
        n_steps: Rollout length per environment copy.
        batch_size: Minibatch size.
        n_epochs: Optimization epochs per rollout.
        gamma: Discount factor.
        gae_lambda: GAE lambda.
        clip_range: PPO clipping parameter.
        ent_coef: Entropy bonus coefficient.
        vf_coef: Value loss coefficient.
        max_grad_norm: Gradient clipping norm.
        target_kl: Early stop an update when the KL exceeds this (``None`` disables).
    """

    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None


@dataclasses.dataclass
class RecurrentConfig:
    """The LSTM of ``recurrent-ppo`` (sb3-contrib's ``RecurrentPPO``, see its docs).

    Attributes:
        lstm_hidden_size: Units of the LSTM.
        n_lstm_layers: Stacked LSTM layers.
        shared_lstm: One LSTM for actor and critic.
        enable_critic_lstm: A separate LSTM for the critic (when not shared).
        skip_connection: The heads read the extractor's features beside the LSTM's output
            (an LSTM beside the feed-forward path, :mod:`mmrl.recurrent`); a feed-forward
            BC head then loads with the memory's weights at zero (``--init-policy-head``).
    """

    lstm_hidden_size: int = 128
    n_lstm_layers: int = 1
    shared_lstm: bool = False
    enable_critic_lstm: bool = True
    skip_connection: bool = False


@dataclasses.dataclass
class OffPolicyConfig:
    """Replay-buffer algorithms (``dqn``, ``sac``), passed to SB3's ``DQN`` / ``SAC``.

    The buffer holds every observation twice (this one and the next), camera images
    included, so its default is far below SB3's million: 20,000 transitions of a 64x64
    camera are about 0.5 GB.

    Attributes:
        buffer_size: Replay buffer capacity (transitions).
        learning_starts: Environment steps collected before the first update.
        batch_size: Minibatch size sampled from the buffer.
        tau: Soft target-update coefficient (1 = hard update; ``None``: the algorithm's
            default, 1 for DQN and 0.005 for SAC).
        train_freq: Update every this many steps per environment copy (``None``: the
            algorithm's default, 4 for DQN and 1 for SAC).
        gradient_steps: Gradient steps per update.
        target_update_interval: ``dqn``: environment steps between target-network updates.
        exploration_fraction: ``dqn``: fraction of training over which epsilon decays.
        exploration_final_eps: ``dqn``: final epsilon of epsilon-greedy exploration.
        ent_coef: ``sac``: entropy coefficient, a number or ``auto`` (learned).
    """

    buffer_size: int = 20_000
    learning_starts: int = 1_000
    batch_size: int = 64
    tau: float | None = None
    train_freq: int | None = None
    gradient_steps: int = 1
    target_update_interval: int = 1_000
    exploration_fraction: float = 0.1
    exploration_final_eps: float = 0.05
    ent_coef: float | str = "auto"


@dataclasses.dataclass
class NormalizeConfig:
    """Observation/reward normalization with SB3's ``VecNormalize``.

    Attributes:
        obs_keys: Observation keys to normalize (float keys only, e.g. ``[state]``).
        reward: Normalize rewards by a running return estimate.
    """

    obs_keys: list[str] = dataclasses.field(default_factory=list)
    reward: bool = False


@dataclasses.dataclass
class InitConfig:
    """Initialization of the policy from pretrained encoders (``mmrl pretrain``).

    Attributes:
        path: Encoder checkpoint written by ``mmrl pretrain`` (``None``: from scratch).
        freeze_encoders_steps: Keep the loaded extractor frozen for this many env steps
            (``recurrent-ppo`` with ``init_policy_head``: the loaded LSTM too).
        encoder_lr_scale: Learning-rate multiplier of the extractor after unfreezing (and of
            a loaded LSTM).
        init_policy_head: Also load the behaviour-cloning action head.
        critic_warmup_steps: With ``init_policy_head``: for this many env steps only the
            critic learns (value head, and the critic's own MLP, extractor or LSTM), so the
            loaded policy is improved with advantages from a fitted value function instead
            of a random one's, which can undo the pretrained behaviour in the first updates.
    """

    path: str | None = None
    freeze_encoders_steps: int = 0
    encoder_lr_scale: float = 1.0
    init_policy_head: bool = False
    critic_warmup_steps: int = 0


@dataclasses.dataclass
class GuidanceConfig:
    """Expert guidance while training (:mod:`mmrl.guidance`): an imitation loss on the
    states the agent visits, labelled by the environment's scripted expert.

    The expert acts from the simulator's true state. Where the agent cannot observe what
    the expert's choice depends on, the agent can only learn an average of the expert's
    actions, and a constant weight holds it there: on Navigation-v1 (the planner knows the
    whole room, the agent sees a 90-degree view) weight 1 took success from 33 % at the
    start to 0 % (BENCHMARKS.md), while on Driving-v1 it lifted success from 65 % to 74 %.
    Use ``decay_steps`` there.

    Attributes:
        weight: Weight of the imitation loss (0: off). Needs an on-policy ``algo`` and an
            environment with a scripted expert (mmrl's own envs).
        decay_steps: Env steps over which the weight falls linearly to 0 (0: constant).
        epochs: Passes over each rollout per update.
        label_weight: Weight of an auxiliary loss in the same pass, predicting the
            simulator's privileged labels (e.g. where the instruction's referent is) from
            the actor's features (0: off; constant). Works with or without ``weight``; needs
            an on-policy ``algo`` and an environment with labels (mmrl's own envs).
        labels: The labels that loss fits, by name (``info["labels"]`` keys); empty: all
            of them. E.g. ``[target_lane_offset]`` on Driving puts the whole weight on where
            the named car is.
        label_input: What the label head reads: ``features`` (the extractor's output) or,
            for ``recurrent-ppo``, ``memory`` (the actor LSTM's output): a label the current
            observation no longer shows (the lane of the car just passed, behind the camera)
            can then only be predicted by remembering it, which trains the LSTM to keep it.
        sequences: For ``recurrent-ppo``: run the pass over whole rollouts, backpropagating
            through the LSTM (as PPO's update does), instead of one step from the state
            the rollout recorded (``mmrl.guidance``).
    """

    weight: float = 0.0
    decay_steps: int = 0
    epochs: int = 1
    label_weight: float = 0.0
    labels: list[str] = dataclasses.field(default_factory=list)
    label_input: str = "features"
    sequences: bool = False


#: What ``agent.guidance.label_input`` may name.
LABEL_INPUTS = ("features", "memory")


@dataclasses.dataclass
class AgentConfig:
    """An agent recipe.

    Attributes:
        algo: Learning algorithm: ``ppo``, ``a2c``, ``dqn`` (discrete actions) and ``sac``
            (continuous actions) from Stable-Baselines3, or ``recurrent-ppo``
            (sb3-contrib's ``RecurrentPPO``, an LSTM policy for partially observed tasks).
        extractor: Features extractor settings.
        policy: Head settings (``pi``: the actor, or DQN's Q-network; ``vf``: the critic,
            or SAC's Q-networks).
        ppo: PPO hyperparameters (and the ones every algorithm reads, see PPOConfig).
        recurrent: The LSTM of ``recurrent-ppo``.
        off_policy: Replay-buffer settings of ``dqn`` and ``sac``.
        normalize: Observation/reward normalization.
        init: Pretrained-weight initialization.
        guidance: Expert guidance (an imitation loss on the agent's own states).
        env_overrides: Per environment preset name, a partial agent config merged on top.
        description: One line shown by ``mmrl envs``.
    """

    algo: str = "ppo"
    extractor: ExtractorConfig = dataclasses.field(default_factory=ExtractorConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    recurrent: RecurrentConfig = dataclasses.field(default_factory=RecurrentConfig)
    off_policy: OffPolicyConfig = dataclasses.field(default_factory=OffPolicyConfig)
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)
    init: InitConfig = dataclasses.field(default_factory=InitConfig)
    guidance: GuidanceConfig = dataclasses.field(default_factory=GuidanceConfig)
    env_overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    description: str = ""


@dataclasses.dataclass
class RunConfig:
    """Everything one training run needs; saved as ``config.yaml`` in the run folder.

    Attributes:
        env_name: Environment preset name (or path) it was built from.
        agent_name: Agent recipe name (or path) it was built from.
        env: The resolved environment preset.
        agent: The resolved agent recipe (``env_overrides`` already applied).
        steps: Total environment steps.
        seed: Seed of the run (environments, torch, numpy).
        device: ``auto``, ``cpu`` or ``cuda`` (``cuda:N``).
        eval_freq: Evaluate every this many environment steps (0 disables).
        eval_episodes: Episodes per evaluation.
        eval_seed: First seed of the held-out evaluation episodes.
        checkpoint_freq: Write a checkpoint every this many environment steps.
        torch_threads: CPU threads torch may use (0 = torch's default, all cores). PPO's
            small networks gain little from intra-op parallelism, and OpenMP threads that
            outnumber free cores spin and stall (measured 40x slower on a busy 2-core
            machine), so the default is 1; raise it on an idle many-core machine.
        stop_success: Stop training at the first periodic evaluation whose success rate on
            the ``stop_split`` instruction split (held-out seeds) reaches this value; ``None``
            trains for all ``steps``. Like SB3's ``StopTrainingOnRewardThreshold``, on success.
        stop_split: Instruction split ``stop_success`` watches: ``train`` or ``test`` (the
            held-out instructions, for environments that have them).
    """

    env_name: str = "driving"
    agent_name: str = "ppo-concat"
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    steps: int = 200_000
    seed: int = 0
    device: str = "auto"
    eval_freq: int = 50_000
    eval_episodes: int = 32
    eval_seed: int = 1_000_000
    checkpoint_freq: int = 20_000
    torch_threads: int = 1
    stop_success: float | None = None
    stop_split: str = "train"


# ---------------------------------------------------------------------------- generic mapping
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` (recursing into dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, item, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Builds dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Args:
        cls: The dataclass.
        data: Parsed YAML.
        where: Prefix for error messages (file name and key path).

    Raises:
        ConfigError: Naming the offending key, the file and what is allowed.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key {unknown[0]!r}; allowed keys: {', '.join(names)}"
        )
    values = {}
    for key, value in data.items():
        sub = f"{where}.{key}" if where else key
        values[key] = _coerce(value, hints[key], sub)
    return cls(**values)


def to_dict(obj: Any) -> Any:
    """Dataclass tree to plain Python (for YAML/JSON)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merges ``override`` into a copy of ``base`` (mappings merge, rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parses ``dotted.key=value`` (value read as YAML: ``1e-4``, ``true``, ``[64, 64]``).

    Raises:
        ConfigError: If the item has no ``=``, an empty key or an unparsable value.
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. agent.ppo.learning_rate=1e-4")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"--set {item!r}: empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} ({err.problem})") from None
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; on the command line it means a number.
        with contextlib.suppress(ValueError):
            value = float(value)
    return path, value


def apply_override(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Sets ``tree[path[0]]...[path[-1]] = value``, creating mappings on the way."""
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {part!r} is not a mapping")
        node = child
    node[path[-1]] = value


# ---------------------------------------------------------------------------- presets on disk
PRESET_KINDS = ("envs", "agents")


def preset_dirs(kind: str) -> list[Path]:
    """Folders searched for presets of ``kind``: the checkout's top level, then the package."""
    if kind not in PRESET_KINDS:
        raise ValueError(f"kind must be one of {PRESET_KINDS}, got {kind!r}")
    here = Path(__file__).resolve().parent
    candidates = [here.parent / kind, here / "presets" / kind]
    return [d for d in candidates if d.is_dir()]


def available_presets(kind: str) -> list[str]:
    """Sorted preset names of ``kind`` (file stems)."""
    names: set[str] = set()
    for folder in preset_dirs(kind):
        names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


def find_preset(kind: str, name_or_path: str) -> Path:
    """Resolves a preset name (``driving``) or a path to a YAML file.

    Raises:
        ConfigError: Unknown name (listing the available ones) or missing file.
    """
    if not name_or_path.strip():
        raise ConfigError(
            f"empty {kind[:-1]} preset name; available: {', '.join(available_presets(kind))}"
        )
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path or candidate.exists():
        if candidate.is_file():
            return candidate
        raise ConfigError(f"{kind[:-1]} preset file not found: {name_or_path}")
    for folder in preset_dirs(kind):
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    raise ConfigError(
        f"unknown {kind[:-1]} preset {name_or_path!r}; available: "
        f"{', '.join(available_presets(kind)) or '(none)'}"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """Reads a YAML mapping, with errors naming the file.

    Raises:
        ConfigError: The file cannot be read, is not UTF-8, is not YAML, is empty (an empty
            run ``config.yaml`` used to become the default config silently) or does not hold
            a mapping.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({one_line(err)})") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (expected a YAML mapping)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_env_preset(name_or_path: str) -> EnvConfig:
    """Loads and validates an environment preset."""
    path = find_preset("envs", name_or_path)
    return from_dict(EnvConfig, read_yaml(path), where=path.name)


def load_agent_preset(name_or_path: str) -> AgentConfig:
    """Loads and validates an agent recipe."""
    path = find_preset("agents", name_or_path)
    return from_dict(AgentConfig, read_yaml(path), where=path.name)


def resolve_run_config(
    env: str,
    agent: str,
    overrides: list[str] | None = None,
    **fields: Any,
) -> RunConfig:
    """Builds the fully resolved :class:`RunConfig` of a training run.

    Order: agent recipe, then its ``env_overrides[env]``, then ``fields`` (``steps``,
    ``seed`` ...), then the ``--set`` overrides (dotted paths into the run config, e.g.
    ``agent.ppo.n_steps=64`` or ``env.n_envs=8``).

    Raises:
        ConfigError: Unknown preset, unknown key or wrong type, naming the key and file.
    """
    env_path = find_preset("envs", env)
    agent_path = find_preset("agents", agent)
    env_tree = read_yaml(env_path)
    agent_tree = read_yaml(agent_path)
    from_dict(EnvConfig, env_tree, where=env_path.name)
    from_dict(AgentConfig, agent_tree, where=agent_path.name)
    env_name = env_path.stem
    env_overrides = agent_tree.get("env_overrides", {}) or {}
    if env_name in env_overrides:
        agent_tree = deep_merge(agent_tree, env_overrides[env_name])
    tree: dict[str, Any] = {
        "env_name": env,
        "agent_name": agent,
        "env": env_tree,
        "agent": agent_tree,
        **{k: v for k, v in fields.items() if v is not None},
    }
    for item in overrides or []:
        path, value = parse_override(item)
        apply_override(tree, path, value)
    config = from_dict(RunConfig, tree, where=f"run config ({env_path.name} + {agent_path.name})")
    validate_run_config(config)
    return config


def max_torch_threads() -> int:
    """Most ``torch_threads`` a run may ask for: the machine's cores (at least 1).

    More OpenMP threads than cores never speeds PPO's small networks up, and a huge count
    (``torch_threads=99999``) crashed the process with a segmentation fault (issue 15).
    """
    import os

    return max(1, os.cpu_count() or 1)


def _finite(value: float) -> bool:
    return math.isfinite(value)


def validate_run_config(config: RunConfig) -> None:
    """Range checks that types alone cannot express.

    Every field SB3 or the extractor would refuse (or accept and then fail on mid-run, as
    ``n_epochs=0`` did after the run folder was written) is checked here, so a bad value
    fails before anything is written.
    """
    from mmrl.envs.config import MAX_SEED  # function level: keeps `import mmrl.config` light

    ppo = config.agent.ppo
    ext = config.agent.extractor
    pol = config.agent.policy
    off = config.agent.off_policy
    guide = config.agent.guidance
    threads = max_torch_threads()
    checks = [
        (config.steps >= 1, "steps must be >= 1"),
        (
            0 <= config.seed <= MAX_SEED - config.env.n_envs,
            f"seed must be in [0, 2**32 - 1 - env.n_envs], got {config.seed}",
        ),
        (
            0 <= config.eval_seed <= MAX_SEED - config.env.n_envs,
            f"eval_seed must be in [0, 2**32 - 1 - env.n_envs], got {config.eval_seed}",
        ),
        (config.env.n_envs >= 1, "env.n_envs must be >= 1"),
        (
            1 <= config.env.n_workers <= config.env.n_envs,
            f"env.n_workers must be between 1 and env.n_envs ({config.env.n_envs}), "
            f"got {config.env.n_workers}",
        ),
        (
            config.agent.algo in ALGORITHMS,
            f"agent.algo must be one of {', '.join(ALGORITHMS)}, got {config.agent.algo!r}",
        ),
        (
            config.agent.recurrent.lstm_hidden_size >= 1,
            "agent.recurrent.lstm_hidden_size must be >= 1",
        ),
        (config.agent.recurrent.n_lstm_layers >= 1, "agent.recurrent.n_lstm_layers must be >= 1"),
        (off.buffer_size >= 1, "agent.off_policy.buffer_size must be >= 1"),
        (off.batch_size >= 1, "agent.off_policy.batch_size must be >= 1"),
        (
            off.train_freq is None or off.train_freq >= 1,
            "agent.off_policy.train_freq must be >= 1",
        ),
        (
            off.learning_starts >= 0,
            "agent.off_policy.learning_starts must be >= 0",
        ),
        (
            off.gradient_steps >= 1,
            "agent.off_policy.gradient_steps must be >= 1",
        ),
        (
            off.target_update_interval >= 1,
            "agent.off_policy.target_update_interval must be >= 1",
        ),
        (
            off.tau is None or (_finite(off.tau) and 0 < off.tau <= 1),
            f"agent.off_policy.tau must be in (0, 1], got {off.tau}",
        ),
        (
            _finite(off.exploration_fraction) and 0 <= off.exploration_fraction <= 1,
            "agent.off_policy.exploration_fraction must be in [0, 1], got "
            f"{off.exploration_fraction}",
        ),
        (
            _finite(off.exploration_final_eps) and 0 <= off.exploration_final_eps <= 1,
            "agent.off_policy.exploration_final_eps must be in [0, 1], got "
            f"{off.exploration_final_eps}",
        ),
        (
            off.ent_coef == "auto"
            or (not isinstance(off.ent_coef, str) and _finite(off.ent_coef) and off.ent_coef > 0),
            f"agent.off_policy.ent_coef must be a number > 0 or 'auto', got {off.ent_coef!r}",
        ),
        (config.agent.ppo.n_steps >= 1, "agent.ppo.n_steps must be >= 1"),
        (config.agent.ppo.batch_size >= 2, "agent.ppo.batch_size must be >= 2"),
        (
            0 < ppo.learning_rate <= 1,  # Adam's step; above 1 it only diverges (or overflows)
            f"agent.ppo.learning_rate must be in (0, 1], got {ppo.learning_rate}",
        ),
        (ppo.n_epochs >= 1, f"agent.ppo.n_epochs must be >= 1, got {ppo.n_epochs}"),
        (0 < ppo.gamma <= 1, f"agent.ppo.gamma must be in (0, 1], got {ppo.gamma}"),
        (0 <= ppo.gae_lambda <= 1, f"agent.ppo.gae_lambda must be in [0, 1], got {ppo.gae_lambda}"),
        (
            ppo.clip_range > 0 and _finite(ppo.clip_range),
            f"agent.ppo.clip_range must be a finite number > 0, got {ppo.clip_range}",
        ),
        (
            _finite(ppo.ent_coef) and ppo.ent_coef >= 0,
            f"agent.ppo.ent_coef must be a finite number >= 0, got {ppo.ent_coef}",
        ),
        (
            _finite(ppo.vf_coef) and ppo.vf_coef >= 0,
            f"agent.ppo.vf_coef must be a finite number >= 0, got {ppo.vf_coef}",
        ),
        (
            ppo.max_grad_norm > 0,
            f"agent.ppo.max_grad_norm must be > 0, got {ppo.max_grad_norm}",
        ),
        (
            ppo.target_kl is None or (ppo.target_kl > 0 and _finite(ppo.target_kl)),
            f"agent.ppo.target_kl must be a finite number > 0 or null, got {ppo.target_kl}",
        ),
        (
            ext.features_dim >= 1,
            f"agent.extractor.features_dim must be >= 1, got {ext.features_dim}",
        ),
        (
            all(width >= 1 for width in [*pol.pi, *pol.vf]),
            f"agent.policy.pi and .vf widths must be >= 1, got pi={pol.pi} vf={pol.vf}",
        ),
        (
            len(set(config.agent.normalize.obs_keys)) == len(config.agent.normalize.obs_keys),
            f"agent.normalize.obs_keys has duplicates: {config.agent.normalize.obs_keys}",
        ),
        (
            config.agent.ppo.lr_schedule in ("constant", "linear"),
            "agent.ppo.lr_schedule must be 'constant' or 'linear'",
        ),
        (
            0 <= ext.modality_dropout < 1,
            "agent.extractor.modality_dropout must be in [0, 1) (1 would drop every "
            f"modality), got {ext.modality_dropout}",
        ),
        (config.agent.policy.activation in ("tanh", "relu"), "policy.activation: tanh or relu"),
        (
            _finite(guide.weight) and 0 <= guide.weight <= 1000,
            f"agent.guidance.weight must be a number in [0, 1000], got {guide.weight}",
        ),
        (
            guide.decay_steps >= 0,
            f"agent.guidance.decay_steps must be >= 0, got {guide.decay_steps}",
        ),
        (guide.epochs >= 1, f"agent.guidance.epochs must be >= 1, got {guide.epochs}"),
        (
            _finite(guide.label_weight) and 0 <= guide.label_weight <= 1000,
            f"agent.guidance.label_weight must be a number in [0, 1000], got {guide.label_weight}",
        ),
        (
            guide.label_input in LABEL_INPUTS,
            f"agent.guidance.label_input must be one of {', '.join(LABEL_INPUTS)}, got "
            f"{guide.label_input!r}",
        ),
        (
            not guide.sequences or config.agent.algo == "recurrent-ppo",
            "agent.guidance.sequences runs the pass through the actor LSTM: it needs "
            f"agent.algo recurrent-ppo, got {config.agent.algo!r}",
        ),
        (
            guide.label_input != "memory" or config.agent.algo == "recurrent-ppo",
            "agent.guidance.label_input=memory reads the actor LSTM: it needs agent.algo "
            f"recurrent-ppo, got {config.agent.algo!r}",
        ),
        (
            (guide.weight == 0 and guide.label_weight == 0)
            or config.agent.algo in GUIDED_ALGORITHMS,
            f"agent.guidance needs an on-policy agent.algo ({', '.join(GUIDED_ALGORITHMS)}), "
            f"got {config.agent.algo!r}",
        ),
        (config.eval_freq >= 0, "eval_freq must be >= 0"),
        (config.eval_episodes >= 1, "eval_episodes must be >= 1"),
        (config.checkpoint_freq >= 1, "checkpoint_freq must be >= 1"),
        (
            0 <= config.torch_threads <= threads,
            f"torch_threads must be in [0, {threads}] (0 = torch's default, at most this "
            f"machine's cores), got {config.torch_threads}",
        ),
        (
            config.stop_success is None or 0 <= config.stop_success <= 1,
            f"stop_success must be in [0, 1] or null, got {config.stop_success}",
        ),
        (
            config.stop_success is None or config.eval_freq > 0,
            "stop_success needs periodic evaluation (eval_freq > 0)",
        ),
        (
            config.stop_split in ("train", "test"),
            f"stop_split must be 'train' or 'test', got {config.stop_split!r}",
        ),
        (
            config.stop_success is None or config.stop_split != "test" or config.env.eval_kwargs,
            "stop_split 'test' needs an environment with a held-out test split (env.eval_kwargs)",
        ),
        (
            config.device == "auto" or config.device == "cpu" or config.device.startswith("cuda"),
            f"device must be auto, cpu or cuda[:N], got {config.device!r}",
        ),
        (
            config.env.adapter in (None, "minigrid", "highway"),
            f"env.adapter must be null, minigrid or highway, got {config.env.adapter!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
