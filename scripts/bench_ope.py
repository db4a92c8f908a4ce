"""Benchmark: how far ``mmrl evaluate-offline``'s estimators can be trusted (issue 18).

A pool of policies of clearly different quality is evaluated twice: online (true discounted
returns from fresh episodes) and offline (every estimator on logged data it did not produce),
and the offline estimates are scored in the DOPE protocol (Fu et al., ICLR 2021):

* ``abs_error``: mean ``|estimate - true|`` over the pool, divided by the pool's true-return
  range (max - min);
* ``spearman``: rank correlation between estimates and true returns;
* ``regret_at_1``: ``(best true return - true return of the policy the estimator ranks
  first) / range``.

The logged datasets, each of ``--dataset-episodes`` episodes with the exact behaviour
probabilities logged:

* *broad*: ``mmrl collect --policy expert --epsilon 0.5`` (every action well covered);
* *narrow*: the expert at ``--epsilon 0.05`` (nearly the expert only, the hard case for
  importance weights of the noisier policies);
* *spread*: a documented behaviour mixture in equal parts: the expert at each epsilon of
  :data:`SPREAD_EPSILONS` (none of them a pool member's, each part from scenes of its own)
  and the mixed data's learner (its first episodes), ``--dataset-episodes`` in all. As in
  D4RL's replay datasets, which DOPE scores on, the log holds behaviour from nearly the
  expert's to nearly random, so every pool member has logged episodes close to its own;
* *replay*: the spread log's parts and, in equal parts beside them, the policies of a
  second run of the pool's own recipe with other seeds (:data:`REPLAY_SEED`): BC on the
  broad log for the last of ``--bc-epochs``, then ``--ppo-steps`` of PPO from it; its BC start
  and its PPO checkpoints act with sampled actions and ``--epsilon 0.1``, and none of them is
  a pool member. As in D4RL's medium-replay data, which DOPE scores on, a learning agent's
  own earlier policies are in the log. (In its first form, until 2026-12-07, the run
  started from the mixed data's learner instead; its checkpoints came out much worse than
  the pool's ``ppo-S`` members, so the log did not hold behaviour like theirs:
  BENCHMARKS.md, "a replay log".)
* *mixed*: one log from two behaviour policies, the first half of the broad episodes and as
  many of a *learner*: a BC policy pretrained for :data:`LEARNER_EPOCHS` epochs on the
  narrow data (so not a member of the pool, which clones the broad data), its actions
  sampled, with ``--epsilon 0.1`` (``learner.pt``, its online return in ``details.json``).
  A deployed learner's log holds the mistakes learners make (on Navigation: stopping at an
  object the instruction does not name), which an expert's log rarely shows and FQE then
  cannot value; each episode keeps its own policy's probabilities
  (:func:`mmrl.data.episodes.concat_logged_data`).

The pool, built by this script from a fresh checkout (nothing to download), per env:

* ``expert-epsE``: the scripted expert mixed with uniform random actions at several noise
  levels (``expert-eps0.3`` acts randomly 30 % of the time; ``epsilon = 1`` is random);
* ``bc-eN``: behaviour-cloning policies, ``mmrl pretrain --objectives bc`` on the broad
  dataset (whose expert labels are clean) for ``N`` epochs each (``--bc-epochs``);
* ``ppo-S``: the checkpoints at step ``S`` of one short PPO run started from the longest
  BC checkpoint (``--init-from`` with its policy head), ``--ppo-steps`` in all;
* ``BEST-no-KEY``: the learned policy with the highest true return, with one modality
  masked inside its extractor (the missing-modality embedding ``mmrl evaluate --ablate``
  uses).

Every estimator runs twice on the importance weights: as published (``pdis``, ``wpdis``,
``dr``, ``wdr``) and with every cumulative weight clipped at ``sqrt(episodes)`` (``cpdis``,
``cwpdis``, ``cdr``, ``cwdr``; Ionides 2008, :func:`mmrl.evaluation.ope.default_weight_clip`).
FQE fits on 90 % of the episodes and reports its Bellman residual on the other 10 %, clips
its targets to the achievable return range and says when it had to (``summary.md``).

Every learned policy is evaluated in its stochastic form, online (sampled actions) and
offline (its action distribution), so the target probabilities the estimators use are
exact, as the noisy experts' are (the expert's from the logged expert action).

A plain run is the issue's protocol: the *replay* log (the broad behaviour mixture) and the
*narrow* log (:data:`DEFAULT_DATASETS`), FQE on the data features and the privileged labels
the logs carry, as the mean of five Q-heads (``--fqe-features data+labels --fqe-ensemble
5``; ``--quick``: the data features and one head). The other logs stay available through
``--datasets``: they are the earlier rounds' (BENCHMARKS.md).

Everything built is cached in ``--out`` and reused on a rerun, so the full run resumes
where it stopped: datasets in ``datasets/``, BC checkpoints and the PPO run in
``pool/ENV-nD/`` (``bc-eN.pt``, ``ppo-S-from-bc-eN/``), true returns in ``truth/ENV.json``
(keyed by policy, episodes and gamma).

Usage::

    python scripts/bench_ope.py --quick            # minutes: Navigation, small sizes
    python scripts/bench_ope.py                    # the issue's protocol, both envs
    python scripts/bench_ope.py --envs driving     # one env (two processes: two cores)

Writes ``ope.json`` (``{env: {dataset: {estimator: {"spearman", "regret_at_1",
"abs_error"}}}}``), ``details.json`` (the pool, every estimate and true return, the wall
time of every phase), ``summary.md`` and ``ope.png`` (offline estimate vs online return)
into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ESTIMATORS = ("fqe", "pdis", "wpdis", "dr", "wdr", "cpdis", "cwpdis", "cdr", "cwdr")
POOL_EPSILONS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)
#: The expert's noise levels in the spread data, one part each (beside the learner's part).
SPREAD_EPSILONS = (0.05, 0.3, 0.6, 0.9)
#: Dataset name -> the scripted expert's epsilon in it (``mixed``: in its expert half;
#: ``spread`` and ``replay``: in their expert parts).
DATASETS = {"broad": 0.5, "narrow": 0.05, "mixed": 0.5, "spread": SPREAD_EPSILONS,
            "replay": SPREAD_EPSILONS}  # fmt: skip
#: Collection seeds of the spread data's expert parts start here, one block per part.
SPREAD_SEED = 20_000
#: The replay log's run (BC, then PPO) is trained with ``--seed`` plus this, and its
#: policies' episodes are collected from seeds starting here (one block per policy).
REPLAY_SEED = 30_000
#: The mixed data's learner: BC epochs on the narrow data, its epsilon, its collection seed.
LEARNER_EPOCHS, LEARNER_EPSILON, LEARNER_SEED = 3, 0.1, 10_000
#: The logs a plain run estimates on: the documented broad behaviour mixture the issue's bar
#: is measured on, and the narrow log of its hard case (BENCHMARKS.md, "the full protocol").
DEFAULT_DATASETS = ("replay", "narrow")
#: The logs with episodes of the learner (whose online return is then measured too).
LEARNER_LOGS = {"mixed", "spread", "replay"}
#: What each log holds, for the summary.
DATASET_NOTES = {
    "broad": f"the expert at epsilon {DATASETS['broad']:g}",
    "narrow": f"the expert at epsilon {DATASETS['narrow']:g}",
    "mixed": f"the broad log's first half and as many episodes of a BC learner ({LEARNER_EPOCHS} "
    f"epochs on the narrow log, sampled, epsilon {LEARNER_EPSILON:g})",
    "spread": "equal parts of the expert at epsilon "
    + ", ".join(f"{e:g}" for e in SPREAD_EPSILONS)
    + " and the mixed log's learner",
    "replay": "the spread log's parts and the BC start and PPO checkpoints of a second run of "
    f"the pool's recipe with other seeds (sampled, epsilon {LEARNER_EPSILON:g}), in equal parts",
}
KINDS = ("expert", "bc", "ppo", "masked")


# ---------------------------------------------------------------------------- the pool
@dataclasses.dataclass(frozen=True)
class Member:
    """One policy of the pool.

    Attributes:
        label: Its name in tables (``expert-eps0.2``, ``bc-e10``, ``ppo-8192``,
            ``ppo-8192-no-camera``).
        kind: One of :data:`KINDS`.
        epsilon: The noise level of an ``expert`` member.
        ref: What :func:`mmrl.policies.load_policy` loads (a BC ``.pt`` or a PPO
            checkpoint folder); ``None`` for the expert.
        mask: Observation keys masked inside the extractor.
    """

    label: str
    kind: str
    epsilon: float = 0.0
    ref: str | None = None
    mask: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What its true return depends on (the truth cache's key, with sizes)."""
        return f"{self.label}|{self.ref}|{','.join(self.mask)}|{self.epsilon:g}"

    def load(self, env: str) -> Any:
        """The :class:`mmrl.policies.Policy` that acts (and is estimated) for this member."""
        from mmrl.extractor import set_policy_modality_mask
        from mmrl.policies import ReferencePolicy, load_policy

        if self.kind == "expert":
            policy = ReferencePolicy("expert")
            policy.epsilon = self.epsilon  # evaluated as the epsilon-mixture (ranking docs)
        else:
            policy = load_policy(self.ref, env=env)
            if self.mask:  # persists on the network: online and offline see the same mask
                set_policy_modality_mask(policy.policy, self.mask)
        policy.label = self.label
        return policy


def expert_members() -> list[Member]:
    return [Member(f"expert-eps{e:g}", "expert", epsilon=e) for e in POOL_EPSILONS]


def build_bc(env: str, dataset_id: str, folder: Path, args: argparse.Namespace) -> list[Member]:
    """BC policies pretrained on ``dataset_id`` for each of ``--bc-epochs`` (cached)."""
    members = []
    for epochs in args.bc_epochs:
        path = folder / f"bc-e{epochs}.pt"
        if not path.is_file():
            print(f"   pretraining bc-e{epochs}", flush=True)
            _pretrain_bc(env, dataset_id, epochs, path, args)
        members.append(Member(f"bc-e{epochs}", "bc", ref=str(path)))
    return members


def build_ppo(
    env: str, bc: Member, folder: Path, args: argparse.Namespace, *, seed: int | None = None,
    prefix: str = "ppo",
) -> list[Member]:  # fmt: skip
    """One PPO run from ``bc``'s encoder and head; its kept checkpoints (resumed if killed).

    ``mmrl train`` keeps the three newest checkpoints; a checkpoint every third of the
    steps keeps three points along the run (the last one written at the end). ``seed``
    (default ``--seed``) trains another run; the checkpoints are labelled ``PREFIX-STEP``.
    """
    from mmrl.runs import RunFolder
    from mmrl.train import train

    seed = args.seed if seed is None else seed
    run = folder / f"ppo-{args.ppo_steps}-from-{bc.label}"  # another BC start: another run
    if seed != args.seed:
        run = run.with_name(f"{run.name}-seed{seed}")
    if not RunFolder(run).finished:
        print(f"   PPO from {bc.label}, {args.ppo_steps} steps", flush=True)
        if RunFolder.is_run(run):
            train(resume=run, verbose=0)
        else:
            overrides = [f"agent.init.path={json.dumps(str(Path(bc.ref).resolve()))}",
                         "agent.init.init_policy_head=true", "eval_freq=0", "eval_episodes=4",
                         f"checkpoint_freq={max(1, args.ppo_steps // 3)}"]  # fmt: skip
            train(env, steps=args.ppo_steps, seed=seed, out=run, device="cpu",
                  overrides=overrides, verbose=0)  # fmt: skip
    checkpoints = sorted(RunFolder(run).checkpoints_dir.glob("step_*"))
    return [Member(f"{prefix}-{int(c.name.split('_')[1])}", "ppo", ref=str(c))
            for c in checkpoints]  # fmt: skip


def masked_members(best: Member, keys: list[str]) -> list[Member]:
    return [Member(f"{best.label}-no-{k}", "masked", ref=best.ref, mask=(k,)) for k in keys if k]


# ---------------------------------------------------------------------------- online truth
def online_returns(env: str, member: Member, episodes: int, gamma: float, seed: int) -> np.ndarray:
    """Discounted returns of the first ``episodes`` episodes of ``member``, online.

    Episodes are counted when they start (as ``mmrl collect`` counts them), so short
    episodes are not over-represented. Learned policies sample their actions.
    """
    import torch as th

    from mmrl.make import make_training_vec_env, resolve_env
    from mmrl.policies import find_expert, random_actions

    n = min(16, episodes)
    venv = make_training_vec_env(resolve_env(env), n_envs=n, seed=seed, monitor=False)
    rng = np.random.default_rng(seed + 1)
    act: Callable[[Any], np.ndarray]
    if member.kind == "expert":
        expert = find_expert(venv)

        def act(obs: Any) -> np.ndarray:
            actions = np.asarray(expert()).copy()
            noisy = rng.random(n) < member.epsilon
            if noisy.any():
                actions[noisy] = random_actions(venv.action_space, n, rng)[noisy]
            return actions

    else:
        policy = member.load(env)
        policy.attach(venv, f"environment {env}")
        th.manual_seed(seed)  # the sampled actions

        def act(obs: Any) -> np.ndarray:
            return np.asarray(policy.predict(obs, deterministic=False)[0])

    obs = venv.reset()
    ret, disc = np.zeros(n), np.ones(n)
    active = np.arange(n) < episodes
    started, done_returns = n, []
    while len(done_returns) < episodes:
        obs, rewards, dones, _ = venv.step(act(obs))
        ret += disc * rewards
        disc *= gamma
        for i in np.flatnonzero(dones):
            if active[i]:
                done_returns.append(ret[i])
            active[i] = started < episodes
            started += int(active[i])
            ret[i], disc[i] = 0.0, 1.0
    venv.close()
    return np.asarray(done_returns[:episodes])


class Truth:
    """True returns per member, cached in ``path`` (a rerun skips the measured ones)."""

    def __init__(self, env: str, path: Path, args: argparse.Namespace) -> None:
        self.env, self.path, self.args = env, path, args
        self.cache = json.loads(path.read_text()) if path.is_file() else {}
        self.returns: dict[str, np.ndarray] = {}

    def measure(self, members: list[Member]) -> None:
        for member in members:
            key = f"{member.key}|{self.args.online_episodes}|{self.args.gamma:g}"
            if key not in self.cache:
                # A seed per label: the same episodes whatever else is in the pool.
                seed = 50_000 + sum(map(ord, member.label)) * 97
                returns = online_returns(self.env, member, self.args.online_episodes,
                                         self.args.gamma, seed)  # fmt: skip
                self.cache[key] = returns.tolist()
                self.path.write_text(json.dumps(self.cache) + "\n")  # after each: resumable
            returns = np.asarray(self.cache[key])
            self.returns[member.label] = returns
            print(f"   {member.label}: {returns.mean():.3f} +- "
                  f"{returns.std() / np.sqrt(len(returns)):.3f}", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------- scores
def dope_scores(estimates: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Normalized absolute error, Spearman rank correlation and normalized regret@1."""
    from scipy.stats import spearmanr

    span = float(truth.max() - truth.min()) or 1.0
    ok = np.isfinite(estimates)
    rho = spearmanr(estimates[ok], truth[ok]).statistic if ok.sum() > 2 else float("nan")
    best = int(np.nanargmax(np.where(ok, estimates, -np.inf)))
    return {
        "spearman": float(rho),
        "regret_at_1": float((truth.max() - truth[best]) / span),
        "abs_error": float(np.mean(np.abs(estimates[ok] - truth[ok])) / span),
    }


# ---------------------------------------------------------------------------- one env
def _dataset(env: str, name: str, args: argparse.Namespace, out: Path) -> tuple[str, int | None]:
    """The id(s) of dataset ``name`` of ``env`` and the episodes to read of each (``None``:
    all), collected on first use."""
    if name == "mixed":
        half = args.dataset_episodes // 2
        broad, _ = _dataset(env, "broad", args, out)
        learner = learner_behaviour(env, args, out)
        return f"{broad},{_learner_dataset(env, learner, args, out)}", half
    if name == "spread":
        parts = len(SPREAD_EPSILONS) + 1  # and the learner's
        per_part = max(2, args.dataset_episodes // parts)
        ids = []
        for i, eps in enumerate(SPREAD_EPSILONS):
            ids.append(_expert_dataset(env, f"spread{i}", eps, per_part,
                                       args.seed + SPREAD_SEED + i * per_part, out))  # fmt: skip
        learner_id = _learner_dataset(env, learner_behaviour(env, args, out), args, out)
        return ",".join([*ids, learner_id]), per_part
    if name == "replay":  # the spread log's parts, fewer episodes of each, and the replay's
        spread, _ = _dataset(env, "spread", args, out)
        behaviour = replay_behaviour(env, args, out)
        per_part = max(2, args.dataset_episodes // (len(SPREAD_EPSILONS) + 1 + len(behaviour)))
        ids = [_learned_dataset(env, m, m.label, per_part,
                                args.seed + REPLAY_SEED + i * per_part, out)
               for i, m in enumerate(behaviour)]  # fmt: skip
        return ",".join([spread, *ids]), per_part
    return _expert_dataset(env, name, DATASETS[name], args.dataset_episodes, args.seed, out), None


def _expert_dataset(env: str, name: str, eps: float, episodes: int, seed: int, out: Path) -> str:
    """The id of ``episodes`` of the expert at ``eps`` (collected on first use)."""
    from mmrl.collect import collect

    dataset_id = f"bench/{env}/{name}-e{round(100 * eps)}-n{episodes}-v0"
    if not (out / "datasets" / dataset_id).exists():
        collect(env=env, policy="expert", episodes=episodes, dataset_id=dataset_id,
                epsilon=eps, seed=seed)  # fmt: skip
    return dataset_id


def _learner_dataset(env: str, learner: Member, args: argparse.Namespace, out: Path) -> str:
    """The id of the learner's log, half of ``--dataset-episodes`` (at least the spread log's
    part of 2), which the mixed and spread logs read from (collected on first use)."""
    episodes = max(2, args.dataset_episodes // 2)
    return _learned_dataset(env, learner, f"learner-bc{LEARNER_EPOCHS}", episodes,
                            args.seed + LEARNER_SEED, out)  # fmt: skip


def _learned_dataset(env: str, member: Member, name: str, episodes: int, seed: int,
                     out: Path) -> str:  # fmt: skip
    """The id of ``episodes`` of a learned behaviour policy (the learner, a replay
    checkpoint), actions sampled, with the learner's epsilon (collected on first use)."""
    from mmrl.collect import collect

    dataset_id = f"bench/{env}/{name}-n{episodes}-v0"
    if not (out / "datasets" / dataset_id).exists():
        collect(env=env, policy=member.ref, episodes=episodes, dataset_id=dataset_id,
                epsilon=LEARNER_EPSILON, stochastic=True, expert_labels=True,
                seed=seed)  # fmt: skip
    return dataset_id


def _pool_folder(env: str, args: argparse.Namespace, out: Path) -> Path:
    """Where ``env``'s BC checkpoints and PPO run are cached (made on first use)."""
    folder = out / "pool" / f"{env}-n{args.dataset_episodes}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def learner_behaviour(env: str, args: argparse.Namespace, out: Path) -> Member:
    """The mixed data's learner: BC on the narrow data (cached), not a member of the pool."""
    narrow, _ = _dataset(env, "narrow", args, out)
    path = _pool_folder(env, args, out) / f"learner-bc{LEARNER_EPOCHS}-narrow.pt"
    if not path.is_file():
        print(f"   pretraining the mixed data's learner ({LEARNER_EPOCHS} epochs)", flush=True)
        _pretrain_bc(env, narrow, LEARNER_EPOCHS, path, args)
    return Member(f"learner-bc{LEARNER_EPOCHS}-narrow", "bc", ref=str(path))


def replay_behaviour(env: str, args: argparse.Namespace, out: Path) -> list[Member]:
    """The replay log's behaviour: the pool's recipe run again with seed ``--seed +
    REPLAY_SEED`` (BC on the broad log, then PPO from it); its BC start and PPO checkpoints,
    none of them members of the pool (cached)."""
    broad, _ = _dataset(env, "broad", args, out)
    folder = _pool_folder(env, args, out)
    seed = args.seed + REPLAY_SEED
    epochs = args.bc_epochs[-1]  # the pool's PPO run starts from its last BC policy too
    path = folder / f"replay-bc-e{epochs}-seed{seed}.pt"
    if not path.is_file():
        print(f"   pretraining the replay run's start (bc-e{epochs}, seed {seed})", flush=True)
        _pretrain_bc(env, broad, epochs, path, args, seed=seed)
    start = Member(f"replay-bc-e{epochs}", "bc", ref=str(path))
    return [start, *build_ppo(env, start, folder, args, seed=seed, prefix="replay")]


def _pretrain_bc(
    env: str,
    dataset_id: str,
    epochs: int,
    path: Path,
    args: argparse.Namespace,
    seed: int | None = None,
):
    from mmrl.pretrain import pretrain

    # patience = epochs: the epoch count, not early stopping, sets the quality.
    pretrain(dataset_id, env=env, objectives="bc", epochs=epochs, patience=epochs,
             batch_size=args.bc_batch_size, monitor="bc", out=path,
             seed=args.seed if seed is None else seed, device="cpu", verbose=0)  # fmt: skip


def build_pool(env: str, args: argparse.Namespace, out: Path, seconds: dict) -> tuple:
    """Every member of ``env``'s pool and their true returns, timing each phase."""

    def phase(name: str, t0: float) -> float:
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"   ({name}: {seconds[name]:.0f} s)", flush=True)
        return time.perf_counter()

    t = time.perf_counter()
    truth = Truth(env, out / "truth" / f"{env}.json", args)
    truth.path.parent.mkdir(parents=True, exist_ok=True)
    pool = expert_members()
    print(f"== {env}: true returns, {args.online_episodes} online episodes per policy")
    truth.measure(pool)
    t = phase("truth_expert", t)
    broad, _ = _dataset(env, "broad", args, out)
    t = phase("dataset_broad", t)
    folder = _pool_folder(env, args, out)
    bc = build_bc(env, broad, folder, args) if args.bc_epochs else []
    t = phase("bc", t)
    ppo = build_ppo(env, bc[-1], folder, args) if bc and args.ppo_steps else []
    t = phase("ppo", t)
    truth.measure(bc + ppo)
    t = phase("truth_learned", t)
    learned = bc + ppo
    masked = []
    if learned and args.mask:
        best = max(learned, key=lambda m: truth.returns[m.label].mean())
        masked = masked_members(best, args.mask)
        truth.measure(masked)
        t = phase("truth_masked", t)
    if LEARNER_LOGS & set(args.datasets):  # how good the learner is (not in the pool)
        truth.measure([learner_behaviour(env, args, out)])
        t = phase("truth_learner", t)
    if "replay" in args.datasets:  # and the replay's checkpoints
        truth.measure(replay_behaviour(env, args, out))
        t = phase("replay", t)
    return pool + learned + masked, truth.returns


def run_env(env: str, args: argparse.Namespace, out: Path) -> tuple[dict, dict]:
    from mmrl.evaluation.offline import load_logged_data
    from mmrl.evaluation.ranking import evaluate_policies

    seconds: dict[str, float] = {}
    pool, truth = build_pool(env, args, out, seconds)
    labels = [m.label for m in pool]
    true = np.array([truth[label].mean() for label in labels])
    scores: dict[str, Any] = {}
    details: dict[str, Any] = {
        "pool": {m.label: {"kind": m.kind, "ref": m.ref, "mask": list(m.mask),
                           **({"epsilon": m.epsilon} if m.kind == "expert" else {})}
                 for m in pool},
        "true_returns": {k: float(v.mean()) for k, v in truth.items() if k in labels},
        "true_return_sem": {k: float(v.std() / np.sqrt(len(v))) for k, v in truth.items()
                            if k in labels},
        "seconds": seconds,
    }  # fmt: skip
    if LEARNER_LOGS & set(args.datasets):  # the learner's online return (build_pool)
        learner = learner_behaviour(env, args, out)
        details["learner"] = {"ref": learner.ref, "epsilon": LEARNER_EPSILON,
                              "true_return": float(truth[learner.label].mean()),
                              "note": "online return with sampled actions, without the "
                              "epsilon noise it logged with"}  # fmt: skip
    if "replay" in args.datasets:
        details["replay_behaviour"] = {
            m.label: {"ref": m.ref, "epsilon": LEARNER_EPSILON,
                      "true_return": float(truth[m.label].mean())}
            for m in replay_behaviour(env, args, out)
        }  # fmt: skip
    for name in args.datasets:
        eps = DATASETS[name]
        t0 = time.perf_counter()
        dataset_id, per_part = _dataset(env, name, args, out)
        data = load_logged_data(dataset_id, per_part)
        policies = [m.load(env) for m in pool]
        t1 = time.perf_counter()
        # stochastic: learned policies are estimated by their action distribution, as they
        # acted online; the expert members are their epsilon-mixtures either way.
        ranking = evaluate_policies(
            policies, data, ESTIMATORS, args.gamma, features=args.fqe_features, stochastic=True,
            iterations=args.fqe_iters, steps_per_iter=args.fqe_steps,
            fqe_holdout=args.fqe_holdout, fqe_select=args.fqe_select,
            fqe_ensemble=args.fqe_ensemble, fqe_horizon=args.fqe_horizon,
            weight_clip=args.weight_clip,
            n_resamples=args.bootstrap, seed=args.seed,
        )  # fmt: skip
        seconds[f"ope_{name}"] = round(time.perf_counter() - t0, 1)
        by_label = {r.label: r for r in ranking.reports}
        scores[name] = {}
        details[name] = {"dataset": dataset_id, "behaviour_epsilon": eps,
                         "behaviour": data.metadata.get("behaviour", {}).get("policy"),
                         "episodes": data.n_episodes, "transitions": data.n_transitions,
                         "estimator_seconds": round(time.perf_counter() - t1, 1),
                         "estimates": {}}  # fmt: skip
        for est in ESTIMATORS:
            values = np.array([
                by_label[label].estimates[est].value if est in by_label[label].estimates
                else np.nan for label in labels
            ])  # fmt: skip
            scores[name][est] = dope_scores(values, true)
            details[name]["estimates"][est] = {
                label: {**by_label[label].estimates[est].to_dict()}
                for label in labels if est in by_label[label].estimates
            }  # fmt: skip
        details[name]["support_coverage"] = {
            label: by_label[label].support.coverage for label in labels if by_label[label].support
        }
        details[name]["fqe"] = {
            label: by_label[label].fqe.diagnostics() for label in labels if by_label[label].fqe
        }
        print(f"   {name} (epsilon {eps}, {data.n_episodes} episodes, "
              f"{seconds[f'ope_{name}']:.0f} s):")  # fmt: skip
        for est, s in scores[name].items():
            print(f"     {est:<6} spearman {s['spearman']:+.2f}  regret@1 "
                  f"{s['regret_at_1']:.2f}  abs_error {s['abs_error']:.2f}")  # fmt: skip
    return scores, details


def _figure(details: dict, out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    markers = dict(zip(KINDS, "os^x"))
    panels = [(env, name) for env, d in details.items() for name in DATASETS if name in d]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (env, name) in zip(axes[0], panels):
        true, kind = details[env]["true_returns"], details[env]["pool"]
        for k, (est, values) in enumerate(details[env][name]["estimates"].items()):
            for m in KINDS:
                labels = [label for label in values if kind[label]["kind"] == m]
                ax.plot([true[label] for label in labels],
                        [values[label]["value"] for label in labels], markers[m], color=f"C{k}",
                        alpha=0.7, label=est if m == "expert" else None)  # fmt: skip
        for m in KINDS:  # marker legend: the policy kinds
            ax.plot([], [], markers[m], color="gray", label=m)
        lo, hi = min(true.values()), max(true.values())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(title=f"{env} / {name}", xlabel="online return", ylabel="offline estimate")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / "ope.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _summary(scores: dict, details: dict, args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Off-policy evaluation benchmark (scripts/bench_ope.py)", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}, machine: {platform.machine()} "
        f"{os.cpu_count()} CPUs, gamma {args.gamma}, {args.online_episodes} online episodes "
        f"per policy, {args.dataset_episodes} logged episodes per dataset; FQE on the "
        f"{args.fqe_features} features, {args.fqe_ensemble} Q-head(s).", "",
        f"Pool: the scripted expert at epsilon {', '.join(f'{e:g}' for e in POOL_EPSILONS)}; "
        f"BC policies pretrained for {', '.join(map(str, args.bc_epochs))} epochs on the broad "
        f"data; the checkpoints of a {args.ppo_steps}-step PPO run from the last BC policy; the "
        f"best learned policy with {', '.join(args.mask)} masked. Learned policies act and are "
        "estimated stochastically. Scores as in DOPE: abs_error and regret@1 normalized by the "
        "pool's return range.", "",
        "Logs (behaviour probabilities logged): " + "; ".join(
            f"{name}: {DATASET_NOTES[name]}" for name in args.datasets) + ".", "",
    ]  # fmt: skip
    for env, per_dataset in scores.items():
        d = details[env]
        lines += [f"## {env}", "", "| dataset | estimator | spearman | regret@1 | abs error |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        for name, per_est in per_dataset.items():
            for est, s in per_est.items():
                lines.append(f"| {name} | {est} | {s['spearman']:+.2f} | "
                             f"{s['regret_at_1']:.2f} | {s['abs_error']:.2f} |")  # fmt: skip
        lines += ["", "| policy | kind | true return (± s.e.) | " + " | ".join(
            f"{name} fqe | {name} Bellman fit / held-out" for name in per_dataset) + " |",
            "|---|---|---:|" + "---:|---:|" * len(per_dataset)]  # fmt: skip
        for label, value in d["true_returns"].items():
            cells = []
            for name in per_dataset:
                fqe = d[name]["estimates"]["fqe"].get(label, {}).get("value")
                diag = d[name].get("fqe", {}).get(label)
                cells.append("-" if fqe is None else f"{fqe:.3f}")
                cells.append("-" if diag is None else _bellman_cell(diag))
            sem = d["true_return_sem"][label]
            lines.append(f"| {label} | {d['pool'][label]['kind']} | {value:.3f} ± {sem:.3f} | "
                         + " | ".join(cells) + " |")  # fmt: skip
        for name in per_dataset:
            cov = d[name]["support_coverage"]
            ess = {k: v["ess"] for k, v in d[name]["estimates"]["pdis"].items()}
            clipped = d[name]["estimates"].get("cpdis", {})
            lines.append(f"\n{name}: support coverage " + ", ".join(
                f"{k} {v:.2f}" for k, v in cov.items()) + "; PDIS ESS (unclipped -> clipped "
                "weights) " + ", ".join(
                f"{k} {v:.0f}" + (f" -> {clipped[k]['ess']:.0f}" if k in clipped else "")
                for k, v in ess.items()))  # fmt: skip
            sens = d[name].get("fqe", {})
            if sens:
                lines.append(f"\n{name}: FQE action sensitivity (mean |Q(s,a) - V(s)|) " +
                             ", ".join(f"{k} {v['action_sensitivity']:.3f}"
                                       for k, v in sens.items()))  # fmt: skip
        lines.append("\nWall time per phase (s): " + ", ".join(
            f"{k} {v:.0f}" for k, v in d["seconds"].items()))  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"


def _bellman_cell(diag: dict) -> str:
    """``0.021 / 0.034`` (fitted / held-out Bellman RMSE), ``[h32]`` the setting chosen by
    ``--fqe-select``, ``!`` when the bounds clipped."""
    held = diag["heldout_td_rmse"]
    cell = f"{diag['td_rmse']:.3f} / " + ("-" if held is None else f"{held:.3f}")
    cell += f" [{diag['setting']}]" if diag.get("setting") else ""
    return cell + (f" ! {100 * diag['clipped_targets']:.2g}% clipped" if diag["bounds_hit"] else "")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test in minutes")
    p.add_argument("--envs", default=None, help="comma-separated presets (default navigation,"
                   "driving; --quick: navigation)")  # fmt: skip
    p.add_argument(
        "--datasets",
        default=",".join(DEFAULT_DATASETS),
        help=f"comma-separated logged datasets to estimate on (of {list(DATASETS)}; default "
        "the issue's protocol: a broad behaviour mixture and a narrow log)",
    )
    p.add_argument("--online-episodes", type=int, default=None)
    p.add_argument("--dataset-episodes", type=int, default=None)
    p.add_argument("--bc-epochs", type=_ints, default=None,
                   help="comma-separated: one BC policy per epoch count (empty: none)")  # fmt: skip
    p.add_argument("--bc-batch-size", type=int, default=256, help="BC minibatch (transitions)")
    p.add_argument("--ppo-steps", type=int, default=None,
                   help="PPO steps from the last BC policy (0: no PPO members)")  # fmt: skip
    p.add_argument("--mask", default="camera,lidar,text",
                   help="keys masked, one member each, in the best learned policy")  # fmt: skip
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--fqe-iters", type=int, default=None)
    p.add_argument("--fqe-steps", type=int, default=None)
    p.add_argument("--fqe-holdout", type=float, default=0.1,
                   help="episodes FQE leaves out for its held-out Bellman error")  # fmt: skip
    p.add_argument(
        "--fqe-select",
        action="store_true",
        help="FQE: keep, per policy, the grid setting of lowest held-out Bellman "
        "error (mmrl.evaluation.fqe_selection; one fit per setting)",
    )
    p.add_argument("--fqe-features", choices=("data", "data+labels"), default=None,
                   help="FQE inputs shared by every policy: fixed data features, or those plus "
                   "the privileged labels the datasets log (default data+labels; --quick: "
                   "data)")  # fmt: skip
    p.add_argument("--fqe-ensemble", type=int, default=None,
                   help="Q-heads per FQE fit, their mean bootstraps the targets (default 5; "
                   "--quick: 1)")  # fmt: skip
    p.add_argument("--fqe-horizon", default="auto",
                   help="time limit FQE cuts returns at: auto (the datasets' max_episode_steps, "
                   "as the online returns are cut), none (bootstrap through truncations) or "
                   "steps")  # fmt: skip
    p.add_argument("--weight-clip", type=float, default=None,
                   help="clip of the c* estimators' weights (default sqrt(episodes))")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_ope", help="results folder (git-ignored)")
    args = p.parse_args(argv)
    quick = {"envs": "navigation", "online_episodes": 50, "dataset_episodes": 100,
             "bc_epochs": [1, 5], "ppo_steps": 6144, "fqe_iters": 60, "fqe_steps": 10,
             "fqe_features": "data", "fqe_ensemble": 1, "bootstrap": 200}  # fmt: skip
    full = {"envs": "navigation,driving", "online_episodes": 200, "dataset_episodes": 300,
            "bc_epochs": [1, 10], "ppo_steps": 49152, "fqe_iters": None, "fqe_steps": 25,
            "fqe_features": "data+labels", "fqe_ensemble": 5, "bootstrap": 1000}  # fmt: skip
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.mask = [k.strip() for k in args.mask.split(",") if k.strip()]
    args.datasets = [k.strip() for k in args.datasets.split(",") if k.strip()]
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown or not args.datasets:
        p.error(f"--datasets: unknown {unknown}, choose from {list(DATASETS)}")
    if "replay" in args.datasets and (args.ppo_steps <= 0 or not args.bc_epochs):
        p.error(
            "--datasets replay needs --ppo-steps > 0 and --bc-epochs (its behaviour is a "
            "BC policy and the PPO run from it)"
        )
    import torch as th

    # The Q-networks and behaviour models are small MLPs: one thread is ~4x faster than
    # several fighting over 2 cores (measured on the benchmark machine).
    th.set_num_threads(1)
    out = Path(args.out)
    (out / "datasets").mkdir(parents=True, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str((out / "datasets").resolve())
    command = "python scripts/bench_ope.py " + " ".join(argv if argv is not None else [])
    t0 = time.perf_counter()
    scores, details = {}, {}
    for env in [e.strip() for e in args.envs.split(",") if e.strip()]:
        scores[env], details[env] = run_env(env, args, out)
    (out / "ope.json").write_text(json.dumps(scores, indent=2) + "\n")
    (out / "details.json").write_text(json.dumps(details, indent=2) + "\n")
    (out / "summary.md").write_text(_summary(scores, details, args, command.strip()))
    figure = _figure(details, out)
    wrote = [out / "ope.json", out / "summary.md", *([figure] if figure else [])]
    print(f"wrote {', '.join(map(str, wrote))} in {time.perf_counter() - t0:.0f} s")
    return scores


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
