"""Which template versions counselors approved, and so which ones the coach may serve.

Approvals are pinned to a template's content hash (its version): changing the text makes
a new, unapproved draft. The committed file ``prompts/approvals.yaml`` is the catalog a
deployment starts with; approvals made in the console are recorded in Redis and added at
run time (see docs/review.md).

The gate's checks (``is_draft``, ``servable``, ``servable_exercises``) are synchronous and
read in-memory sets. ``refresh()`` brings those sets up to date with the review records in
Redis: at most once every ``refresh_interval`` seconds it reads one counter (the approvals
generation, incremented with every decision); only when the counter moved does it read the
decisions and rebuild. The app calls ``before_request`` (a Litestar ``before_request``
hook) so every worker process follows decisions made on any other one within
``refresh_interval`` seconds, without a Redis round trip per message. A request waits at
most ``REFRESH_WAIT`` seconds for that read: on a Redis that stopped answering (the
redis_stall drill) the read goes on in the background and the request uses the last known
approvals, as after a failed read. Liveness and readiness (``/healthz``, ``/readyz``) never
wait for it: whether the process answers must not depend on Redis.

Help messages are always served (withholding help is worse than an unreviewed text),
but an unapproved one is marked draft like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import msgspec
import yaml

from coach.catalog import Catalog, Exercise, Template

APPROVALS_FILE = "approvals.yaml"
DECISIONS = ("approved", "changes_requested", "retired")
REFRESH_INTERVAL = 1.0
#: how long a request waits for a due refresh before going on with the last known approvals
REFRESH_WAIT = 0.25
#: paths that serve no template and must answer whatever Redis does
NO_REFRESH_PATHS = frozenset({"/healthz", "/readyz"})

log = logging.getLogger("coach.approvals")
_clock = time.monotonic  # the refresh interval's clock (tests move it by hand)


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    template: str
    version: str
    decision: str  # "approved" | "changes_requested" | "retired"
    by: str
    at: str
    comment: str = ""


class ApprovalSource(Protocol):
    """Where run-time decisions live (Redis: ``coach.reviews.ReviewStore``)."""

    async def generation(self) -> int: ...

    async def decisions(self) -> list[Approval]: ...


def load_approvals(prompts_dir: Path) -> list[Approval]:
    path = prompts_dir / APPROVALS_FILE
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return msgspec.convert(raw.get("approvals", None) or [], list[Approval])


class ApprovalGate:
    def __init__(
        self,
        approvals: list[Approval],
        *,
        allow_drafts: bool,
        source: ApprovalSource | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self.allow_drafts = allow_drafts
        self.committed = list(approvals)
        self.source = source
        self.refresh_interval = refresh_interval
        self.approved: set[tuple[str, str]] = set()
        self.retired: set[tuple[str, str]] = set()
        self.generation = -1  # the source's generation these sets reflect (-1: never read)
        self._checked_at = float("-inf")
        self._refreshing: asyncio.Task[bool] | None = None
        self._rebuild([])

    # -- state ----------------------------------------------------------------------
    def record(self, approval: Approval) -> None:
        key = (approval.template, approval.version)
        if approval.decision == "approved":
            self.approved.add(key)
            self.retired.discard(key)
        elif approval.decision == "retired":
            self.approved.discard(key)
            self.retired.add(key)
        else:
            self.approved.discard(key)

    def _rebuild(self, decisions: Iterable[Approval]) -> None:
        """The committed file first, then the run-time decisions in the order they were made."""
        approved: set[tuple[str, str]] = set()
        retired: set[tuple[str, str]] = set()
        self.approved, self.retired = approved, retired
        for approval in [*self.committed, *decisions]:
            self.record(approval)

    async def refresh(self, *, force: bool = False) -> bool:
        """Follow the decisions in the source; True when the sets changed.

        Reads one counter at most every ``refresh_interval`` seconds (always when
        ``force``); reads the decisions only when the counter moved. A store error keeps
        the last known state (logged), so a Redis hiccup never serves an unapproved text.
        """
        if self.source is None:
            return False
        now = _clock()
        if not force and now - self._checked_at < self.refresh_interval:
            return False
        self._checked_at = now
        try:
            generation = await self.source.generation()
            if generation == self.generation:
                return False
            decisions = await self.source.decisions()
        except Exception as exc:
            log.warning("approvals refresh failed (%s); keeping the last known approvals", exc)
            return False
        self._rebuild(decisions)
        self.generation = generation
        return True

    async def before_request(self, request: Any) -> None:
        """Litestar ``before_request`` hook: keep this worker's approvals current, waiting
        at most :data:`REFRESH_WAIT` seconds for a due refresh (see the module doc)."""
        if self.source is None or request.url.path in NO_REFRESH_PATHS:
            return
        task = self._refreshing
        if task is None or task.done():
            if _clock() - self._checked_at < self.refresh_interval:
                return
            task = self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        await asyncio.wait({task}, timeout=REFRESH_WAIT)

    # -- checks (sync) --------------------------------------------------------------------
    def status(self, template: Template) -> str:
        """ "approved", "retired" or "draft" for the template's current text."""
        key = (template.id, template.version)
        if key in self.approved:
            return "approved"
        if key in self.retired:
            return "retired"
        return "draft"

    def is_approved(self, template: Template) -> bool:
        return (template.id, template.version) in self.approved

    def is_draft(self, template: Template) -> bool:
        return not self.is_approved(template)

    def servable(self, template: Template) -> bool:
        return self.is_approved(template) or self.allow_drafts

    def servable_exercises(self, catalog: Catalog) -> dict[str, Exercise]:
        if not self.servable(catalog.system):
            return {}
        return {
            eid: ex
            for eid, ex in catalog.exercises.items()
            if all(self.servable(step.template) for step in ex.steps)
        }
