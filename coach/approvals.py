"""Which template versions counselors approved, and so which ones the coach may serve.

Approvals are pinned to a template's content hash (its version): changing the text makes
a new, unapproved draft. The committed file ``prompts/approvals.yaml`` is the catalog a
deployment starts with; approvals made in the console are added at run time.
Help messages are always served (withholding help is worse than an unreviewed text),
but an unapproved one is marked draft like any other.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from coach.catalog import Catalog, Exercise, Template

APPROVALS_FILE = "approvals.yaml"


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    template: str
    version: str
    decision: str  # "approved" | "changes_requested" | "retired"
    by: str
    at: str
    comment: str = ""


def load_approvals(prompts_dir: Path) -> list[Approval]:
    path = prompts_dir / APPROVALS_FILE
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return msgspec.convert(raw.get("approvals", []), list[Approval])


class ApprovalGate:
    def __init__(self, approvals: list[Approval], *, allow_drafts: bool) -> None:
        self.allow_drafts = allow_drafts
        self.approved: set[tuple[str, str]] = set()
        self.retired: set[tuple[str, str]] = set()
        for approval in approvals:
            self.record(approval)

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
