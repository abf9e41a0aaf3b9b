"""Named variants: the rows of the paper's tables, as patches on a GuideConfig.

`baseline` is the w_avg target with L_local; `extrapolated` swaps in the UFO target;
`extrapolated+adj` adds L_adj; `guide` is the full method. `adj-only` and `global-only` let an
ablation run one of the other loss terms on its own with the UFO target (`extrapolated` is L_local alone).
"""

from __future__ import annotations

import difflib

from guide_ray.config.guide import GuideConfig, apply_overrides
from guide_ray.errors import ConfigError

_OFF = {"loss_local": False, "loss_adj": False, "loss_global": False}

VARIANTS: dict[str, dict[str, object]] = {
    "baseline":         {**_OFF, "target": "average", "loss_local": True},
    "extrapolated":     {**_OFF, "target": "extrapolated", "loss_local": True},
    "extrapolated+adj": {**_OFF, "target": "extrapolated", "loss_local": True, "loss_adj": True},
    "guide":            {"target": "extrapolated", "loss_local": True, "loss_adj": True, "loss_global": True},
    "adj-only":         {**_OFF, "target": "extrapolated", "loss_adj": True},
    "global-only":      {**_OFF, "target": "extrapolated", "loss_global": True},
}


def apply_variant(base: GuideConfig, name: str) -> GuideConfig:
    """`base` with the switches of variant `name`; every other hyperparameter is kept."""
    if name not in VARIANTS:
        hint = "".join(f" Did you mean {m!r}?" for m in difflib.get_close_matches(name, VARIANTS, n=1))
        raise ConfigError(f"unknown variant {name!r}.{hint} Available: {', '.join(VARIANTS)}")
    return apply_overrides(base, VARIANTS[name])
