"""``mmrl export``: a trained run as a self-contained folder to hand to a colleague.

The folder is itself a minimal run folder (:class:`mmrl.runs.RunFolder`), so ``mmrl evaluate
DIR`` and :func:`mmrl.policies.load_policy` read it like the run it came from, and it follows
the layout ``huggingface_sb3``'s ``package_to_hub`` writes, so ``huggingface-cli upload`` can
push it unchanged (pushing is out of scope: no network here)::

    DIR/model.zip          the SB3 model: plain ``PPO.load("DIR/model.zip")`` reads it
    DIR/config.yaml        the run's resolved configuration (RunConfig)
    DIR/env.yaml           its environment preset: ``mmrl train --env DIR/env.yaml``
    DIR/agent.yaml         its agent recipe: ``mmrl train --agent DIR/agent.yaml``
    DIR/vec_normalize.pkl  SB3 VecNormalize with the observation statistics (if normalized)
    DIR/metrics.json       the run's final held-out evaluation (when training finished)
    DIR/evaluations.jsonl  the run's evaluation curve
    DIR/results.json       huggingface_sb3's summary: env_id, mean_reward, std_reward, ...
    DIR/replay.mp4         H.264 preview of a few held-out episodes (``--preview-episodes``)
    DIR/README.md          model card: task, spaces, held-out metrics with intervals,
                           training command, how to load, library versions; its YAML front
                           matter is the Hub's model-index metadata
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmrl.commands.export import ExportOptions
from mmrl.config import RunConfig, to_dict
from mmrl.errors import ConfigError
from mmrl.evaluation.stats import wilson_interval
from mmrl.runs import (
    CONFIG_FILE,
    EVALUATIONS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    VEC_NORMALIZE_FILE,
    RunFolder,
)

__all__ = ["EXPORT_FILES", "ExportResult", "export_run", "model_card"]

ENV_FILE = "env.yaml"
AGENT_FILE = "agent.yaml"
RESULTS_FILE = "results.json"
PREVIEW_FILE = "replay.mp4"
CARD_FILE = "README.md"
#: Every file an export may write (the folder holds nothing else).
EXPORT_FILES = (
    MODEL_FILE,
    CONFIG_FILE,
    ENV_FILE,
    AGENT_FILE,
    VEC_NORMALIZE_FILE,
    METRICS_FILE,
    EVALUATIONS_FILE,
    RESULTS_FILE,
    PREVIEW_FILE,
    CARD_FILE,
)
_VERSIONED = ("mmrl", "stable-baselines3", "torch", "gymnasium", "numpy")
_SPLIT_NAMES = {"train": "train instructions", "test": "held-out instructions"}


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes:
        path: The export folder.
        files: The files written, in write order.
    """

    path: Path
    files: list[str]


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _name(preset: str) -> str:
    path = Path(preset)
    return path.stem if path.suffix in (".yaml", ".yml") else preset


def _space_rows(space: Any) -> list[str]:
    """Markdown table rows ``| key | type | shape | dtype | range |`` of a (Dict) space."""
    from gymnasium import spaces

    items = space.spaces.items() if isinstance(space, spaces.Dict) else [("", space)]
    rows = []
    for key, sub in items:
        if isinstance(sub, spaces.Box):
            low, high = np.min(sub.low), np.max(sub.high)
            rows.append(
                f"| {key or '-'} | Box | {tuple(sub.shape)} | {sub.dtype} | [{low}, {high}] |"
            )
        elif isinstance(sub, spaces.Discrete):
            rows.append(
                f"| {key or '-'} | Discrete | {sub.n} actions | int64 | [{sub.start}, "
                f"{sub.start + sub.n - 1}] |"
            )
        else:
            rows.append(f"| {key or '-'} | {type(sub).__name__} | {sub} | | |")
    return rows


def _metric_rows(evaluation: dict[str, Any]) -> list[str]:
    """Rows ``| split | episodes | success (95 % Wilson) | return | length |``."""
    rows = []
    for split, s in evaluation.items():
        n = int(s.get("episodes", 0))
        if n < 1:
            continue
        rate = float(s["success_rate"])
        ci = wilson_interval(round(rate * n), n)
        rows.append(
            f"| {_SPLIT_NAMES.get(split, split)} | {n} | {rate:.1%} [{ci.low:.1%}, {ci.high:.1%}]"
            f" | {s['mean_return']:.2f} ± {s.get('std_return', 0.0):.2f}"
            f" | {s.get('mean_length', float('nan')):.1f} |"
        )
    return rows


def _front_matter(config: RunConfig, evaluation: dict[str, Any]) -> str:
    """The Hub's model-card metadata (``huggingface_sb3.generate_metadata``'s fields)."""
    env_id = config.env.env_id
    metrics = []
    for split, s in evaluation.items():
        suffix = "" if split == "train" else f" ({_SPLIT_NAMES.get(split, split)})"
        reward = f"{s['mean_return']:.2f} +/- {s.get('std_return', 0.0):.2f}"
        success = round(float(s["success_rate"]), 4)
        metrics += [
            {"type": "mean_reward", "name": f"mean_reward{suffix}", "value": reward},
            {"type": "success_rate", "name": f"success_rate{suffix}", "value": success},
        ]
    meta: dict[str, Any] = {
        "library_name": "stable-baselines3",
        "tags": [
            env_id,
            "deep-reinforcement-learning",
            "reinforcement-learning",
            "stable-baselines3",
            "mmrl",
            "multimodal",
        ],
    }
    if metrics:
        meta["model-index"] = [
            {
                "name": config.agent.algo.upper(),
                "results": [
                    {
                        "task": {
                            "type": "reinforcement-learning",
                            "name": "reinforcement-learning",
                        },
                        "dataset": {"name": env_id, "type": env_id},
                        "metrics": [{**m, "verified": False} for m in metrics],
                    }
                ],
            }
        ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def model_card(
    run: RunFolder,
    observation_space: Any,
    action_space: Any,
    preview: str | None = None,
    versions: dict[str, str] | None = None,
) -> str:
    """The ``README.md`` of an export of ``run``.

    Args:
        run: The run folder (its config, ``metrics.json`` and ``evaluations.jsonl``).
        observation_space: The model's observation space (a Dict of ``camera`` ...).
        action_space: The model's action space.
        preview: File name of the preview video inside the export, if any.
        versions: Library versions (default: the installed ones).
    """
    config = run.config()
    metrics = run.metrics() or {}
    evaluation = metrics.get("eval") or {}
    curve = run.evaluations()
    env, agent = _name(config.env_name), _name(config.agent_name)
    algo = config.agent.algo.upper()
    fusion = config.agent.extractor.fusion
    lines = [
        _front_matter(config, evaluation),
        f"# {algo} ({fusion} fusion) on {config.env.env_id}",
        "",
        f"A multimodal {algo} agent trained with mmrl on the `{env}` "
        f"preset (`{config.env.env_id}`), agent recipe `{agent}`: a `MultimodalExtractor` with "
        f"`{fusion}` fusion over the observation keys below, trained for {config.steps:,} "
        f"environment steps with seed {config.seed}.",
        "",
        "## Task",
        "",
        (config.env.description or f"`{config.env.env_id}`").strip(),
        "",
        f"Environment arguments: `{json.dumps(config.env.kwargs, sort_keys=True)}`; "
        f"{config.env.n_envs} copies stepped together during training.",
        "",
        "## Spaces",
        "",
        "| observation key | type | shape | dtype | range |",
        "| --- | --- | --- | --- | --- |",
        *_space_rows(observation_space),
        "",
        "| action | type | shape | dtype | range |",
        "| --- | --- | --- | --- | --- |",
        *_space_rows(action_space),
        "",
        "## Held-out evaluation",
        "",
    ]
    rows = _metric_rows(evaluation)
    if rows:
        lines += [
            f"Final evaluation on {config.eval_episodes} held-out episodes per instruction split "
            f"(seeds from {metrics.get('eval_seed', config.eval_seed)}, never trained on); "
            "success with a 95 % Wilson interval, return as mean ± standard deviation.",
            "",
            "| split | episodes | success | return | length |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    else:
        lines += ["The run has no final evaluation (training did not finish).", ""]
    if curve:
        splits = list(dict.fromkeys(s for r in curve for s in r if s != "step"))
        lines += [
            "Success rate at each periodic evaluation (`evaluations.jsonl`):",
            "",
            "| step | " + " | ".join(_SPLIT_NAMES.get(s, s) for s in splits) + " |",
            "| --- |" + " --- |" * len(splits),
        ]
        for r in curve:
            cells = [f"{r[s]['success_rate']:.1%}" if s in r else "" for s in splits]
            lines.append(f"| {r['step']:,} | " + " | ".join(cells) + " |")
        lines.append("")
    if preview:
        lines += [f"Preview of held-out episodes: [{preview}]({preview})", ""]
    normalized = config.agent.normalize.obs_keys
    lines += [
        "## Use it",
        "",
        "```bash",
        "# with mmrl installed (versions below):",
        "mmrl evaluate THIS_FOLDER --episodes 100 --split train,test",
        "```",
        "",
        "```python",
        "from stable_baselines3 import " + algo,
        "",
        f'model = {algo}.load("THIS_FOLDER/{MODEL_FILE}")',
        "# or, with the observation normalization applied for you:",
        "from mmrl.policies import load_policy",
        "",
        'policy = load_policy("THIS_FOLDER")',
        "```",
        "",
    ]
    if normalized:
        lines += [
            f"The agent normalizes the observation keys {', '.join(normalized)}: with plain "
            f"`{algo}.load`, wrap the environment in "
            f'`VecNormalize.load("THIS_FOLDER/{VEC_NORMALIZE_FILE}", venv)` (set '
            "`training = False`); `load_policy` and `mmrl evaluate` do this themselves.",
            "",
        ]
    lines += [
        "## Training",
        "",
        "```bash",
        f"mmrl train --env {ENV_FILE} --agent {AGENT_FILE} --steps {config.steps} "
        f"--seed {config.seed}",
        "```",
        "",
        f"trains the same agent from this folder (`{ENV_FILE}` and `{AGENT_FILE}` are the "
        f"run's resolved presets; `{CONFIG_FILE}` holds every value it used, command-line "
        f"overrides included). It was trained as `mmrl train --env {env} --agent {agent} "
        f"--steps {config.steps} --seed {config.seed}` on `{config.device}`.",
        "",
        "## Versions",
        "",
        "| package | version |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in (versions or _versions()).items()),
        "",
    ]
    return "\n".join(lines)


def _write_vec_normalize(run: RunFolder, stats: Any, path: Path) -> None:
    """Pickles a ``VecNormalize`` holding ``stats`` (huggingface_sb3's ``vec_normalize.pkl``;
    ``VecNormalize.load(path, venv)`` reads it). Built over a one-copy evaluation env of the
    run, because a ``VecNormalize`` takes its spaces and key checks from a real ``VecEnv``."""
    from mmrl.agent import build_vec_env

    venv = build_vec_env(run.config(), seed=0, n_envs=1, split="train")
    try:
        venv.obs_rms = stats
        venv.training = False
        venv.save(str(path))
    finally:
        venv.close()


def _results(config: RunConfig, evaluation: dict[str, Any]) -> dict[str, Any]:
    """huggingface_sb3's ``results.json`` (first split), plus every split's summary."""
    first = next(iter(evaluation.values()), None)
    result: dict[str, Any] = {"env_id": config.env.env_id}
    if first is not None:
        result.update(
            mean_reward=first["mean_return"],
            std_reward=first.get("std_return"),
            n_evaluation_episodes=first.get("episodes"),
        )
    result["eval_datetime"] = datetime.datetime.now().isoformat(timespec="seconds")
    result["splits"] = evaluation
    return result


def export_run(
    run_dir: str | Path,
    out: str | Path,
    best: bool = False,
    preview_episodes: int = ExportOptions.preview_episodes,
    force: bool = False,
) -> ExportResult:
    """Writes the export folder of a run (see the module docstring).

    Args:
        run_dir: The run folder (``mmrl train --out``).
        out: The export folder: absent or empty (``force``: files are overwritten).
        best: Export ``best_model.zip`` (the best periodic evaluation) instead of the final
            model.
        preview_episodes: Held-out episodes in ``replay.mp4`` (0: no preview). Playing them
            loads the exported folder with :func:`~mmrl.policies.load_policy`, which checks it
            is complete.
        force: Write into a non-empty ``out``.

    Raises:
        CheckpointError: Not a run folder, or no model in it.
        ConfigError: ``out`` is not an empty folder (without ``force``), its parent is
            missing, or ``preview_episodes`` is negative.
    """
    from mmrl.policies import load_sb3_model

    run = RunFolder.open(run_dir)
    out = Path(out)
    if preview_episodes < 0:
        raise ConfigError(f"must be >= 0, got {preview_episodes}", field="preview_episodes")
    if out.resolve() == run.path.resolve():
        raise ConfigError(f"{out}: is the run folder itself; choose another folder", field="out")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(f"{out}: exists and is not an empty folder (use --force)", field="out")
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: folder {out.parent} does not exist", field="out")
    config = run.config()
    if best:
        if not run.best_model_path.is_file():
            raise ConfigError(f"{run.path}: no {run.best_model_path.name} (no evaluation yet)")
        model_path = run.best_model_path
    else:
        model_path = run.policy_model_path()
    stats = run.normalization_stats()  # before writing anything: a run missing them fails here
    model = load_sb3_model(model_path)
    out.mkdir(exist_ok=True)
    written: list[str] = []

    def put(name: str, text: str | None = None, source: Path | None = None) -> None:
        if source is not None:
            shutil.copyfile(source, out / name)
        else:
            (out / name).write_text(text or "")
        written.append(name)

    put(MODEL_FILE, source=model_path)
    put(CONFIG_FILE, source=run.config_path)
    put(ENV_FILE, yaml.safe_dump(to_dict(config.env), sort_keys=False))
    put(AGENT_FILE, yaml.safe_dump(to_dict(config.agent), sort_keys=False))
    if stats is not None:
        _write_vec_normalize(run, stats, out / VEC_NORMALIZE_FILE)
        written.append(VEC_NORMALIZE_FILE)
    for source in (run.metrics_path, run.evaluations_path):
        if source.is_file():
            put(source.name, source=source)
    evaluation = (run.metrics() or {}).get("eval") or {}
    put(RESULTS_FILE, json.dumps(_results(config, evaluation), indent=2) + "\n")
    preview = None
    if preview_episodes:
        _write_preview(out, preview_episodes)
        written.append(PREVIEW_FILE)
        preview = PREVIEW_FILE
    card = model_card(run, model.observation_space, model.action_space, preview)
    put(CARD_FILE, card)
    return ExportResult(out, written)


def _write_preview(out: Path, episodes: int) -> None:
    """``replay.mp4``: the exported policy (loaded from ``out``) on held-out episodes."""
    from mmrl.evaluation.rollouts import EvalSettings, evaluate_model
    from mmrl.evaluation.video import VideoRecorder
    from mmrl.policies import load_policy

    policy = load_policy(out)
    recorder = VideoRecorder(out / PREVIEW_FILE, n_videos=episodes)
    settings = EvalSettings(episodes=episodes, n_envs=episodes, n_resamples=10)
    evaluate_model(policy, policy.require_env(), settings, recorder=recorder)
    recorder.write()
