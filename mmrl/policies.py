"""Loading trained policies: one place that knows which SB3 class reads a ``model.zip``.

mmrl trains PPO, but a ``model.zip`` may come from any SB3 algorithm (a DQN or SAC baseline
trained with :class:`~mmrl.extractor.MultimodalExtractor`, say); each must be loaded with its
own class, since ``PPO.load`` passes PPO-only policy arguments (``use_sde``) that other
policies refuse. :func:`load_sb3_model` is used by ``mmrl collect``, ``mmrl bench`` and
``mmrl evaluate`` (issue 14: ``PPO.load`` was hard-coded in collect and bench).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrl.checkpoint import check_model_file
from mmrl.errors import CheckpointError, one_line

__all__ = ["algorithm_class", "load_sb3_model", "one_line"]

#: SB3 algorithms whose policies live in their own module (``stable_baselines3.<name>.policies``);
#: PPO and A2C share ``common.policies``, and PPO's ``load`` reads both.
_OWN_POLICY_MODULES = ("dqn", "sac", "td3", "ddpg")


def algorithm_class(model_path: str | Path) -> type:
    """The SB3 algorithm class that saved ``model_path``, from the policy class in its data.

    Raises:
        CheckpointError: The archive cannot be read.
    """
    import stable_baselines3 as sb3
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, _, _ = load_from_zip_file(model_path, device="cpu", load_data=True)
    except Exception as err:  # SB3 raises bare ValueError/KeyError/pickle errors here.
        raise CheckpointError(f"cannot read {model_path}: {one_line(err)}") from None
    module = getattr(data.get("policy_class"), "__module__", "") if data else ""
    for name in _OWN_POLICY_MODULES:
        if f".{name}." in f"{module}.":
            return getattr(sb3, name.upper())
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
