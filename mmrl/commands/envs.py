"""Options of ``mmrl envs`` (the listing of environments, presets and recipes)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option


@dataclasses.dataclass(kw_only=True)
class EnvsOptions:
    """``mmrl envs``: registered environments and presets with their spaces."""

    no_spaces: bool = option(False, help="names only (no env construction)")
