"""StrictModel and the canonical fingerprint every run key is built from."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Frozen, unknown keys rejected: a misspelt YAML key fails loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
