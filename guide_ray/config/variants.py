"""Named variants: the rows of the paper's tables, as patches on a GuideConfig.

`baseline` is the w_avg target with L_local; `extrapolated` swaps in the UFO target;
`extrapolated+adj` adds L_adj; `guide` is the full method. `adj-only` and `global-only` let an
ablation run one of the other loss terms on its own with the UFO target (`extrapolated` is L_local alone).

A variant never silently replaces a setting the job states itself: `variant: guide` with
`guide: {target: average}` is a ConfigError naming both (a row or `--set` override, applied
after the variant, is the way to change one switch of a variant). No torch.
"""

from __future__ import annotations


from guide_ray.config.guide import GuideConfig, apply_overrides
from guide_ray.errors import ConfigError
from guide_ray.utils.text import did_you_mean

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
    """`base` with the switches of variant `name`; every other hyperparameter is kept.

    Raises ConfigError for an unknown name, or when `base` explicitly sets (model_fields_set) one
    of the variant's switches to a different value.
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}{did_you_mean(name, VARIANTS)}. Available: {', '.join(VARIANTS)}")
    patch = VARIANTS[name]
    clashes = [f"guide.{k}: {getattr(base, k)!r} (variant {name!r} sets {k}={v!r})"
               for k, v in patch.items() if k in base.model_fields_set and getattr(base, k) != v]
    if clashes:
        raise ConfigError(f"variant {name!r} would overwrite what the job sets explicitly: {'; '.join(clashes)}; "
                          "remove the setting, or choose the variant that has it")
    return apply_overrides(base, patch)
