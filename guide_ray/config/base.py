"""StrictModel and the canonical fingerprint every run key is built from."""

from __future__ import annotations

import hashlib
import json

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError


class StrictModel(BaseModel):
    """Frozen, unknown keys rejected: a misspelt YAML key fails loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _ray_gpu_rule(v: float) -> float:
    if v > 1 and not float(v).is_integer():
        raise ValueError("more than one GPU must be a whole number (Ray's rule); fractions only below 1")
    return v


# GPUs of one actor or trial: a fraction below 1 packs several onto one GPU, above 1 only whole GPUs.
GpuCount = Annotated[float, Field(ge=0), AfterValidator(_ray_gpu_rule)]


def fingerprint(obj: BaseModel | dict | list | str | float | int | None) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys); stable across processes and runs."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def describe_validation_error(exc: ValidationError) -> str:
    """One line: 'field: reason; field: reason' (pydantic's own messages, without URLs)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
