"""The driver loop: hand identities to worker actors, collect rows in completion order, commit them.

Plain Ray Core (no ActorPool, no Ray Data): a deque of (item, attempt), at most 1 + prefetch
items in flight per actor, `ray.wait(num_returns=1)` so a slow identity never blocks the others.

* A `failed` row (the worker caught an exception) or a dead actor (RayActorError: crash, OOM
  kill, ray.kill, node loss) sends the item back to the end of the queue with attempt + 1; after
  `max_attempts` the failed row is committed.
* Failures that would only repeat are committed at once instead: a guide-ray error or a config
  validation error (a bad image, a bad setting: same input, same error), and any error that the
  worker raised, word for word (identity ids aside), on REPEAT_LIMIT different identities (a job
  setting that makes every identity fail the same way). Actor deaths and out-of-memory errors
  (which depend on what else shares the device) are always retried.
* After an actor error the slot gets no work until a `ready()` probe answers (Ray restarted it);
  a probe that fails means the actor is gone for good, and a fresh one replaces it, within a budget.
* `commit` is called exactly once per identity, from this loop only (the single writer).

The loop is shared by `guide-ray run` (WorkItem → ResultRow) and `guide-ray verify` (VerifyItem →
VerifyRow): it needs of an item only its `identity_id`, of a row its `identity_id`, `status`,
`error` and `attempts`, and builds the driver's own failed rows with `failed` (worker.failed_row
by default).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import ray
from ray.exceptions import RayError, RayTaskError

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.engine.actors import ActorSlot, interrupt_worker, stop_worker, submit_process, submit_ready
from guide_ray.engine.worker import FailedRow, describe_exception, failed_row
from guide_ray.errors import GuideRayError
from guide_ray.store.schema import ResultRow
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)

WAIT_S = 0.5  # ray.wait timeout: how often timeouts and progress are checked while nothing finishes
REPEAT_LIMIT = 3  # identities failing with the same error before it counts as deterministic
TRANSIENT_MARKS = ("OutOfMemoryError", "out of memory")  # never deterministic by repetition


def _error_names(cls: type[BaseException]) -> set[str]:
    return {cls.__name__}.union(*(_error_names(sub) for sub in cls.__subclasses__()))


# errors the same input always raises again: guide-ray's typed errors and pydantic validation
NOT_RETRIED = frozenset(_error_names(GuideRayError) | {"ValidationError"})


@dataclass
class Counts:
    """Live totals for progress reporting."""

    total: int
    ok: int = 0
    failed: int = 0
    retried: int = 0
    running: int = 0
    queued: int = 0


class Progress(Protocol):
    """Where the loop reports progress (the CLI passes a tqdm bar; tests pass nothing)."""

    def update(self, counts: Counts) -> None: ...


@dataclass
class _Flight:
    slot: ActorSlot
    kind: Literal["item", "probe"]
    item: WorkItem | None = None
    attempt: int = 0
    submitted: float = field(default_factory=time.monotonic)
    timed_out: bool = False


class Scheduler:
    """Runs a list of WorkItems to committed rows on a set of live actors (see module docstring)."""

    def __init__(
        self,
        job: JobSpec,
        job_key: str,
        slots: list[ActorSlot],
        *,
        commit: Callable[[ResultRow], None],
        spawn: Callable[[int], ActorSlot],
        progress: Progress | None = None,
        failed: FailedRow = failed_row,
    ) -> None:
        self.job, self.job_key = job, job_key
        self.failed = failed
        self.healthy = list(slots)
        self.commit, self.spawn, self.progress = commit, spawn, progress
        self.replacements_left = 2 * len(slots)
        self.todo: deque[tuple[WorkItem, int]] = deque()
        self.in_flight: dict[ray.ObjectRef, _Flight] = {}
        self.last_settled: dict[str, float] = {}
        self.counts = Counts(total=0)
        self.seen_errors: dict[str, set[str]] = {}  # error text (ids masked) -> identities that raised it

    def run(self, items: list[WorkItem]) -> Counts:
        """Process `items` until each has a committed row. Raises GuideRayError if every actor is lost."""
        self.todo.extend((item, 1) for item in items)
        self.counts = Counts(total=len(items))
        self._dispatch()
        while self.in_flight:
            self._report()
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                self._settle(ref, self.in_flight.pop(ref))
            self._enforce_timeout()
            self._dispatch()
        self._report()
        if self.todo:
            raise GuideRayError(f"no worker left to run {len(self.todo)} identities (all actors died)")
        return self.counts

    def _dispatch(self) -> None:
        busy = Counter(f.slot.name for f in self.in_flight.values())
        for slot in self.healthy:
            while self.todo and busy[slot.name] < 1 + self.job.prefetch:
                item, attempt = self.todo.popleft()
                self.in_flight[submit_process(slot, item)] = _Flight(slot, "item", item, attempt)
                busy[slot.name] += 1

    def _settle(self, ref: ray.ObjectRef, flight: _Flight) -> None:
        self.last_settled[flight.slot.name] = time.monotonic()
        if flight.kind == "probe":
            self._settle_probe(ref, flight.slot)
            return
        assert flight.item is not None
        repeatable = False
        try:
            row: ResultRow = ray.get(ref)
            repeatable = row.status == "failed" and self._deterministic(row)
        except RayTaskError as exc:  # raised outside process()'s own catch, e.g. unpicklable arguments
            row = self._driver_row(flight, describe_exception(exc.cause or exc))
        except RayError as exc:  # the actor died mid-identity: crash, OOM kill, ray.kill, node loss
            reason = f"timed out after {self.job.item_timeout_s} s" if flight.timed_out else describe_exception(exc)
            row = self._driver_row(flight, f"worker died: {reason}")
            self._probe(flight.slot)
        self._retry_or_commit(flight, row, repeatable=repeatable)

    def _deterministic(self, row: ResultRow) -> bool:
        """Would retrying this worker-reported failure only repeat it? (see module docstring)"""
        error = row.error or ""
        if error.split(":", 1)[0] in NOT_RETRIED:
            return True
        if any(mark in error for mark in TRANSIENT_MARKS):
            return False
        masked = re.sub(rf"(?<![\w.-]){re.escape(row.identity_id)}(?![\w.-])", "<id>", error)
        seen = self.seen_errors.setdefault(masked, set())
        seen.add(row.identity_id)
        if len(seen) == REPEAT_LIMIT:
            log.error("the same error on %d identities, so it comes from the job's settings and is not retried: %s",
                      REPEAT_LIMIT, escape(error))
        return len(seen) >= REPEAT_LIMIT

    def _retry_or_commit(self, flight: _Flight, row: ResultRow, *, repeatable: bool = False) -> None:
        assert flight.item is not None
        if row.status == "failed" and flight.attempt < self.job.max_attempts and not repeatable:
            log.warning("%s attempt %d/%d failed, re-queued: %s", escape(row.identity_id), flight.attempt,
                        self.job.max_attempts, escape(row.error))
            self.todo.append((flight.item, flight.attempt + 1))
            self.counts.retried += 1
            return
        row = type(row).model_validate({**row.model_dump(), "attempts": flight.attempt})
        self.commit(row)
        if row.status == "ok":
            self.counts.ok += 1
        else:
            self.counts.failed += 1
            log.error("%s failed after %d attempt(s): %s", escape(row.identity_id), flight.attempt, escape(row.error))

    def _driver_row(self, flight: _Flight, error: str) -> ResultRow:
        assert flight.item is not None
        return self.failed(flight.item, error, time.monotonic() - flight.submitted,
                           placement=flight.slot.describe(), job_key=self.job_key)

    def _probe(self, slot: ActorSlot) -> None:
        """Take `slot` out of rotation until its `ready()` answers."""
        if slot in self.healthy:
            self.healthy.remove(slot)
            self.in_flight[submit_ready(slot)] = _Flight(slot, "probe")

    def _settle_probe(self, ref: ray.ObjectRef, slot: ActorSlot) -> None:
        try:
            slot.placement = ray.get(ref)
            self.healthy.append(slot)
            log.info("%s is back after a restart", slot.name)
            return
        except RayError as exc:
            log.warning("%s is gone for good: %s", slot.name, describe_exception(exc))
        stop_worker(slot)
        if self.replacements_left > 0:
            self.replacements_left -= 1
            fresh = self.spawn(self.replacements_left)
            self.in_flight[submit_ready(fresh)] = _Flight(fresh, "probe")

    def _enforce_timeout(self) -> None:
        limit = self.job.item_timeout_s
        if limit is None:
            return
        now = time.monotonic()
        running: dict[str, _Flight] = {}
        for f in self.in_flight.values():  # dict order = submission order: the first per slot is running
            if f.kind == "item" and f.slot.name not in running:
                running[f.slot.name] = f
        for f in running.values():
            started = max(f.submitted, self.last_settled.get(f.slot.name, 0.0))
            if not f.timed_out and now - started > limit:
                assert f.item is not None
                log.warning("%s exceeded %.0f s on %s; restarting the actor", escape(f.item.identity_id), limit,
                            f.slot.name)
                f.timed_out = True
                interrupt_worker(f.slot)

    def _report(self) -> None:
        self.counts.running = sum(1 for f in self.in_flight.values() if f.kind == "item")
        self.counts.queued = len(self.todo)
        if self.progress is not None:
            self.progress.update(self.counts)
