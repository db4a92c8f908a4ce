"""Encoder checkpoints written by ``mmrl pretrain`` and read by ``mmrl train --init-from``.

One ``torch.save`` file (written atomically) holding only tensors and plain data, so it loads
with ``torch.load(weights_only=True)`` (no pickled code is executed). Besides the weights it
records what is needed to refuse a wrong ``--init-from`` *before* training, naming what
differs: the extractor's architecture config (``MultimodalExtractor.config``: fusion, widths,
encoder per key and each key's space), the observation and action spaces, the policy-head
layout the BC head was trained with, the objectives and the dataset.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch as th
from gymnasium import spaces

from mmrl.agent import policy_kwargs
from mmrl.checkpoint import CheckpointError, atomic_write_bytes
from mmrl.errors import ConfigError
from mmrl.spaces import differences

FORMAT = "mmrl-encoder"
VERSION = 1
#: Extractor-config entries that do not change parameter shapes (free to differ).
SHAPE_NEUTRAL = ("modality_dropout",)


def build_policy(observation_space: spaces.Dict, action_space: spaces.Space, config: Any):
    """The SB3 ``MultiInputActorCriticPolicy`` PPO would build for these spaces and recipe
    (for ``recurrent-ppo``, sb3-contrib's ``MultiInputLstmPolicy``).

    Args:
        observation_space: The policy-layout space (images channel-first, as after SB3's
            ``VecTransposeImage``).
        action_space: The action space.
        config: A :class:`~mmrl.config.RunConfig` (its ``agent`` section is used).

    Raises:
        ConfigError: If the recipe cannot be built on these spaces (message names the key).
    """
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from mmrl.agent import policy_class

    cls: Any = MultiInputActorCriticPolicy
    if config.agent.algo == "recurrent-ppo":  # its LSTM policy
        cls = policy_class(config)
    try:
        # PPO passes use_sde=False by default; the schedule only seeds the unused optimizer.
        return cls(observation_space, action_space, lambda _: 0.0, **policy_kwargs(config))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"agent {config.agent_name!r}: cannot build its policy: {err}") from None


def head_config(config: Any) -> dict[str, Any]:
    """The policy-head layout a BC head depends on (``pi`` sizes and activation; for
    ``recurrent-ppo`` also the LSTM it reads, which is part of the head)."""
    layout: dict[str, Any] = {
        "pi": list(config.agent.policy.pi),
        "activation": config.agent.policy.activation,
    }
    if config.agent.algo == "recurrent-ppo":
        recurrent = config.agent.recurrent
        layout["lstm"] = {
            "hidden_size": recurrent.lstm_hidden_size,
            "layers": recurrent.n_lstm_layers,
        }
        if recurrent.skip_connection:  # absent otherwise: older checkpoints still compare equal
            layout["lstm"]["skip_connection"] = True
    return layout


def serialize_space(space: spaces.Space) -> str:
    """A space as JSON (Minari's serializer, so datasets and checkpoints agree)."""
    from minari.serialization import serialize_space as _serialize

    return _serialize(space)


def deserialize_space(text: str) -> spaces.Space:
    """Inverse of :func:`serialize_space`."""
    from minari.serialization import deserialize_space as _deserialize

    return _deserialize(json.loads(text))


def save_encoder_checkpoint(
    path: str | Path,
    *,
    extractor: Any,
    head: Mapping[str, Any],
    head_layout: Mapping[str, Any],
    action_space: spaces.Space,
    aux_heads: Mapping[str, th.Tensor],
    info: Mapping[str, Any],
) -> Path:
    """Writes an encoder checkpoint atomically.

    Args:
        path: Output file (``.pt``).
        extractor: The trained :class:`~mmrl.extractor.MultimodalExtractor`.
        head: ``policy_net`` / ``action_net`` state dicts (and ``log_std``) of the BC head.
        head_layout: :func:`head_config` of the recipe.
        action_space: The action space the BC head acts in.
        aux_heads: State dict of the auxiliary heads (labels, projections, predictors).
        info: Plain data: ``objectives``, ``agent``, ``env``, ``dataset_id``, ``metrics``,
            ``label_specs``, ``history``...

    Returns:
        The path written.
    """
    from mmrl import __version__

    payload = {
        "format": FORMAT,
        "version": VERSION,
        "mmrl_version": __version__,
        "extractor_config": extractor.config,
        "observation_space": serialize_space(extractor._observation_space),
        "action_space": serialize_space(action_space),
        "head_config": dict(head_layout),
        "info": json.loads(json.dumps(dict(info), default=float)),
        "extractor": {k: v.detach().cpu() for k, v in extractor.state_dict().items()},
        "head": {
            k: ({n: t.detach().cpu() for n, t in v.items()} if isinstance(v, Mapping) else v.cpu())
            for k, v in head.items()
        },
        "aux_heads": {k: v.detach().cpu() for k, v in aux_heads.items()},
    }
    buffer = io.BytesIO()
    th.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_encoder_checkpoint(path: str | Path, option: str = "--init-from") -> dict[str, Any]:
    """Reads and validates an encoder checkpoint.

    Args:
        path: The ``.pt`` file written by ``mmrl pretrain``.
        option: The command-line option that named it, for the error messages.

    Raises:
        CheckpointError: Missing file, unreadable/corrupt file, or not an mmrl encoder
            checkpoint (e.g. a PPO ``model.zip``), with what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{option} {path}: file not found (write one with mmrl pretrain)")
    try:
        payload = th.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{option} {path}: not a readable mmrl encoder checkpoint ({first[:200]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{option} {path}: not an mmrl encoder checkpoint (expected one written by "
            "'mmrl pretrain'; a PPO model.zip continues with --resume instead)"
        )
    version = payload.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"{option} {path}: malformed checkpoint: 'version' is {version!r}, not an integer"
        )
    if version > VERSION:
        raise CheckpointError(
            f"{option} {path}: checkpoint format v{payload['version']} is newer than this "
            f"mmrl reads (v{VERSION}); upgrade mmrl"
        )
    missing = [
        k for k in ("extractor_config", "extractor", "observation_space") if k not in payload
    ]
    if missing:
        raise CheckpointError(f"{option} {path}: checkpoint lacks {missing}")
    problem = _malformed_field(payload)
    if problem:
        raise CheckpointError(f"{option} {path}: malformed checkpoint: {problem}")
    bad = _non_finite_tensors(payload)
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CheckpointError(
            f"{option} {path}: NaN or infinite weights in {', '.join(bad[:3])}{more}; "
            "the pretraining diverged (retrain with a lower --lr)"
        )
    return payload


def _tensor_tree(tree: Any) -> bool:
    """Whether ``tree`` is a tensor or a mapping of names to tensor trees."""
    if isinstance(tree, th.Tensor):
        return True
    return isinstance(tree, Mapping) and all(
        isinstance(k, str) and _tensor_tree(v) for k, v in tree.items()
    )


def _malformed_field(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a checkpoint's fields (``None``: nothing), checked before any is used,
    so a damaged or hand-edited file is one clear error instead of a crash deep in the
    loading code (issue 15)."""
    config = payload["extractor_config"]
    if not isinstance(config, Mapping):
        return f"'extractor_config' is a {type(config).__name__}, not a mapping"
    for key in ("observation_space", "action_space"):
        if key not in payload:
            continue
        try:
            space = deserialize_space(payload[key])
        except Exception as err:  # Minari raises KeyError/TypeError/ValueError/JSON errors
            return f"'{key}' is not a serialized Gymnasium space ({type(err).__name__}: {err})"
        if key == "observation_space" and not isinstance(space, spaces.Dict):
            return f"'observation_space' is {space}, not a Dict space"
    for key in ("head_config", "info"):
        if payload.get(key) is not None and not isinstance(payload[key], Mapping):
            return f"'{key}' is a {type(payload[key]).__name__}, not a mapping"
    for key in ("extractor", "head", "aux_heads"):
        if key in payload and not _tensor_tree(payload[key]):
            return f"'{key}' is not a mapping of parameter names to tensors"
    return None


def _non_finite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a nested payload holding NaN or infinity."""
    if isinstance(tree, th.Tensor):
        finite = not tree.is_floating_point() or bool(th.isfinite(tree).all())
        return [] if finite else [prefix or "tensor"]
    if isinstance(tree, Mapping):
        found = []
        for key, value in tree.items():
            found += _non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
        return found
    return []


def config_differences(expected: Any, actual: Any, prefix: str = "") -> list[str]:
    """Recursive differences between two JSON-like trees, as ``"path: a vs b"`` strings."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        diffs = []
        for key in list(expected) + [k for k in actual if k not in expected]:
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in actual:
                diffs.append(f"{where}: only in the checkpoint")
            elif key not in expected:
                diffs.append(f"{where}: only in the policy")
            else:
                diffs += config_differences(expected[key], actual[key], where)
        return diffs
    if expected != actual:
        return [f"{prefix or 'value'}: {expected!r} (checkpoint) vs {actual!r} (policy)"]
    return []


def extractor_differences(checkpoint: Mapping[str, Any], extractor: Any) -> list[str]:
    """What differs between a checkpoint's extractor and ``extractor`` (shape-relevant only)."""
    saved = {k: v for k, v in checkpoint["extractor_config"].items() if k not in SHAPE_NEUTRAL}
    current = {k: v for k, v in extractor.config.items() if k not in SHAPE_NEUTRAL}
    diffs = config_differences(saved, current, "extractor")
    # Parameter names ignore the order of the modalities, but fusions that concatenate or
    # index them (concat, gated, film...) do not: loading across orders scrambles them.
    saved_order, order = list(saved.get("modalities", {})), list(current.get("modalities", {}))
    if not diffs and saved_order != order:
        diffs.append(
            f"extractor.modalities order {saved_order} (checkpoint) vs {order} (policy; the "
            "environment's observation key order): pretrain again with this mmrl version"
        )
    return diffs


def head_differences(
    checkpoint: Mapping[str, Any], layout: Mapping[str, Any], action_space: spaces.Space
) -> list[str]:
    """What differs between the checkpoint's BC head and the policy's head layout/actions."""
    if not checkpoint.get("head"):
        return ["the checkpoint has no BC head (pretrain with the 'bc' objective)"]
    saved, wanted = dict(checkpoint.get("head_config", {})), dict(layout)
    diffs = []
    if "lstm" not in saved and wanted.get("lstm", {}).get("skip_connection"):
        # A feed-forward head fits a skip policy's feature columns (mmrl.recurrent).
        wanted.pop("lstm")
    # A head that reads an LSTM and one that reads the extractor differ in kind, not size:
    # say which side has the LSTM and what to do, instead of a bare "only in ..." key.
    if ("lstm" in saved) != ("lstm" in wanted):
        diffs.append(
            "this checkpoint's BC head reads an LSTM (pretrained with a recurrent-ppo agent); "
            "this policy has none: train a recurrent-ppo agent or load the extractor alone"
            if "lstm" in saved
            else "this checkpoint's BC head reads the extractor's output, a recurrent-ppo "
            "policy's head reads its LSTM's; pretrain with the recurrent-ppo agent (its LSTM "
            "is trained and saved with the head) or load the extractor alone (drop "
            "--init-policy-head)"
        )
        saved.pop("lstm", None)
        wanted.pop("lstm", None)
    diffs += config_differences(saved, wanted, "policy")
    saved_space = deserialize_space(checkpoint["action_space"])
    diffs += [
        f"action space: {d}"
        for d in differences(saved_space, action_space, names=("checkpoint", "policy"))
    ]
    return diffs
