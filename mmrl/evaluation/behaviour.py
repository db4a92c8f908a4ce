"""The behaviour policy of a logged dataset: read from the data, or estimated by behaviour cloning.

Importance sampling and doubly robust estimators need ``mu(a_t|s_t)`` of every logged action.
``mmrl collect`` logs it exactly (``infos["behaviour_log_prob"]``, :mod:`mmrl.densities`).
Datasets written before that, or by other tools, do not: then the behaviour policy is
estimated by behaviour cloning on the data itself (Hanna, Niekum & Stone 2019, "Importance
Sampling Policy Evaluation with an Estimated Behavior Policy", show the estimated form can
even lower the variance): a small softmax classifier (discrete actions) or a Gaussian
regressor with a state-dependent mean and standard deviation (continuous actions) on fixed
features of the observations (:func:`data_features`), fitted on 80 % of the episodes and
kept at its best held-out log-likelihood, which the report quotes.

:func:`data_features` is also an FQE input mode (``--fqe-features data``): the same cheap,
policy-independent features for every policy, so a ranking compares policies on equal terms
and reference policies without a network (expert, random) can be evaluated.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.data.episodes import LoggedData

__all__ = ["BehaviourModel", "data_features", "estimate_behaviour", "logged_behaviour"]

_POOL = 6  # images are average-pooled to a 6 x 6 grid per channel
_MIN_PROB = 1e-3  # estimated discrete probabilities are floored here (bounded weights)


def _pool_images(images: np.ndarray) -> np.ndarray:
    """``(S, H, W, C)`` uint8 to ``(S, POOL * POOL * C)`` float32 block means in ``[0, 1]``."""
    s, h, w, c = images.shape
    bh, bw = max(1, h // _POOL), max(1, w // _POOL)
    gh, gw = min(_POOL, h), min(_POOL, w)
    out = np.empty((s, gh, gw, c), np.float32)
    for start in range(0, s, 4096):  # bounded temporaries for long datasets
        block = images[start : start + 4096, : gh * bh, : gw * bw].astype(np.float32)
        out[start : start + 4096] = block.reshape(-1, gh, bh, gw, bw, c).mean(axis=(2, 4))
    return out.reshape(s, -1) / 255.0


def data_features(
    observation_space: spaces.Dict, observations: dict[str, np.ndarray]
) -> np.ndarray:
    """Fixed features of Dict observations, the same for every policy.

    Images (3-D ``uint8``): ``6 x 6`` block means per channel. Token ids (1-D integer Box):
    bag of words over the vocabulary (the instruction's content; word order is lost).
    Everything else: flattened. Columns are standardized.

    Args:
        observation_space: The dataset's space (channel-last images).
        observations: Key -> ``(S, ...)`` arrays.

    Returns:
        ``(S, F)`` float32.
    """
    parts = []
    for key, sub in observation_space.spaces.items():
        x = np.asarray(observations[key])
        if len(sub.shape) == 3 and x.dtype == np.uint8:
            parts.append(_pool_images(x))
        elif len(sub.shape) == 1 and np.issubdtype(sub.dtype, np.integer):
            vocab = int(np.max(sub.high)) + 1
            rows = np.repeat(np.arange(len(x)), x.shape[1])
            bag = np.zeros((len(x), vocab), np.float32)
            np.add.at(bag, (rows, x.reshape(-1)), 1.0)
            bag[:, 0] = 0.0  # padding
            parts.append(bag)
        else:
            parts.append(x.reshape(len(x), -1).astype(np.float32))
    feats = np.concatenate(parts, axis=1)
    return ((feats - feats.mean(0)) / (feats.std(0) + 1e-6)).astype(np.float32)


def label_features(labels: dict[str, np.ndarray]) -> np.ndarray:
    """The privileged labels of every state as standardized columns, ``(S, L)`` float32, in
    name order (booleans as 0/1; a constant label is a column of zeros)."""
    cols = np.stack([np.asarray(labels[k], dtype=np.float64) for k in sorted(labels)], axis=1)
    return ((cols - cols.mean(0)) / (cols.std(0) + 1e-6)).astype(np.float32)


@dataclasses.dataclass
class BehaviourModel:
    """``log mu(a_t|s_t)`` of every logged action and where it came from.

    Attributes:
        log_prob: ``(N,)`` float64 (:mod:`mmrl.densities` convention).
        source: ``"logged"`` (exact, from the data) or ``"estimated"`` (behaviour cloning).
        description: One line for the report (which policy, which noise, or how well the
            clone fits).
        heldout_log_lik: Mean held-out log-likelihood per step of the clone, or ``None``.
    """

    log_prob: np.ndarray
    source: str
    description: str
    heldout_log_lik: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "description": self.description,
            "heldout_log_lik": self.heldout_log_lik,
        }


def logged_behaviour(data: LoggedData) -> BehaviourModel | None:
    """The exact behaviour log-probabilities ``mmrl collect`` logged, or ``None``."""
    if data.behaviour_log_prob is None or np.isnan(data.behaviour_log_prob).any():
        return None
    meta = data.metadata.get("behaviour") or {}
    what = meta.get("policy", "unknown policy")
    if meta.get("mixture"):  # several datasets: each episode's own policy (concat_logged_data)
        description = f"logged by mmrl collect, each episode by its own policy: {what}"
    else:
        sampled = " (sampled)" if meta.get("stochastic") else ""
        description = f"logged by mmrl collect: {what}{sampled}, epsilon {meta.get('epsilon', '?')}"
    return BehaviourModel(data.behaviour_log_prob.astype(np.float64), "logged", description)


def estimate_behaviour(
    data: LoggedData,
    features: np.ndarray,
    *,
    steps: int = 600,
    hidden: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> BehaviourModel:
    """Behaviour cloning of the logged actions: ``mu_hat(a|s)`` of every logged step.

    Args:
        data: The logged data.
        features: ``(S, F)`` state features (:func:`data_features`).
        steps: Adam steps (minibatches of 512 transitions).
        hidden: Width of the two hidden layers.
        lr: Adam step size.
        seed: Initialization, minibatches and the held-out split.

    Returns:
        The :class:`BehaviourModel` (``source="estimated"``); discrete probabilities are
        floored at 1e-3 so no weight exceeds 1000 per step.
    """
    import copy

    import torch as th
    from torch import nn

    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = th.as_tensor(features[data.state_idx])
    discrete = data.discrete
    if discrete:
        n_out = int(data.action_space.n)
        y = th.as_tensor(data.actions).long()
    else:
        n_out = 2 * int(np.prod(data.action_space.shape))
        y = th.as_tensor(data.actions.reshape(len(data.actions), -1)).float()
    net = nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, n_out),
    )  # fmt: skip

    def log_lik(idx: th.Tensor) -> th.Tensor:
        out = net(x[idx])
        if discrete:
            logp = th.log_softmax(out, -1).gather(1, y[idx][:, None]).squeeze(1)
            return th.clamp(logp, min=float(np.log(_MIN_PROB)))
        mean, log_std = out.chunk(2, dim=-1)
        log_std = log_std.clamp(-5.0, 2.0)
        z = (y[idx] - mean) / log_std.exp()
        return (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

    heldout_eps = rng.random(data.n_episodes) < 0.2
    if heldout_eps.all() or not heldout_eps.any():
        heldout_eps[:] = False
        heldout_eps[0] = data.n_episodes > 1
    held = heldout_eps[data.episode_of]
    train_idx = th.as_tensor(np.flatnonzero(~held))
    held_idx = th.as_tensor(np.flatnonzero(held)) if held.any() else train_idx
    optimizer = th.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    gen = th.Generator().manual_seed(seed)
    best, best_state = -np.inf, copy.deepcopy(net.state_dict())
    for step in range(steps):
        batch = train_idx[th.randint(len(train_idx), (min(512, len(train_idx)),), generator=gen)]
        loss = -log_lik(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 24 or step == steps - 1:
            with th.no_grad():
                score = float(log_lik(held_idx).mean())
            if score > best:
                best, best_state = score, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    with th.no_grad():
        logp = th.cat([log_lik(c) for c in th.split(th.arange(len(x)), 8192)])
    what = "softmax classifier" if discrete else "Gaussian regressor"
    return BehaviourModel(
        logp.double().numpy(),
        "estimated",
        f"estimated by behaviour cloning ({what} on the data, held-out log-lik/step "
        f"{best:.3f}): the dataset has no logged behaviour probabilities",
        best,
    )
