"""Atomic file writes: a temp file beside the target, renamed onto it only when complete.

Every durable write of the project goes through `atomic_file` (result rows, manifests, weights,
FID statistics, artifacts), so a crash or Ctrl-C never leaves half a file under a final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path` (`.<name>.<uuid>.tmp`); on clean exit it is renamed onto
    `path` (atomic on POSIX within one folder), on error removed.

    Usage: `with atomic_file(d / "G_u.pt") as tmp: torch.save(sd, tmp)`.
    """
    tmp = path.with_name(f".{path.name}.{uuid4().hex}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
