"""The counselor review API under /v1/review and the console page at /console.

Counselor tokens only (``coach counselor add``); a partner token gets 403. Roles:
``counselor`` reviews, ``admin`` also manages counselors and reads the audit log.
Every decision and every account change is appended to the audit log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from msgspec import Meta

from coach.api.auth import bearer_token
from coach.api.problems import Problem, problem_responses
from coach.approvals import ApprovalGate, load_approvals
from coach.catalog import Catalog, Exercise, Template
from coach.helpmessages import help_message, safety_info
from coach.model import ChatMessage, ModelRequest, ResilientClient
from coach.reviews import (
    AuditEntry,
    Counselor,
    ReviewRecord,
    ReviewStore,
    diff,
    effective_approvals,
    reviewed_text,
)
from coach.settings import Settings
from coach.store import Store
from safety import Severity, country_name, scan

COUNTRIES = ("US", "GB", "CA", "AU", "IE", "NZ", "DE", "IN", "INTL")
SAMPLE_MESSAGE = "I want us to talk more, but I never know how to start."
STATIC = Path(__file__).resolve().parent.parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

TemplateId = Annotated[str, Meta(max_length=120)]


# ---------------------------------------------------------------------------- bodies


class Me(msgspec.Struct):
    id: str
    name: str
    role: str


class Counts(msgspec.Struct):
    replies: int
    replaced: int


class TemplateSummary(msgspec.Struct):
    id: str
    version: str
    status: str  # approved | draft | retired
    served: bool
    kind: str  # system | step | rewrite | classifier | help
    exercise: str | None
    description: str
    source: str


class TemplateList(msgspec.Struct):
    templates: list[TemplateSummary]
    allow_drafts: bool


class ExamplePreview(msgspec.Struct):
    index: int
    context: dict[str, Any]
    rendered: str
    scripted: str | None  # what the offline client would reply
    fields: dict[str, str]  # every other reviewed field, rendered


class Segment(msgspec.Struct):
    text: str
    variable: bool


class DiffOut(msgspec.Struct):
    against: str | None  # the last approved version, when its text is in the records
    lines: list[str]
    note: str


class TemplateDetail(msgspec.Struct):
    template: TemplateSummary
    variables: list[str]
    text: str
    segments: list[Segment]
    extra: dict[str, str]
    previews: list[ExamplePreview]
    diff: DiffOut
    counts: Counts
    history: list[ReviewRecord]


class PreviewIn(msgspec.Struct):
    example: Annotated[int, Meta(ge=0)] = 0
    message: Annotated[str, Meta(min_length=1, max_length=2000)] = SAMPLE_MESSAGE


class PreviewOut(msgspec.Struct):
    example: int
    rendered: str
    scripted: str | None
    model_configured: bool
    model: str | None
    model_reply: str | None
    fallback: bool
    note: str


class DecisionIn(msgspec.Struct):
    version: Annotated[str, Meta(min_length=1, max_length=64)]
    decision: Literal["approved", "changes_requested", "retired"]
    comment: Annotated[str, Meta(max_length=4000)] = ""


class DecisionOut(msgspec.Struct):
    record: ReviewRecord
    status: str
    served: bool


class History(msgspec.Struct):
    records: list[ReviewRecord]


class ApprovalOut(msgspec.Struct):
    template: str
    version: str
    decision: str
    by: str
    at: str
    comment: str


class ApprovalList(msgspec.Struct):
    approvals: list[ApprovalOut]


class SafetyIn(msgspec.Struct):
    text: Annotated[str, Meta(min_length=1, max_length=8000)]
    countries: list[str] | None = None


class SignalOut(msgspec.Struct):
    id: str
    category: str
    severity: str
    start: int
    end: int
    text: str


class CountryHelp(msgspec.Struct):
    country: str
    country_name: str
    template: str | None
    version: str | None
    status: str | None
    text: str | None
    resources: list[dict[str, str | None]]
    note: str


class SafetyOut(msgspec.Struct):
    severity: str
    categories: list[str]
    policy_version: str
    signals: list[SignalOut]
    help: list[CountryHelp]


class CounselorIn(msgspec.Struct):
    name: Annotated[str, Meta(min_length=1, max_length=80)]
    role: Literal["counselor", "admin"] = "counselor"


class CounselorOut(msgspec.Struct):
    id: str
    name: str
    role: str
    created_at: str
    disabled: bool


class CounselorCreated(msgspec.Struct):
    counselor: CounselorOut
    token: str  # shown once


class CounselorList(msgspec.Struct):
    counselors: list[CounselorOut]


class AuditLog(msgspec.Struct):
    entries: list[AuditEntry]


# ---------------------------------------------------------------------------- access


async def current_counselor(request: Request[Any, Any, Any], store: NamedDependency[Store]) -> Counselor:
    token = bearer_token(request)
    if token is None:
        raise Problem(
            "unauthorized",
            "Send Authorization: Bearer <counselor token>.",
            headers={"WWW-Authenticate": 'Bearer realm="coach-review"'},
        )
    counselor = await ReviewStore(store).counselor_by_token(token)
    if counselor is None:
        if await store.partner_by_token(token) is not None:
            raise Problem("forbidden", "Partner tokens cannot use the review API.")
        raise Problem(
            "unauthorized",
            "This counselor token is not valid.",
            headers={"WWW-Authenticate": 'Bearer realm="coach-review", error="invalid_token"'},
        )
    if counselor.disabled:
        raise Problem("unauthorized", "This counselor account is disabled.")
    return counselor


async def current_admin(counselor: NamedDependency[Counselor]) -> Counselor:
    if counselor.role != "admin":
        raise Problem("forbidden", "Only an admin may do this.")
    return counselor


def reviews_of(store: NamedDependency[Store]) -> ReviewStore:
    return ReviewStore(store)


# ---------------------------------------------------------------------------- helpers


def kind_of(catalog: Catalog, template: Template) -> tuple[str, Exercise | None]:
    if template.id == catalog.system.id:
        return "system", None
    if template.id == catalog.rewrite.id:
        return "rewrite", None
    if template.id == catalog.classifier.id:
        return "classifier", None
    if template.id in catalog.help:
        return "help", None
    for exercise in catalog.exercises.values():
        if any(step.template.id == template.id for step in exercise.steps):
            return "step", exercise
    return "other", None


def summary(catalog: Catalog, gate: ApprovalGate, template: Template) -> TemplateSummary:
    kind, exercise = kind_of(catalog, template)
    return TemplateSummary(
        id=template.id,
        version=template.version,
        status=gate.status(template),
        served=gate.servable(template) or kind == "help",
        kind=kind,
        exercise=exercise.id if exercise else None,
        description=template.description,
        source=template.source,
    )


def find_template(catalog: Catalog, template_id: str) -> Template:
    try:
        return catalog.template(template_id)
    except KeyError:
        raise Problem("not-found", f"No template {template_id!r}.") from None


def segments(text: str) -> list[Segment]:
    """The text cut into plain parts and jinja parts ({{ }}, {% %}, {# #}), for highlighting."""
    out: list[Segment] = []
    rest = text
    while rest:
        starts = [i for i in (rest.find("{{"), rest.find("{%"), rest.find("{#")) if i >= 0]
        if not starts:
            out.append(Segment(rest, False))
            break
        start = min(starts)
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[rest[start : start + 2]]
        end = rest.find(closer, start + 2)
        end = len(rest) if end < 0 else end + 2
        if start:
            out.append(Segment(rest[:start], False))
        out.append(Segment(rest[start:end], True))
        rest = rest[end:]
    return out


def previews(catalog: Catalog, template: Template) -> list[ExamplePreview]:
    out = []
    for index, example in enumerate(template.examples):
        context = dict(example)
        rendered = catalog.render(template, context)
        fields: dict[str, str] = {}
        for field in template.extra:
            try:
                fields[field] = catalog.render(template, context, field)
            except Exception as exc:  # a field the example does not cover: show why
                fields[field] = f"(does not render with this example: {exc})"
        out.append(
            ExamplePreview(
                index=index,
                context=context,
                rendered=rendered,
                scripted=fields.get("scripted"),
                fields={k: v for k, v in fields.items() if k != "scripted"},
            )
        )
    return out


def model_messages(
    catalog: Catalog, template: Template, context: dict[str, Any], message: str
) -> list[ChatMessage]:
    """What the coach would send the model for this template and example."""
    kind, exercise = kind_of(catalog, template)
    rendered = catalog.render(template, context)
    if kind == "step" and exercise is not None:
        partners = 2 if context.get("together") else 1
        system = catalog.render(catalog.system, catalog.system_context(exercise, partner_count=partners))
        return [
            {"role": "system", "content": system},
            {"role": "system", "content": rendered},
            {"role": "user", "content": message},
        ]
    return [{"role": "system", "content": rendered}, {"role": "user", "content": message}]


async def diff_for(reviews: ReviewStore, template: Template, history: list[ReviewRecord]) -> DiffOut:
    approved = [r for r in history if r.decision == "approved"]
    if not approved:
        return DiffOut(None, [], "No version of this template has been approved in the console yet.")
    last = approved[-1]
    if last.version == template.version:
        return DiffOut(last.version, [], "This version is the last approved one: nothing changed.")
    old = await reviews.reviewed(template.id, last.version)
    if old is None:
        return DiffOut(None, [], f"The text of {last.version} is not in the review records.")
    lines = diff(
        old,
        reviewed_text(template),
        f"{template.id}@{last.version} (approved)",
        f"{template.id}@{template.version}",
    )
    return DiffOut(last.version, lines, f"Changes since the last approved version {last.version}.")


def counselor_out(c: Counselor) -> CounselorOut:
    return CounselorOut(id=c.id, name=c.name, role=c.role, created_at=c.created_at, disabled=c.disabled)


# ---------------------------------------------------------------------------- the API


class ReviewController(Controller):
    path = "/v1/review"
    tags = ["review"]
    security = [{"bearer": []}]
    dependencies = {
        "counselor": Provide(current_counselor),
        "admin": Provide(current_admin),
        "reviews": Provide(reviews_of, sync_to_thread=False),
    }

    @get(
        "/me", summary="The counselor this token belongs to", responses=problem_responses(401, 403, 404, 409)
    )
    async def me(self, counselor: NamedDependency[Counselor]) -> Me:
        return Me(counselor.id, counselor.name, counselor.role)

    @get(
        "/templates",
        summary="Every template with its review status",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def list_templates(
        self,
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        gate: NamedDependency[ApprovalGate],
    ) -> TemplateList:
        return TemplateList(
            templates=[summary(catalog, gate, t) for t in catalog.templates()],
            allow_drafts=gate.allow_drafts,
        )

    @get(
        "/templates/{template_id:str}",
        summary="One template: text, previews, diff, counts, history",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def show_template(
        self,
        template_id: FromPath[TemplateId],
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        gate: NamedDependency[ApprovalGate],
        store: NamedDependency[Store],
        reviews: NamedDependency[ReviewStore],
    ) -> TemplateDetail:
        template = find_template(catalog, template_id)
        history = await reviews.records(template.id)
        replies, replaced = await store.reply_counts(template.id, template.version)
        return TemplateDetail(
            template=summary(catalog, gate, template),
            variables=list(template.variables),
            text=template.text,
            segments=segments(template.text),
            extra=dict(template.extra),
            previews=previews(catalog, template),
            diff=await diff_for(reviews, template, history),
            counts=Counts(replies, replaced),
            history=history,
        )

    @post(
        "/templates/{template_id:str}/preview",
        status_code=200,
        summary="Render one example and ask the configured model what it would reply",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def preview(
        self,
        template_id: FromPath[TemplateId],
        data: JSONBody[PreviewIn],
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        model: NamedDependency[ResilientClient],
        settings: NamedDependency[Settings],
    ) -> PreviewOut:
        template = find_template(catalog, template_id)
        if data.example >= len(template.examples):
            raise Problem("not-found", f"{template.id} has {len(template.examples)} examples.")
        context = dict(template.examples[data.example])
        rendered = catalog.render(template, context)
        scripted = catalog.render(template, context, "scripted") if "scripted" in template.extra else None
        kind, _ = kind_of(catalog, template)
        configured = model.primary is not None
        out = PreviewOut(
            example=data.example,
            rendered=rendered,
            scripted=scripted,
            model_configured=configured,
            model=None,
            model_reply=None,
            fallback=False,
            note="",
        )
        if kind == "help":
            return msgspec.structs.replace(
                out, note="Help messages are shown as they are; no model is asked."
            )
        if not configured:
            return msgspec.structs.replace(
                out, note="No model API is configured: the coach answers with the scripted line."
            )
        request = ModelRequest(
            messages=tuple(model_messages(catalog, template, context, data.message)),
            scripted=scripted or "",
        )
        reply = await model.complete(request, deadline=time.monotonic() + settings.turn_deadline)
        return msgspec.structs.replace(
            out,
            model=reply.model,
            model_reply=reply.text,
            fallback=reply.fallback,
            note="The model failed: this is the offline fallback." if reply.fallback else "",
        )

    @post(
        "/templates/{template_id:str}/decisions",
        status_code=HTTP_201_CREATED,
        summary="Approve, request changes to, or retire the current version",
        description=(
            "`version` must be the template's current content hash: a decision is pinned to "
            "the text the counselor read (409 when the text changed since)."
        ),
        responses=problem_responses(401, 403, 404, 409),
    )
    async def decide(
        self,
        template_id: FromPath[TemplateId],
        data: JSONBody[DecisionIn],
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        gate: NamedDependency[ApprovalGate],
        reviews: NamedDependency[ReviewStore],
    ) -> DecisionOut:
        template = find_template(catalog, template_id)
        if data.version != template.version:
            raise Problem(
                "conflict",
                f"{template.id} is now version {template.version}, not {data.version}: "
                "read the current text before deciding.",
                current_version=template.version,
            )
        comment = data.comment.strip()
        if data.decision == "changes_requested" and not comment:
            raise Problem("validation", "Say what should change: a comment is required.")
        record = await reviews.decide(counselor, template, data.decision, comment)
        await gate.refresh(force=True)
        return DecisionOut(record=record, status=gate.status(template), served=gate.servable(template))

    @get(
        "/templates/{template_id:str}/history",
        summary="Every decision on this template",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def history(
        self,
        template_id: FromPath[TemplateId],
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        reviews: NamedDependency[ReviewStore],
    ) -> History:
        template = find_template(catalog, template_id)
        return History(records=await reviews.records(template.id))

    @get(
        "/records",
        summary="Export every review record (who, when, decision, comment, hash)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def records(
        self, counselor: NamedDependency[Counselor], reviews: NamedDependency[ReviewStore]
    ) -> History:
        return History(records=await reviews.records())

    @get(
        "/approvals",
        summary="The approvals for the current texts (prompts/approvals.yaml format)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def approvals(
        self,
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        reviews: NamedDependency[ReviewStore],
    ) -> ApprovalList:
        found = effective_approvals(
            catalog.templates(), load_approvals(catalog.prompts_dir), await reviews.decisions()
        )
        return ApprovalList(approvals=[ApprovalOut(**msgspec.structs.asdict(a)) for a in found])

    @post(
        "/safety",
        status_code=200,
        summary="The safety tester: verdict, signals and help by country",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def safety_test(
        self,
        data: JSONBody[SafetyIn],
        counselor: NamedDependency[Counselor],
        catalog: NamedDependency[Catalog],
        gate: NamedDependency[ApprovalGate],
    ) -> SafetyOut:
        verdict = scan(data.text)
        countries = [c.upper() for c in (data.countries or list(COUNTRIES))]
        helps: list[CountryHelp] = []
        for country in countries:
            resources = safety_info(verdict, country).resources
            if verdict.severity.rank < Severity.CONCERN.rank:
                helps.append(
                    CountryHelp(
                        country,
                        country_name(country),
                        None,
                        None,
                        None,
                        None,
                        resources,
                        "No help message: the message has no concern signals.",
                    )
                )
                continue
            try:
                msg = help_message(catalog, verdict, country)
            except KeyError as exc:
                helps.append(
                    CountryHelp(
                        country,
                        country_name(country),
                        None,
                        None,
                        None,
                        None,
                        resources,
                        f"prompts/help has no message {exc} for this verdict.",
                    )
                )
                continue
            template = catalog.template(msg.template.id)
            helps.append(
                CountryHelp(
                    country,
                    country_name(country),
                    template.id,
                    template.version,
                    gate.status(template),
                    msg.text,
                    msg.safety.resources,
                    "",
                )
            )
        return SafetyOut(
            severity=verdict.severity.value,
            categories=list(verdict.categories),
            policy_version=verdict.policy_version,
            signals=[
                SignalOut(s.id, s.category, s.severity.value, s.start, s.end, s.text) for s in verdict.signals
            ],
            help=helps,
        )

    # -- admin ------------------------------------------------------------------------
    @get(
        "/counselors",
        summary="Every counselor account (admin)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def list_counselors(
        self, admin: NamedDependency[Counselor], reviews: NamedDependency[ReviewStore]
    ) -> CounselorList:
        return CounselorList(counselors=[counselor_out(c) for c in await reviews.list_counselors()])

    @post(
        "/counselors",
        status_code=HTTP_201_CREATED,
        summary="Add a counselor; the token is shown once (admin)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def add_counselor(
        self,
        data: JSONBody[CounselorIn],
        admin: NamedDependency[Counselor],
        reviews: NamedDependency[ReviewStore],
    ) -> CounselorCreated:
        counselor, token = await reviews.add_counselor(data.name.strip(), data.role)
        detail = {"name": counselor.name, "role": counselor.role}
        await reviews.audit(admin, "counselor.add", counselor.id, detail)
        return CounselorCreated(counselor=counselor_out(counselor), token=token)

    @post(
        "/counselors/{counselor_id:str}/disable",
        status_code=200,
        summary="Disable a counselor (admin)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def disable_counselor(
        self,
        counselor_id: FromPath[Annotated[str, Meta(max_length=64)]],
        admin: NamedDependency[Counselor],
        reviews: NamedDependency[ReviewStore],
    ) -> CounselorOut:
        counselor = await reviews.disable_counselor(counselor_id)
        if counselor is None:
            raise Problem("not-found", f"No counselor {counselor_id!r}.")
        await reviews.audit(admin, "counselor.disable", counselor.id, {"name": counselor.name})
        return counselor_out(counselor)

    @get(
        "/audit",
        summary="The audit log of every review action, oldest first (admin)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def audit(
        self,
        admin: NamedDependency[Counselor],
        reviews: NamedDependency[ReviewStore],
        after: Annotated[str, QueryParameter(pattern=r"^(-|\d{1,20}(-\d{1,20})?)$")] = "-",
    ) -> AuditLog:
        return AuditLog(entries=await reviews.audit_log(after))


# ---------------------------------------------------------------------------- the console


def _static(name: str, media_type: str) -> Response[bytes]:
    return Response(
        content=(STATIC / name).read_bytes(),
        media_type=media_type,
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


@get("/console", include_in_schema=False, sync_to_thread=False)
def console_page() -> Response[bytes]:
    return _static("console.html", "text/html; charset=utf-8")


@get("/console/console.js", include_in_schema=False, sync_to_thread=False)
def console_script() -> Response[bytes]:
    return _static("console.js", "text/javascript; charset=utf-8")


@get("/console/console.css", include_in_schema=False, sync_to_thread=False)
def console_style() -> Response[bytes]:
    return _static("console.css", "text/css; charset=utf-8")


ROUTES: list[Any] = [ReviewController, console_page, console_script, console_style]
