"""Builds valid ResultRows for the store and reduce tests (tests/ is on sys.path via its conftest)."""

from __future__ import annotations

from datetime import UTC, datetime

from guide_ray.store.schema import ResultRow


def make_row(identity_id: str = "id-0", **changes: object) -> ResultRow:
    base: dict[str, object] = {
        "identity_id": identity_id, "scenario": "random", "backend": "tiny", "variant": "guide", "seed": 1, "source": "",
        "status": "ok", "ID": 0.1, "seconds": 60.0, "worker": "w0", "node": "n0", "device": "cpu",
        "run_key": "k" * 16, "job_key": "j" * 16, "code_version": "0.1.0",
        "finished_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return ResultRow.model_validate({**base, **changes})
