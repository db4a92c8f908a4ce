"""SB3 callbacks of ``mmrl train``: multimodal metrics, held-out evaluation, checkpoints.

Built on SB3's ``BaseCallback`` so they compose with users' own callbacks; log keys are
namespaced as in CleanRL (``rollout/``, ``eval/``, ``fusion/``, ``time/``).
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from mmrl.checkpoint import CheckpointError, atomic_save_model, atomic_write_bytes
from mmrl.rollout import collect_episodes, summarize


def find_extractor(model: Any) -> Any | None:
    """The policy's (actor's) features extractor, or ``None``."""
    policy = getattr(model, "policy", None)
    if policy is None:
        return None
    return getattr(policy, "pi_features_extractor", None) or getattr(
        policy, "features_extractor", None
    )


def find_vec_normalize(venv: VecEnv | None) -> VecNormalize | None:
    """The ``VecNormalize`` layer anywhere in a wrapper stack, or ``None``."""
    while venv is not None:
        if isinstance(venv, VecNormalize):
            return venv
        venv = getattr(venv, "venv", None)
    return None


def sync_normalization(source: VecEnv | None, target: VecEnv) -> None:
    """Copies running observation/return statistics from ``source`` to ``target``.

    SB3's ``sync_envs_normalization`` walks both stacks in lockstep and fails when the
    training stack carries the ``VecTransposeImage`` that SB3 adds for image observations
    but the evaluation stack does not; locating the ``VecNormalize`` layer in each is robust.
    """
    src, dst = find_vec_normalize(source), find_vec_normalize(target)
    if src is not None and dst is not None:
        dst.obs_rms = copy.deepcopy(src.obs_rms)
        dst.ret_rms = copy.deepcopy(src.ret_rms)


class MultimodalMetricsCallback(BaseCallback):
    """Logs collision rate, each reward term, per-modality fusion weights and steps/s.

    SB3 itself logs ``rollout/ep_rew_mean``, ``rollout/success_rate`` (from
    ``info["is_success"]``) and ``time/fps``; this adds what multimodal tasks need.

    Args:
        window: Episodes in the moving averages (SB3 uses 100).
    """

    def __init__(self, window: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.window = window
        self._collisions: deque[float] = deque(maxlen=window)
        self._terms: dict[str, deque[float]] = {}
        self._ep_terms: list[dict[str, float]] = []
        self._ep_collided: np.ndarray | None = None
        self._t0 = time.perf_counter()
        self._steps0 = 0

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self._ep_terms = [{} for _ in range(n)]
        self._ep_collided = np.zeros(n, dtype=bool)
        self._t0 = time.perf_counter()
        self._steps0 = self.num_timesteps

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", [])
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        for i, info in enumerate(infos):
            self._ep_collided[i] |= bool(info.get("collision", False))
            terms = self._ep_terms[i]
            for k, v in info.get("rewards", {}).items():
                terms[k] = terms.get(k, 0.0) + float(v)
            if dones[i]:
                self._collisions.append(float(self._ep_collided[i]))
                for k, v in terms.items():
                    self._terms.setdefault(k, deque(maxlen=self.window)).append(v)
                self._ep_terms[i] = {}
                self._ep_collided[i] = False
        return True

    def _on_rollout_end(self) -> None:
        if self._collisions:
            self.logger.record("rollout/collision_rate", float(np.mean(self._collisions)))
        for k, values in self._terms.items():
            self.logger.record(f"rollout/reward_{k}", float(np.mean(values)))
        extractor = find_extractor(self.model)
        if extractor is not None and hasattr(extractor, "modality_weights"):
            for key, weight in extractor.modality_weights().items():
                self.logger.record(f"fusion/{key}", float(weight))
        elapsed = time.perf_counter() - self._t0
        if elapsed > 0:
            rate = (self.num_timesteps - self._steps0) / elapsed
            self.logger.record("time/env_steps_per_s", rate)


class HeldOutEvalCallback(BaseCallback):
    """Evaluates on held-out seeds for each instruction split; keeps the best model.

    Every ``eval_freq`` environment steps the policy plays ``n_episodes`` deterministic
    episodes in each evaluation env (seeded identically every time, so evaluations are
    comparable) and logs ``eval/<split>/success_rate``, ``.../mean_return``,
    ``.../collision_rate``, ``.../mean_length``. The best model by (success rate, return) on
    the first split is saved atomically as ``best_model.zip``.

    Args:
        eval_envs: Split name to a factory building its ``VecEnv``.
        eval_seed: Seed of the evaluation episodes.
        n_episodes: Episodes per split.
        eval_freq: Environment steps between evaluations (0 disables periodic evaluation).
        best_model_path: Where the best model goes (``None`` disables).
        history_path: JSON lines file receiving every evaluation (``None`` disables).
        stop_success: Stop training (``_on_step`` returns False) once the success rate on
            ``stop_split`` reaches this value; ``stopped_at`` then holds the step.
        stop_split: The split ``stop_success`` watches (default: the first one).
        on_evaluation: Called with ``(num_timesteps, results)`` after every periodic
            evaluation (``results``: split -> summary); returning ``False`` stops training
            there like ``stop_success`` (``mmrl tune`` reports to Optuna's pruner through it).
    """

    def __init__(
        self,
        eval_envs: dict[str, Callable[[], VecEnv]],
        eval_seed: int,
        n_episodes: int,
        eval_freq: int,
        best_model_path: Path | None = None,
        history_path: Path | None = None,
        stop_success: float | None = None,
        stop_split: str | None = None,
        on_evaluation: Callable[[int, dict[str, dict[str, float]]], bool] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.on_evaluation = on_evaluation
        self.factories = eval_envs
        self.eval_seed = eval_seed
        self.n_episodes = n_episodes
        self.eval_freq = eval_freq
        self.best_model_path = best_model_path
        self.history_path = history_path
        self.stop_success = stop_success
        self.stop_split = stop_split or next(iter(eval_envs))
        if stop_success is not None and self.stop_split not in eval_envs:
            raise ValueError(
                f"stop split {self.stop_split!r} is not evaluated; splits: {sorted(eval_envs)}"
            )
        self.stopped_at: int | None = None
        self.best_score: tuple[float, float] | None = None
        self._envs: dict[str, VecEnv] = {}
        self._next_eval = eval_freq

    def _on_training_start(self) -> None:
        if self.eval_freq > 0:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps so a resumed run continues this evaluation history.

        Without the best score a resumed run's first evaluation replaced ``best_model.zip``
        whatever its score (issue 15).
        """
        return {"best_score": self.best_score}

    def restore(self, state: dict[str, Any] | None, step: int) -> None:
        """Continues the history of a run resumed from a checkpoint taken at ``step``.

        Evaluations logged after ``step`` (between that checkpoint and the kill) are dropped
        from the history file: the resumed run makes them again, so the file ends as the
        uninterrupted run's. Checkpoints written before the best score was kept (``state``
        ``None``) take it from the evaluations that remain.

        Args:
            state: :meth:`state` as the checkpoint stored it, or ``None``.
            step: Environment steps of the checkpoint.
        """
        kept: list[dict[str, Any]] = []
        if self.history_path is not None and self.history_path.exists():
            lines = self.history_path.read_text().splitlines()
            try:
                records = [json.loads(line) for line in lines if line.strip()]
            except json.JSONDecodeError as err:
                raise CheckpointError(f"{self.history_path} is corrupt ({err})") from None
            kept = [r for r in records if r.get("step", 0) <= step]
            if len(kept) != len(records):
                text = "".join(json.dumps(r) + "\n" for r in kept)
                atomic_write_bytes(self.history_path, text.encode())
        if state is not None and "best_score" in state:
            best = state["best_score"]
            self.best_score = None if best is None else (float(best[0]), float(best[1]))
            return
        for record in kept:
            first = next((v for k, v in record.items() if k != "step"), None)
            if isinstance(first, dict) and "success_rate" in first:
                score = (first["success_rate"], first["mean_return"])
                if self.best_score is None or score > self.best_score:
                    self.best_score = score

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Runs the evaluation now; returns per-split summaries."""
        results: dict[str, dict[str, float]] = {}
        for split, factory in self.factories.items():
            venv = self._envs.get(split)
            if venv is None:
                venv = self._envs[split] = factory()
            sync_normalization(self.model.get_env(), venv)
            venv.seed(self.eval_seed)
            episodes = collect_episodes(self.model.predict, venv, self.n_episodes)
            results[split] = summarize(episodes)
        return results

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.num_timesteps < self._next_eval:
            return True
        self._next_eval += self.eval_freq
        results = self.evaluate()
        for split, summary in results.items():
            for k, v in summary.items():
                if k != "episodes":
                    self.logger.record(f"eval/{split}/{k}", v)
        first = next(iter(results.values()))
        score = (first["success_rate"], first["mean_return"])
        if self.best_model_path is not None and (
            self.best_score is None or score > self.best_score
        ):
            self.best_score = score
            atomic_save_model(self.model, self.best_model_path)
        if self.history_path is not None:
            line = json.dumps({"step": self.num_timesteps, **results}) + "\n"
            old = self.history_path.read_bytes() if self.history_path.exists() else b""
            atomic_write_bytes(self.history_path, old + line.encode())
        self.logger.dump(self.num_timesteps)
        watched = results[self.stop_split]["success_rate"]
        if self.stop_success is not None and watched >= self.stop_success:
            self.stopped_at = self.num_timesteps
            return False
        if self.on_evaluation is not None and not self.on_evaluation(self.num_timesteps, results):
            self.stopped_at = self.num_timesteps
            return False
        return True

    def _on_training_end(self) -> None:
        for venv in self._envs.values():
            venv.close()
        self._envs.clear()


class CheckpointCallback(BaseCallback):
    """Calls ``save(num_timesteps)`` every ``every`` environment steps, at a rollout start.

    The start of a rollout is the one point where the model has just been updated and
    ``model._last_obs`` matches the simulator state, so a run resumed from there continues
    exactly; SB3's own ``CheckpointCallback`` saves mid-rollout (losing the partial rollout)
    and writes files in place (not atomic).
    """

    def __init__(self, every: int, save: Callable[[int], None], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.every = every
        self.save = save
        self._next = every

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.save(self.num_timesteps)

    def _on_step(self) -> bool:
        return True
