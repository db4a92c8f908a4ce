"""The search space of ``mmrl tune``: named parameters, each setting one or more config paths.

The default space (:data:`DEFAULT_SPACE_YAML`, printed by ``mmrl tune --show-space``) covers
the on-policy hyperparameters of rl-baselines3-zoo's PPO space (learning rate, rollout
length, minibatch size, epochs, entropy bonus, clip range, gamma, GAE lambda, head widths)
plus what is mmrl's own: the fusion, its width and modality dropout. A ``--space FILE.yaml``
is merged on top by name: an entry replaces the default one of that name, a new name adds a
parameter, and ``NAME: null`` removes one; a top-level ``extends: none`` starts from an
empty space instead of the default. Every entry reads::

    learning_rate:                  # the parameter's name in Optuna and the trials table
      path: agent.ppo.learning_rate # run-config path(s) it sets; a list sets several
      kind: float                   # float, int or categorical
      low: 1.0e-5                   # float/int: bounds (inclusive)
      high: 1.0e-3
      log: true                     # float/int: sample on a log scale
      step: null                    # float/int: a grid step (not with log)
      choices: []                   # categorical: the values (lists allowed, e.g. [64, 64])
      algos: []                     # only for these recipe algorithms (empty: all)

Paths must lie under ``agent.`` so that the best trial is fully described by an agent
recipe (``best.yaml``); the environment, steps and seed stay fixed within a study.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmrl.config import AgentConfig, from_dict, read_yaml
from mmrl.errors import ConfigError

__all__ = ["DEFAULT_SPACE_YAML", "KINDS", "ParamSpec", "default_space", "load_space", "sample"]

KINDS = ("float", "int", "categorical")

#: On-policy algorithms (those the default PPO-style entries apply to).
_ON_POLICY = ["ppo", "recurrent-ppo", "a2c"]

DEFAULT_SPACE_YAML = f"""\
# mmrl tune's default search space (rl-baselines3-zoo's PPO ranges, narrowed to mmrl's
# recipes, plus the fusion). Override entries by name with --space FILE.yaml.
learning_rate: {{path: agent.ppo.learning_rate, kind: float, low: 1.0e-5, high: 1.0e-3, log: true}}
n_steps: {{path: agent.ppo.n_steps, kind: categorical, choices: [64, 128, 256, 512],
          algos: {_ON_POLICY}}}
batch_size: {{path: agent.ppo.batch_size, kind: categorical, choices: [64, 128, 256, 512],
             algos: [ppo, recurrent-ppo]}}
n_epochs: {{path: agent.ppo.n_epochs, kind: int, low: 1, high: 10, algos: [ppo, recurrent-ppo]}}
ent_coef: {{path: agent.ppo.ent_coef, kind: float, low: 1.0e-4, high: 0.05, log: true,
           algos: {_ON_POLICY}}}
clip_range: {{path: agent.ppo.clip_range, kind: categorical, choices: [0.1, 0.2, 0.3],
             algos: [ppo, recurrent-ppo]}}
gamma: {{path: agent.ppo.gamma, kind: categorical, choices: [0.95, 0.98, 0.99, 0.995]}}
gae_lambda: {{path: agent.ppo.gae_lambda, kind: categorical, choices: [0.9, 0.95, 0.98],
             algos: {_ON_POLICY}}}
net_width: {{path: [agent.policy.pi, agent.policy.vf], kind: categorical,
            choices: [[64], [128], [256], [128, 128]]}}
fusion: {{path: agent.extractor.fusion, kind: categorical,
         choices: [concat, mean, gated, film, attention, perceiver]}}
features_dim: {{path: agent.extractor.features_dim, kind: categorical, choices: [64, 128, 256]}}
modality_dropout: {{path: agent.extractor.modality_dropout, kind: float, low: 0.0, high: 0.3}}
"""


@dataclasses.dataclass
class ParamSpec:
    """One searched parameter (see the module docstring for the YAML form).

    Attributes:
        path: Run-config path(s) under ``agent.`` that the sampled value sets.
        kind: ``float``, ``int`` or ``categorical``.
        low: Lower bound (float/int).
        high: Upper bound (float/int).
        log: Sample on a log scale (float/int).
        step: Grid step (float/int; ``None``: continuous / 1).
        choices: Values of a categorical parameter (scalars or lists).
        algos: Recipe algorithms the parameter applies to (empty: every one).
    """

    path: str | list[str] = ""
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = dataclasses.field(default_factory=list)
    algos: list[str] = dataclasses.field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """The run-config paths as a list."""
        return [self.path] if isinstance(self.path, str) else list(self.path)

    def validate(self, name: str, where: str) -> None:
        """Checks the entry on its own.

        Raises:
            ConfigError: Naming the entry and the file.
        """
        at = f"{where}: {name}"
        if not self.paths or not all(self.paths):
            raise ConfigError(f"{at}: needs a path (e.g. agent.ppo.learning_rate)")
        for path in self.paths:
            _check_path(path, f"{at}.path")
        if self.kind not in KINDS:
            raise ConfigError(f"{at}.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "categorical":
            if not self.choices:
                raise ConfigError(f"{at}: a categorical parameter needs choices")
            return
        if self.low is None or self.high is None or not self.low <= self.high:
            raise ConfigError(f"{at}: needs low <= high, got low={self.low} high={self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ConfigError(f"{at}: log scale needs low > 0 and no step")
        if self.kind == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ConfigError(f"{at}: int bounds must be integers, got {self.low}..{self.high}")

    def suggest(self, trial: Any, name: str) -> Any:
        """The value Optuna's ``trial`` suggests (lists decoded back from their JSON form)."""
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            step = int(self.step) if self.step else 1
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=step)
        # Optuna stores only scalar choices; lists (net widths) travel as JSON strings.
        encoded = [_encode(c) for c in self.choices]
        return _decode(trial.suggest_categorical(name, encoded))


def _encode(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _check_path(path: str, where: str) -> None:
    """A dotted path into :class:`~mmrl.config.AgentConfig` below ``agent.``."""
    parts = path.split(".")
    if parts[0] != "agent" or len(parts) < 3:
        raise ConfigError(
            f"{where}: {path!r} must be a path under agent. (e.g. agent.ppo.learning_rate), "
            "so that the best trial is an agent recipe"
        )
    node: Any = AgentConfig
    for i, part in enumerate(parts[1:], start=1):
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            raise ConfigError(
                f"{where}: {'.'.join(parts[: i + 1])!r} is not a config field; "
                f"allowed under {'.'.join(parts[:i])}: {', '.join(fields)}"
            )
        hint = _field_type(node, part)
        if not dataclasses.is_dataclass(hint):
            if i != len(parts) - 1:
                raise ConfigError(f"{where}: {'.'.join(parts[: i + 1])} has no sub-fields")
            return
        node = hint
    raise ConfigError(f"{where}: {path!r} names a section, not a value")


def _field_type(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls)[name]


def _parse(data: Mapping[str, Any], where: str) -> dict[str, ParamSpec | None]:
    space: dict[str, ParamSpec | None] = {}
    for name, entry in data.items():
        if entry is None:
            space[str(name)] = None
            continue
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: {name}: expected a mapping or null, got {entry!r}")
        spec = from_dict(ParamSpec, entry, where=f"{where}: {name}")
        spec.validate(str(name), where)
        space[str(name)] = spec
    return space


def default_space() -> dict[str, ParamSpec]:
    """The default search space, by parameter name."""
    parsed = _parse(yaml.safe_load(DEFAULT_SPACE_YAML), "default space")
    return {k: v for k, v in parsed.items() if v is not None}


def load_space(path: str | Path | None = None) -> dict[str, ParamSpec]:
    """The default space with ``path``'s entries merged on top by name (``null`` removes).

    Raises:
        ConfigError: Missing or invalid file, unknown keys, bad bounds, paths outside
            ``agent.`` or names of no config field; an empty resulting space.
    """
    space: dict[str, ParamSpec | None] = dict(default_space())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"search space file not found: {path}", field="space")
        data = read_yaml(path)
        extends = data.pop("extends", "default")
        if extends not in ("default", "none"):
            raise ConfigError(f"{path.name}: extends must be default or none, got {extends!r}")
        if extends == "none":
            space = {}
        for name, spec in _parse(data, path.name).items():
            if spec is None and name not in space:
                raise ConfigError(
                    f"{path.name}: {name}: null removes a default parameter, but there is none "
                    f"of that name; defaults: {', '.join(default_space())}"
                )
            space[name] = spec
    merged = {k: v for k, v in space.items() if v is not None}
    if not merged:
        raise ConfigError("the search space is empty", field="space")
    return merged


def sample(space: Mapping[str, ParamSpec], trial: Any, algo: str) -> list[str]:
    """Draws every parameter that applies to ``algo``; returns them as ``--set`` overrides.

    Args:
        space: The search space.
        trial: An ``optuna.Trial``.
        algo: The recipe's algorithm (parameters restricted to others are skipped).

    Returns:
        ``path=value`` items (values JSON-encoded, which the override parser reads as YAML).
    """
    overrides = []
    for name, spec in space.items():
        if spec.algos and algo not in spec.algos:
            continue
        value = spec.suggest(trial, name)
        overrides += [f"{path}={json.dumps(value)}" for path in spec.paths]
    return overrides


def space_to_dict(space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The space as plain data (for ``--show-space`` and the study's record)."""
    out = {}
    for name, spec in space.items():
        entry = {k: v for k, v in dataclasses.asdict(spec).items() if v not in (None, [], False)}
        out[name] = entry
    return out
