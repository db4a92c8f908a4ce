"""Options of ``mmrl evaluate`` and ``mmrl evaluate-offline``.

:class:`~mmrl.evaluation.rollouts.EvalSettings` and
:func:`~mmrl.evaluation.ranking.evaluate_policies` take their defaults from these fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mmrl.commands.options import option

_TARGETS = "RUN_DIR|MODEL.zip|ENCODER.pt|expert|random"
#: ``--format``'s values (:func:`mmrl.evaluation.tables.print_tables` renders them).
FORMATS = ("table", "markdown", "csv")


def format_option(what: str) -> Any:
    """The ``--format table|markdown|csv`` field of the evaluation commands."""
    return option(
        "table",
        choices=FORMATS,
        help=f"{what} on stdout: table (fits the terminal, 80 columns in a file), markdown "
        "(pipe tables) or csv (the --csv rows)",
    )


@dataclasses.dataclass(kw_only=True)
class EvaluateOptions:
    """``mmrl evaluate``: returns, success, robustness and video of runs or models."""

    targets: list[str] = option(
        positional=True,
        metavar=_TARGETS,
        help="run folders, SB3 model files, pretraining checkpoints (their BC policy), or the "
        "scripted expert / random actions as references; several are compared side by side",
    )
    env: str | None = option(
        None,
        help="env preset or Gymnasium id (required for a bare MODEL.zip, expert and random; "
        "default: each run's own)",
    )
    episodes: int = option(100, help="episodes per evaluation", minimum=1)
    split: str = option(
        "train", help="instruction split: train, test or train,test (default train)"
    )
    # 10000: far from the training seeds and from mmrl train's periodic evaluation seeds.
    seed: int = option(10_000, help="base seed (copy i uses seed + i)")
    n_envs: int | None = option(
        None,
        help="environment copies stepped together (default min(episodes, 100))",
        minimum=1,
    )
    stochastic: bool = option(False, help="sample actions (default greedy)")
    ablate: str | None = option(
        None, metavar="KEYS", help="remove each observation key in turn, e.g. camera,lidar,text"
    )
    ablate_mode: str = option(
        "auto",
        choices=("auto", "extractor", "zero"),
        help="auto: the extractor's modality mask when present, else zeroed keys",
    )
    noise: list[str] = option(
        [],
        metavar="SPEC",
        help="sensor noise condition, e.g. camera=0.1,lidar=0.05 (repeatable)",
    )
    group_by: str = option(
        "auto", help="instruction groups: auto, verb, instruction, none or label:KEY"
    )
    video: str | None = option(
        None,
        metavar="OUT.mp4",
        help="video of the first episodes: .mp4 (H.264), .webm (VP9) or .gif",
    )
    video_episodes: int = option(3, help="episodes in the video", minimum=1)
    json: str | None = option(
        None, metavar="OUT.json", help="write results (with per-episode data)"
    )
    csv: str | None = option(None, metavar="OUT.csv", help="write one row per evaluation")
    bootstrap: int = option(2000, help="bootstrap resamples", minimum=1)
    device: str = option("cpu", help="policy device: cpu, cuda or auto")
    quiet: bool = option(False, help="no tables on the terminal")
    format: str = format_option("the tables")


@dataclasses.dataclass(kw_only=True)
class EvaluateOfflineOptions:
    """``mmrl evaluate-offline``: off-policy estimates of policies on a logged dataset."""

    targets: list[str] = option(
        positional=True,
        metavar=_TARGETS,
        help="run folders, SB3 model files, pretraining checkpoints (their BC policy), or the "
        "scripted expert (from the logged expert actions) / uniform random; several are "
        "estimated on the same data and ranked",
    )
    dataset: str = option(
        help="Minari dataset id, e.g. mmrl/driving/expert-v0 (MINARI_DATASETS_PATH); several, "
        "comma-separated, are one log from several behaviour policies (each episode keeps its "
        "own logged probabilities)"
    )
    # cwpdis first: on the OPE benchmark's behaviour-mixture logs (spread and both replay
    # logs, two pools per env, and three more draws of the replay log), it put the best
    # policy first in all fifteen cases (Spearman 0.67-0.96), needs no features and cannot
    # run away: each step's term is a weighted average of logged rewards. FQE with the
    # default features ranked at 0.31-0.94 and ran away on one pool; the DR forms over FQE
    # with the logged labels and five heads ranked better (0.91-0.97; BENCHMARKS.md, "the
    # full protocol") but need both.
    estimators: str = option(
        "cwpdis,fqe,dr",
        help="comma-separated: fqe, pdis (is), wpdis (wis), dr, wdr, their weight-clipped forms "
        "cpdis, cwpdis, cdr, cwdr (--weight-clip), value_head (default cwpdis,fqe,dr); the "
        "table is ranked by the first",
    )
    rank_by: str | None = option(
        None, help="estimator to rank by (default: the first of --estimators)"
    )
    behaviour: str = option(
        "auto",
        choices=("auto", "logged", "estimated"),
        help="behaviour probabilities for IS/DR: logged by mmrl collect, estimated by "
        "behaviour cloning, or auto (logged when present)",
    )
    gamma: float = option(0.99, help="discount of the estimates", exclusive_minimum=0, maximum=1)
    fqe_iters: int | None = option(
        None, help="FQE iterations (default ceil(3 / (1 - gamma)), at most 400)", minimum=1
    )
    fqe_steps: int = option(25, help="Adam steps per iteration", minimum=1)
    fqe_holdout: float = option(
        0.1,
        help="fraction of episodes FQE leaves out of its fit, to report its held-out Bellman "
        "error (0: none)",
        minimum=0,
        maximum=0.5,
    )
    fqe_select: bool = option(
        False,
        help="fit FQE once per regularization setting of a small grid (mmrl.evaluation."
        "fqe_selection.FQE_GRID) and keep, per policy, the fit of lowest held-out Bellman "
        "error (one fit per setting; needs --fqe-holdout > 0)",
    )
    fqe_ensemble: int = option(
        1,
        help="Q-heads of every FQE fit, trained side by side from independent "
        "initializations; their mean is the Q-function and bootstraps the targets (1: one "
        "network; 5 took about 2.7x the fit time on a 2-core CPU)",
        minimum=1,
    )
    fqe_horizon: str = option(
        "auto",
        help="time limit FQE cuts returns at, as the environment cuts episodes: auto (the "
        "dataset's max_episode_steps; none when it records none), none (bootstrap through "
        "truncations: the return of an episode that could go on) or a number of steps",
    )
    weight_clip: float | None = option(
        None,
        help="clip of the cumulative importance weights of cpdis, cwpdis, cdr, cwdr (default "
        "sqrt(episodes), Ionides 2008)",
        exclusive_minimum=0,
    )
    fqe_features: str = option(
        "policy",
        choices=("policy", "raw", "data", "data+labels"),
        help="Q-network inputs: the policy's features, raw observations, fixed data "
        "features shared by every policy, or those plus the privileged labels mmrl collect "
        "logs (where the instruction's referent is...)",
    )
    max_episodes: int | None = option(
        None, help="use only the first N episodes (of each dataset)", minimum=1
    )
    stochastic: bool = option(False, help="evaluate the stochastic policy (default: greedy)")
    bootstrap: int = option(1000, help="bootstrap resamples", minimum=1)
    seed: int = option(0, help="FQE, behaviour cloning and bootstrap")
    device: str = option("cpu", help="torch device: cpu, cuda or auto")
    json: str | None = option(None, metavar="OUT.json", help="write the ranking as JSON")
    csv: str | None = option(None, metavar="OUT.csv", help="write one CSV row per policy")
    quiet: bool = option(False, help="no table on the terminal")
    format: str = format_option("the ranking")
