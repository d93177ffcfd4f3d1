"""``coach templates …`` and ``coach counselor …``: the review side of the command line.

- ``coach templates check [--strict]``: every template renders each of its examples (every
  field); no approval in prompts/approvals.yaml is stale (its template is gone or its text
  changed since); with ``--strict`` every template has an approval for its current text.
- ``coach templates export-approvals [-o FILE]``: write the approvals for the current texts
  (prompts/approvals.yaml, plus decisions made in the console, read from COACH_REDIS_URL).
- ``coach counselor add NAME [--role admin]`` / ``list`` / ``disable ID``: accounts, kept in
  the store at COACH_REDIS_URL; a new token is printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import msgspec
import redis.asyncio as aioredis
import yaml

from coach.approvals import APPROVALS_FILE, Approval, load_approvals
from coach.catalog import Catalog, CatalogError, Template, load_catalog
from coach.reviews import ReviewStore, effective_approvals
from coach.settings import Settings
from coach.store import Store

T = TypeVar("T")

NEEDS_STORE = (
    "Counselor accounts and review records need a persistent store: set COACH_REDIS_URL "
    "to the coach's Redis (without it the coach runs on an in-process store that forgets "
    "everything when it stops)."
)

APPROVALS_HEADER = """\
# Counselor approvals of the texts in this folder, pinned to each template's content hash.
# A deployment serves exactly these versions (with COACH_ALLOW_DRAFT_TEMPLATES=false).
# Written by `coach templates export-approvals`; checked by `coach templates check`.
# Never edit a hash by hand: changing a text makes a new version that needs a new review.
"""


# ---------------------------------------------------------------------------- check


class Row(msgspec.Struct):
    template: str
    version: str
    approval: str
    examples: str
    result: str


def render_failures(catalog: Catalog, template: Template) -> list[str]:
    """Every (example, field) of the template that does not render, with the reason."""
    failures = []
    if not template.examples:
        failures.append("no examples")
    for index, example in enumerate(template.examples, start=1):
        for field in ("text", *template.extra):
            try:
                catalog.render(template, example, field)
            except Exception as exc:
                failures.append(f"example {index} {field}: {type(exc).__name__}: {exc}")
    return failures


def check(prompts_dir: Path, *, strict: bool, out: TextIO) -> int:
    try:
        catalog = load_catalog(prompts_dir)
    except CatalogError as exc:
        out.write(f"FAIL the catalog does not load (a text or an example does not render?):\n  {exc}\n")
        return 1
    try:
        approvals = load_approvals(prompts_dir)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        out.write(f"FAIL {APPROVALS_FILE} is not valid: {exc}\n")
        return 1
    templates = catalog.templates()
    current = {t.id: t.version for t in templates}
    approved = [a for a in approvals if a.decision == "approved"]
    by_template: dict[str, list[Approval]] = {}
    for approval in approved:
        by_template.setdefault(approval.template, []).append(approval)

    rows: list[Row] = []
    problems: list[str] = []
    drafts = 0
    for template in templates:
        failures = render_failures(catalog, template)
        n = len(template.examples)
        examples = f"{n}/{n} ok" if not failures else f"{len(failures)} FAIL"
        mine = by_template.get(template.id, [])
        good = [a for a in mine if a.version == template.version]
        stale = [a for a in mine if a.version != template.version]
        result = "ok"
        if good:
            state = f"approved by {good[-1].by} {good[-1].at[:10]}"
        else:
            state = "none (draft)"
            drafts += 1
            result = "FAIL" if strict else "draft"
            if strict:
                problems.append(f"{template.id}@{template.version}: no approval for the current text")
        for entry in stale:
            state = f"STALE: {entry.version} approved, text changed"
            result = "FAIL"
            problems.append(
                f"{template.id}: {APPROVALS_FILE} approves {entry.version}, but the text is now "
                f"{template.version} (changed without review)"
            )
        for failure in failures:
            result = "FAIL"
            problems.append(f"{template.id}@{template.version}: {failure}")
        rows.append(Row(template.id, template.version, state, examples, result))
    for approval in approved:
        if approval.template not in current:
            rows.append(
                Row(approval.template, approval.version, "STALE: template no longer exists", "-", "FAIL")
            )
            problems.append(
                f"{approval.template}: {APPROVALS_FILE} approves a template that no longer exists"
            )

    _table(rows, out)
    total = len(templates)
    out.write(
        f"\n{total} templates: {total - drafts} approved for their current text, {drafts} without "
        f"approval (drafts: not served when COACH_ALLOW_DRAFT_TEMPLATES=false; help messages are "
        f"served, marked draft).\n"
    )
    if not approvals:
        out.write(f"{APPROVALS_FILE} lists no approvals yet: nobody has reviewed these texts.\n")
    if problems:
        out.write(f"\nFAIL ({len(problems)} problems{', strict' if strict else ''}):\n")
        for problem in problems:
            out.write(f"  - {problem}\n")
        return 1
    out.write("OK" + (" (strict: every template is approved)\n" if strict else "\n"))
    return 0


def _table(rows: list[Row], out: TextIO) -> None:
    headers = ("TEMPLATE", "VERSION", "APPROVAL", "EXAMPLES", "RESULT")
    cells = [headers, *[(r.template, r.version, r.approval, r.examples, r.result) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


# ---------------------------------------------------------------------------- store access


def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    assert settings.redis_url

    async def run() -> T:
        client: aioredis.Redis = aioredis.from_url(settings.redis_url or "", decode_responses=True)
        try:
            return await fn(Store(client, retention_seconds=settings.retention_days * 86400))
        finally:
            await client.aclose()

    return asyncio.run(run())


def export_approvals(settings: Settings, prompts_dir: Path, output: Path, out: TextIO) -> int:
    catalog = load_catalog(prompts_dir)

    async def decisions(store: Store) -> list[Approval]:
        return await ReviewStore(store).decisions()

    found = effective_approvals(
        catalog.templates(), load_approvals(prompts_dir), _with_store(settings, decisions)
    )
    body: dict[str, Any] = {"approvals": [msgspec.to_builtins(a) for a in found]}
    text = APPROVALS_HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
    output.write_text(text, encoding="utf-8")
    missing = len(catalog.templates()) - len(found)
    out.write(f"wrote {len(found)} approvals to {output}; {missing} templates have no approval\n")
    return 0


def add_counselor(settings: Settings, name: str, role: str, out: TextIO) -> int:
    async def add(store: Store) -> tuple[str, str]:
        reviews = ReviewStore(store)
        counselor, token = await reviews.add_counselor(name, "admin" if role == "admin" else "counselor")
        await reviews.audit(None, "counselor.add", counselor.id, {"name": name, "role": counselor.role})
        return counselor.id, token

    counselor_id, token = _with_store(settings, add)
    out.write(
        f"added {role} {name!r} ({counselor_id}).\n"
        f"token (shown once, store it now; it cannot be shown again):\n{token}\n"
    )
    return 0


def list_counselors(settings: Settings, out: TextIO) -> int:
    async def listing(store: Store) -> list[Any]:
        return list(await ReviewStore(store).list_counselors())

    for c in _with_store(settings, listing):
        out.write(f"{c.id}  {c.role:<9}  {'disabled' if c.disabled else 'active  '}  {c.name}\n")
    return 0


def disable_counselor(settings: Settings, counselor_id: str, out: TextIO) -> int:
    async def disable(store: Store) -> bool:
        reviews = ReviewStore(store)
        found = await reviews.disable_counselor(counselor_id)
        if found is not None:
            await reviews.audit(None, "counselor.disable", counselor_id, {"name": found.name})
        return found is not None

    if not _with_store(settings, disable):
        out.write(f"no counselor {counselor_id}\n")
        return 1
    out.write(f"disabled {counselor_id}\n")
    return 0


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coach", description="Template review and counselor accounts.")
    sub = parser.add_subparsers(dest="group", required=True)
    templates = sub.add_parser("templates", help="check or export approvals")
    tsub = templates.add_subparsers(dest="command", required=True)
    chk = tsub.add_parser("check", help="every template renders; no stale approval (--strict: all approved)")
    chk.add_argument("--strict", action="store_true", help="fail when any template lacks an approval")
    chk.add_argument("--prompts-dir", type=Path)
    exp = tsub.add_parser("export-approvals", help="write the store's approvals to prompts/approvals.yaml")
    exp.add_argument("--prompts-dir", type=Path)
    exp.add_argument("--output", "-o", type=Path)
    counselor = sub.add_parser("counselor", help="counselor accounts")
    csub = counselor.add_subparsers(dest="command", required=True)
    add = csub.add_parser("add", help="add a counselor; prints the token once")
    add.add_argument("name")
    add.add_argument("--role", choices=("counselor", "admin"), default="counselor")
    csub.add_parser("list", help="list counselors")
    dis = csub.add_parser("disable", help="disable a counselor")
    dis.add_argument("id")
    return parser


def main(argv: list[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    prompts_dir: Path = getattr(args, "prompts_dir", None) or settings.prompts_dir
    if args.group == "templates" and args.command == "check":
        return check(prompts_dir, strict=args.strict, out=out)
    if not settings.redis_url:
        err.write(NEEDS_STORE + "\n")
        return 2
    if args.group == "templates":
        return export_approvals(settings, prompts_dir, args.output or prompts_dir / APPROVALS_FILE, out)
    if args.command == "add":
        return add_counselor(settings, args.name, args.role, out)
    if args.command == "list":
        return list_counselors(settings, out)
    return disable_counselor(settings, args.id, out)
