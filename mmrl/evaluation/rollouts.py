"""Rollout evaluation of trained policies: batched episodes, metrics with confidence intervals.

One evaluation = one model x one environment split x one *condition* (clean observations, a
modality removed, or sensor noise), run for a fixed number of episodes spread evenly over the
copies of a batched ``VecEnv`` (:func:`mmrl.rollout.collect_episodes`). Every condition uses
the same seeds, so the clean and corrupted evaluations start from the same episodes (common
random numbers), which makes their difference less noisy.

Episode ``k`` of copy ``i`` is fully determined by ``(seed, n_envs)``: copy ``i`` is seeded
with ``seed + i`` and runs its episodes back to back. Changing ``n_envs`` changes which
episodes are drawn, so it is recorded with every result.

Success per instruction type: episodes are grouped by ``--group-by`` (see
:class:`GroupNamer`). The default, ``auto``, uses the environment's privileged instruction
label when there is one (``info["labels"]["instruction_type"]`` in Driving, named by the task
grammar: ``take_exit``, ``follow`` ...; ``target_shape`` in Navigation, whose single task is
"go to the object", so the shape is the instruction's type), and otherwise the instruction's
first word (its verb: "go", "follow" ...), which needs no labels but splits synonyms.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mmrl.commands.evaluate import EvaluateOptions
from mmrl.config import ConfigError, EnvConfig
from mmrl.envs.tokenizer import Tokenizer
from mmrl.evaluation.conditions import CLEAN, Condition, ablation_context, condition_wrapper
from mmrl.evaluation.stats import Interval, bootstrap_ci, wilson_interval
from mmrl.policies import Policy
from mmrl.rollout import Episode, collect_episodes, summarize_arrays

__all__ = [
    "CLEAN",
    "GROUP_LABEL_KEYS",
    "SPLITS",
    "Condition",
    "EvalResult",
    "EvalSettings",
    "GroupNamer",
    "GroupStats",
    "env_label_names",
    "evaluate_model",
    "make_eval_vec_env",
    "split_overrides",
    "summarize_episodes",
]

SPLITS = ("train", "test")
GROUP_LABEL_KEYS = ("instruction_type", "task", "task_type", "target_shape")
"""Label keys that ``--group-by auto`` uses, first present wins."""


# ---------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How evaluations are run and summarized.

    Attributes:
        episodes: Episodes per evaluation (>= 1).
        seed: Base seed; copy ``i`` uses ``seed + i`` (10000 by default: far from the
            training seeds and from ``mmrl train``'s periodic evaluation seeds).
        n_envs: Environment copies stepped together (``None``: ``min(episodes, 100)``).
        deterministic: Greedy actions (``False``: sample from the policy).
        group_by: How episodes are grouped by instruction (see :class:`GroupNamer`).
        ablate_mode: ``auto`` (extractor mask when the policy has a MultimodalExtractor, else
            zeroed observations), ``extractor`` or ``zero``.
        n_resamples: Bootstrap resamples per interval.
        confidence: Coverage of every interval.
    """

    # The defaults are mmrl evaluate's (declared once, with their --help text).
    episodes: int = EvaluateOptions.episodes
    seed: int = EvaluateOptions.seed
    n_envs: int | None = None
    deterministic: bool = True
    group_by: str = EvaluateOptions.group_by
    ablate_mode: str = EvaluateOptions.ablate_mode
    n_resamples: int = EvaluateOptions.bootstrap
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {self.episodes}")
        if self.n_envs is not None and self.n_envs < 1:
            raise ConfigError(f"--n-envs must be >= 1, got {self.n_envs}")
        if self.ablate_mode not in ("auto", "extractor", "zero"):
            raise ConfigError(
                f"--ablate-mode must be auto, extractor or zero, got {self.ablate_mode!r}"
            )
        if self.n_resamples < 1:
            raise ConfigError(f"--bootstrap must be >= 1, got {self.n_resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
        GroupNamer.check(self.group_by)

    @property
    def copies(self) -> int:
        """Environment copies actually used."""
        return self.n_envs if self.n_envs is not None else min(self.episodes, 100)


# ---------------------------------------------------------------------------- grouping
class GroupNamer:
    """Names the instruction group of an episode.

    ``group_by`` is one of:

    * ``auto``: the first of :data:`GROUP_LABEL_KEYS` present in ``info["labels"]``, named
      through ``label_names`` (e.g. Driving's task names), else ``verb``;
    * ``verb``: the instruction's first word (``"(none)"`` without instructions);
    * ``instruction``: the full instruction string;
    * ``label:KEY``: the value of ``info["labels"][KEY]`` (named when ``label_names`` has it);
    * ``none``: one group, ``all``.

    Args:
        group_by: See above.
        label_names: Per label key, the names of its integer values.
    """

    FIXED = ("auto", "verb", "instruction", "none")

    def __init__(
        self, group_by: str = "auto", label_names: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.check(group_by)
        self.group_by = group_by
        self.label_names = {k: tuple(v) for k, v in (label_names or {}).items()}

    @classmethod
    def check(cls, group_by: str) -> None:
        """Raises ``ConfigError`` for an unknown ``group_by``."""
        if group_by in cls.FIXED or (group_by.startswith("label:") and len(group_by) > 6):
            return
        raise ConfigError(
            f"--group-by must be one of {', '.join(cls.FIXED)} or label:KEY, got {group_by!r}"
        )

    def _label(self, key: str, value: Any) -> str:
        names = self.label_names.get(key)
        if names is not None and isinstance(value, int | np.integer) and 0 <= value < len(names):
            return str(names[int(value)])
        return f"{key}={value}"

    @staticmethod
    def _verb(instruction: str) -> str:
        words = Tokenizer.split(instruction)
        return words[0] if words else "(none)"

    def __call__(self, episode: Episode) -> str:
        mode = self.group_by
        if mode == "none":
            return "all"
        if mode == "instruction":
            return episode.instruction or "(none)"
        if mode == "verb":
            return self._verb(episode.instruction)
        if mode.startswith("label:"):
            key = mode[6:]
            if key not in episode.labels:
                raise ConfigError(
                    f"--group-by {mode}: the environment reports no label {key!r}; labels: "
                    f"{sorted(episode.labels) or '(none)'}"
                )
            return self._label(key, episode.labels[key])
        for key in GROUP_LABEL_KEYS:
            if key in episode.labels:
                return self._label(key, episode.labels[key])
        return self._verb(episode.instruction)


def env_label_names(venv: Any) -> dict[str, tuple[str, ...]]:
    """Names of integer labels: the simulator's ``label_names`` (every mmrl simulator declares
    them, see :class:`~mmrl.envs.base.BatchedSimulator`), or none."""
    names: dict[str, tuple[str, ...]] = {}
    own = None
    # BatchedVecEnv forwards attributes to its simulator; a DummyVecEnv of MultimodalEnvs
    # reaches the simulator through the env's ``sim``.
    for attr in ("label_names", "sim"):
        try:
            value = venv.get_attr(attr, indices=[0])[0]
        except AttributeError:
            continue
        own = value if attr == "label_names" else getattr(value, "label_names", None)
        break
    if isinstance(own, Mapping):
        names.update({k: tuple(v) for k, v in own.items()})
    return names


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass
class GroupStats:
    """Success within one instruction group.

    Attributes:
        episodes: Episodes in the group.
        success_rate: Rate with its Wilson interval.
        mean_return: Mean return in the group.
    """

    episodes: int
    success_rate: Interval
    mean_return: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate.to_dict(),
            "mean_return": self.mean_return,
        }


@dataclasses.dataclass
class EvalResult:
    """One evaluation: a model, a split and a condition, summarized with intervals.

    Attributes:
        label: The model's name (run folder or file).
        env_id: The environment id.
        split: Instruction split, ``train`` or ``test``.
        condition: What was changed about the observations.
        returns: ``(n,)`` float64 per-episode undiscounted returns.
        lengths: ``(n,)`` int64 per-episode lengths.
        successes: ``(n,)`` bool.
        collisions: ``(n,)`` bool, any collision in the episode.
        groups: Per episode, its instruction group (see :class:`GroupNamer`).
        reward_terms: Mean per-episode sum of each named reward term.
        mean_return: Mean return with its percentile-bootstrap interval.
        iqm_return: IQM of returns with its percentile-bootstrap interval.
        success_rate: Success rate with its Wilson interval.
        collision_rate: Collision rate with its Wilson interval.
        mean_length: Mean episode length with its percentile-bootstrap interval.
        by_group: :class:`GroupStats` per group, sorted by group name.
        seconds: Wall-clock time of the rollouts.
        settings: The settings used.
    """

    label: str
    env_id: str
    split: str
    condition: Condition
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray
    collisions: np.ndarray
    groups: list[str]
    reward_terms: dict[str, float]
    mean_return: Interval
    iqm_return: Interval
    success_rate: Interval
    collision_rate: Interval
    mean_length: Interval
    by_group: dict[str, GroupStats]
    seconds: float
    settings: EvalSettings

    @property
    def episodes(self) -> int:
        """Number of episodes."""
        return len(self.returns)

    @property
    def steps(self) -> int:
        """Environment steps over all episodes."""
        return int(self.lengths.sum())

    def summary(self) -> dict[str, float]:
        """Plain means (:func:`mmrl.rollout.summarize`'s keys: ``episodes``, ``mean_return``,
        ``std_return``, ``mean_length``, ``success_rate``, ``collision_rate``), the form of
        ``mmrl train``'s periodic evaluations and of ``mmrl bench``'s ablation records."""
        return summarize_arrays(self.returns, self.lengths, self.successes, self.collisions)

    def to_dict(self, per_episode: bool = True) -> dict[str, Any]:
        """Plain data for JSON; ``per_episode`` adds the raw per-episode arrays."""
        out: dict[str, Any] = {
            "label": self.label,
            "env_id": self.env_id,
            "split": self.split,
            "condition": self.condition.name,
            "ablate": list(self.condition.ablate),
            "noise": self.condition.noise,
            "episodes": self.episodes,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "seed": self.settings.seed,
            "n_envs": self.settings.copies,
            "deterministic": self.settings.deterministic,
            "confidence": self.settings.confidence,
            "mean_return": self.mean_return.to_dict(),
            "iqm_return": self.iqm_return.to_dict(),
            "success_rate": self.success_rate.to_dict(),
            "collision_rate": self.collision_rate.to_dict(),
            "mean_length": self.mean_length.to_dict(),
            "reward_terms": self.reward_terms,
            "by_group": {k: v.to_dict() for k, v in self.by_group.items()},
        }
        if per_episode:
            out["per_episode"] = {
                "return": self.returns.tolist(),
                "length": self.lengths.tolist(),
                "success": self.successes.tolist(),
                "collision": self.collisions.tolist(),
                "group": list(self.groups),
            }
        return out


def summarize_episodes(
    episodes: Sequence[Episode],
    *,
    label: str,
    env_id: str,
    split: str,
    condition: Condition,
    settings: EvalSettings,
    namer: GroupNamer | None = None,
    seconds: float = 0.0,
) -> EvalResult:
    """Turns episodes into an :class:`EvalResult` with bootstrap and Wilson intervals.

    The bootstrap generator is seeded from ``settings.seed`` so tables are reproducible.
    """
    if not episodes:
        raise ValueError("no episodes to summarize")
    namer = namer or GroupNamer(settings.group_by)
    returns = np.array([e.ret for e in episodes], dtype=np.float64)
    lengths = np.array([e.length for e in episodes], dtype=np.int64)
    successes = np.array([e.success for e in episodes], dtype=bool)
    collisions = np.array([e.collision for e in episodes], dtype=bool)
    groups = [namer(e) for e in episodes]
    terms: dict[str, float] = {}
    for e in episodes:
        for k, v in e.reward_terms.items():
            terms[k] = terms.get(k, 0.0) + v / len(episodes)
    conf, b = settings.confidence, settings.n_resamples
    rng = np.random.default_rng(settings.seed)
    by_group = {}
    group_arr = np.array(groups, dtype=object)
    for name in sorted(set(groups)):
        rows = group_arr == name
        by_group[name] = GroupStats(
            int(rows.sum()),
            wilson_interval(int(successes[rows].sum()), int(rows.sum()), conf),
            float(returns[rows].mean()),
        )
    n = len(episodes)
    return EvalResult(
        label=label,
        env_id=env_id,
        split=split,
        condition=condition,
        returns=returns,
        lengths=lengths,
        successes=successes,
        collisions=collisions,
        groups=groups,
        reward_terms=terms,
        mean_return=bootstrap_ci(returns, "mean", conf, b, rng),
        iqm_return=bootstrap_ci(returns, "iqm", conf, b, rng),
        success_rate=wilson_interval(int(successes.sum()), n, conf),
        collision_rate=wilson_interval(int(collisions.sum()), n, conf),
        mean_length=bootstrap_ci(lengths, "mean", conf, b, rng),
        by_group=by_group,
        seconds=seconds,
        settings=settings,
    )


# ---------------------------------------------------------------------------- environments
def split_overrides(env_config: EnvConfig, split: str) -> dict[str, Any]:
    """Environment kwargs selecting an instruction split: :func:`mmrl.agent.heldout_env_kwargs`,
    the rule ``mmrl train``'s periodic evaluation uses too, with the error naming ``--split``.
    """
    from mmrl.agent import heldout_env_kwargs

    if split not in SPLITS:
        raise ConfigError(f"--split must be train or test, got {split!r}")
    return heldout_env_kwargs(env_config, split)


def make_eval_vec_env(
    env_config: EnvConfig,
    split: str,
    n_envs: int,
    seed: int,
    wrap: Callable[[Any], Any] | None = None,
) -> Any:
    """The evaluation ``VecEnv``: base env, then ``wrap`` (noise, masks, video).

    It emits raw observations: a run's ``VecNormalize`` statistics are applied by the
    :class:`~mmrl.policies.Policy` itself, after noise has corrupted the raw sensors (as a
    real sensor would), so normalization sees what it saw in training.

    Args:
        env_config: The environment preset.
        split: ``train`` or ``test``.
        n_envs: Copies.
        seed: Base seed.
        wrap: Applied to the raw ``VecEnv``.

    Raises:
        ConfigError: The environment rejects the split (or its kwargs).
    """
    from mmrl.make import make_training_vec_env

    overrides = split_overrides(env_config, split)
    try:
        venv = make_training_vec_env(env_config, n_envs=n_envs, seed=seed, **overrides)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{env_config.env_id} (split {split}): {err}") from None
    if wrap is not None:
        venv = wrap(venv)
    return venv


# ---------------------------------------------------------------------------- evaluation
def evaluate_model(
    policy: Policy,
    env_config: EnvConfig,
    settings: EvalSettings,
    conditions: Sequence[Condition] = (CLEAN,),
    splits: Sequence[str] = ("train",),
    recorder: Any | None = None,
) -> list[EvalResult]:
    """Evaluates one policy under every split x condition.

    The policy is attached to each raw evaluation ``VecEnv`` before its rollouts (which
    checks its spaces and binds the expert or random actor); one whose ``whole_batch`` is true
    always gets every copy's observation (see :func:`~mmrl.rollout.collect_episodes`).

    Args:
        policy: What :func:`mmrl.policies.load_policy` returns (label, normalization and
            the network whose modality mask ablations set).
        env_config: The environment preset.
        settings: Episodes, seeds, grouping and interval settings.
        conditions: Observation conditions; the clean one should come first so tables can
            compare against it.
        splits: Instruction splits.
        recorder: Optional :class:`~mmrl.evaluation.video.VideoRecorder`, attached to the
            first split's first condition.

    Returns:
        One :class:`EvalResult` per split x condition, in that order.

    Raises:
        SpaceMismatchError: The model's spaces differ from the environment's.
        ConfigError: Bad split, ablation key, noise spec or group label.
    """
    subset_rows = not policy.whole_batch
    results = []
    for s_index, split in enumerate(splits):
        for c_index, condition in enumerate(conditions):
            record = recorder if recorder is not None and s_index == c_index == 0 else None

            def wrap(venv: Any, condition: Condition = condition, record: Any = record) -> Any:
                policy.attach(venv, f"environment {env_config.env_id}")
                if record is not None:
                    venv = record.wrap(venv, settings.episodes)
                return condition_wrapper(venv, condition, policy, settings)

            venv = make_eval_vec_env(env_config, split, settings.copies, settings.seed, wrap)
            namer = GroupNamer(settings.group_by, env_label_names(venv))
            try:
                with ablation_context(policy, condition, settings):
                    t0 = time.perf_counter()
                    episodes = collect_episodes(
                        policy.predict,
                        venv,
                        settings.episodes,
                        settings.deterministic,
                        subset_rows=subset_rows,
                    )
                    seconds = time.perf_counter() - t0
            finally:
                venv.close()
            results.append(
                summarize_episodes(
                    episodes,
                    label=policy.label,
                    env_id=env_config.env_id,
                    split=split,
                    condition=condition,
                    settings=settings,
                    namer=namer,
                    seconds=seconds,
                )
            )
    return results
