"""File helpers: atomic writes and the one sha256 of a file.

Every durable write of the project goes through `atomic_file` (result rows, manifests, weights,
FID statistics, artifacts), so a crash or Ctrl-C never leaves half a file under a final name.
`file_sha256` is the one digest used for weights checks, job keys and checkpoint provenance.
"""

from __future__ import annotations

import functools
import hashlib
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


def file_sha256(path: Path | str) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    path = Path(path).resolve()
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
