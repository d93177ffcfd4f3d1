"""One-shot "I"-statement rewrite."""

from __future__ import annotations

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from coach.api.problems import Problem, problem_responses
from coach.api.schemas import RewriteOut, RewriteParts, RewriteRequest, TemplateOut
from coach.api.sessions import check_text
from coach.api.views import safety_out
from coach.catalog import Catalog
from coach.conversation import Coach, SafetyUnavailable
from coach.helpmessages import help_message, safety_info
from coach.model import OFFLINE_MODEL
from coach.records import Couple
from coach.rewrite import rewrite_i_statement
from coach.settings import Settings


@post(
    "/v1/rewrite",
    status_code=200,
    tags=["rewrite"],
    security=[{"bearer": []}],
    summary='Rewrite a blaming sentence as an "I" statement',
    responses=problem_responses(401, 404, 413),
)
async def rewrite(
    data: JSONBody[RewriteRequest],
    couple: NamedDependency[Couple],
    coach: NamedDependency[Coach],
    catalog: NamedDependency[Catalog],
    settings: NamedDependency[Settings],
) -> RewriteOut:
    text = check_text(data.text, settings)
    try:
        verdict = await coach.check_inbound(text, couple.country)
    except SafetyUnavailable:
        raise Problem("safety-unavailable", headers={"Retry-After": "5"}) from None
    template = catalog.rewrite
    ref = TemplateOut(template.id, template.version)
    if verdict.is_disclosure:
        # Never coach the wording of a message that describes harm.
        help_msg = help_message(catalog, verdict, couple.country)
        return RewriteOut(
            rewrite=None,
            parts=None,
            model=OFFLINE_MODEL,
            template=TemplateOut(help_msg.template.id, help_msg.template.version),
            safety=safety_out(help_msg.safety),
            offline=True,
            help=help_msg.text,
        )
    if not coach.gate.servable(template):
        # Like an unapproved exercise: nothing a counselor has not approved reaches a couple
        # or the model (a disclosure above still gets its help message).
        raise Problem("not-approved", "The rewrite is not available until a counselor approves its text.")
    result = await rewrite_i_statement(
        text, catalog=catalog, model=coach.model, deadline_seconds=settings.turn_deadline
    )
    out_text, parts = result.text, result.parts
    reply_verdict = coach.scan_reply(out_text, after_disclosure=False)
    if reply_verdict is None or reply_verdict.is_disclosure:
        out_text, parts = catalog.render(template, {}, "scaffold"), None
    return RewriteOut(
        rewrite=out_text,
        parts=RewriteParts(parts.feeling, parts.situation, parts.need, parts.request) if parts else None,
        model=result.model if parts else OFFLINE_MODEL,
        template=ref,
        safety=safety_out(safety_info(verdict, couple.country)),
        offline=parts is None,
        draft=coach.gate.is_draft(template),
    )
