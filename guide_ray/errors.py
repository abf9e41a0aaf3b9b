"""Typed errors raised at the edges (CLI, YAML, manifest, weights, checkpoints).

Each names the file, row or field at fault and what to do about it; the CLI turns any
`GuideRayError` into a one-line message and exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from guide_ray.utils.text import escape


class GuideRayError(Exception):
    """Base class: a user-facing problem with a clear, one-line explanation."""


class ConfigError(GuideRayError):
    """A config file, CLI flag or override failed validation."""


class ManifestRowError(GuideRayError):
    """One manifest row is unusable; the rest of the batch goes on."""

    def __init__(self, row: int, identity_id: str | None, reason: str) -> None:
        self.row, self.identity_id, self.reason = row, identity_id, reason
        who = f" ({identity_id})" if identity_id else ""
        super().__init__(escape(f"manifest row {row}{who}: {reason}"))  # ids and values come from the file

    def __reduce__(self):  # picklable, so it can cross the Ray boundary intact
        return type(self), (self.row, self.identity_id, self.reason)


class WeightsMissing(GuideRayError):
    """A pretrained file is not in the weights directory; nothing is ever downloaded."""

    def __init__(self, path: Path | str, how_to_get: str) -> None:
        self.path, self.how_to_get = Path(path), how_to_get
        super().__init__(f"missing weights file {self.path}: {how_to_get}")

    def __reduce__(self):
        return type(self), (self.path, self.how_to_get)


class WeightsInvalid(GuideRayError):
    """A weights file exists but has the wrong hash, format, keys or shapes."""


class UnsafeCheckpoint(GuideRayError):
    """A pickle names a global outside the allow-list; refused before anything is built."""

    def __init__(self, path: Path | str, module: str, name: str) -> None:
        self.path, self.module, self.name = Path(path), module, name
        super().__init__(
            f"refusing to load {self.path}: it references {module}.{name}, which is not on the "
            "allow-list of safe checkpoint globals (checkpoint code is never executed)"
        )

    def __reduce__(self):
        return type(self), (self.path, self.module, self.name)


class BadImage(GuideRayError):
    """An input photo cannot be read or has the wrong size/format for the encoder."""
