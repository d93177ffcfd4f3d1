"""Choose and render the counselor-approved help message for a safety verdict."""

from __future__ import annotations

import msgspec

from coach.catalog import Catalog, Template
from coach.records import SafetyInfo, TemplateRef
from safety import Severity, Verdict, country_name, lowered_from, resources_for

# Categories with wording of their own, most specific first.
SPECIFIC = ("self_harm",)


class HelpMessage(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    template: TemplateRef
    safety: SafetyInfo


def _resources(
    country: str, severity: Severity, categories: tuple[str, ...], *, author_of_harm: bool = False
) -> list[dict[str, str | None]]:
    """The help lines for ``severity`` and ``categories`` in ``country``, as stored."""
    found = resources_for(country, severity, categories, for_author_of_harm=author_of_harm)
    return [msgspec.to_builtins(r) for r in found]


def safety_info(
    verdict: Verdict,
    country: str,
    *,
    author_of_harm: bool = False,
    resources_at: Severity | None = None,
) -> SafetyInfo:
    """What a message's verdict stores; its help lines are those of ``resources_at``
    (default: the verdict's own severity), none below ``concern``."""
    at = resources_at or verdict.severity
    resources = []
    if at.rank >= Severity.CONCERN.rank:
        resources = _resources(country, at, verdict.categories, author_of_harm=author_of_harm)
    return SafetyInfo(
        severity=verdict.severity.value,
        categories=list(verdict.categories),
        resources=resources,
        policy_version=verdict.policy_version,
    )


def choose_template(catalog: Catalog, verdict: Verdict) -> Template:
    if verdict.is_author_of_harm and "help.author_of_harm" in catalog.help:
        return catalog.help["help.author_of_harm"]
    severity = verdict.severity.value
    for category in SPECIFIC:
        key = f"help.{severity}.{category}"
        if category in verdict.leading_categories and key in catalog.help:
            return catalog.help[key]
    return catalog.help[f"help.{severity}"]


def _rendered(catalog: Catalog, template: Template, info: SafetyInfo, country: str) -> HelpMessage:
    text = catalog.render(template, {"country_name": country_name(country), "resources": info.resources})
    return HelpMessage(text=text, template=TemplateRef(template.id, template.version), safety=info)


def help_message(catalog: Catalog, verdict: Verdict, country: str) -> HelpMessage:
    info = safety_info(verdict, country, author_of_harm=verdict.is_author_of_harm)
    return _rendered(catalog, choose_template(catalog, verdict), info, country)


def _notice(catalog: Catalog, template_id: str, country: str) -> tuple[str, TemplateRef]:
    template = catalog.help[template_id]
    verdict_free: dict[str, object] = {"country_name": country_name(country), "resources": []}
    if "resources" in template.variables:
        verdict_free["resources"] = _resources(country, Severity.CONCERN, ())
    context = {name: verdict_free.get(name, "") for name in template.variables}
    return catalog.render(template, context), TemplateRef(template.id, template.version)


def paused_notice(catalog: Catalog, country: str) -> tuple[str, TemplateRef]:
    """What the other partner sees when a joint exercise pauses: reveals nothing."""
    return _notice(catalog, "help.paused", country)


def concern_notice(catalog: Catalog, country: str) -> tuple[str, TemplateRef]:
    """A gentle, private suggestion to talk to a counselor."""
    return _notice(catalog, "help.concern", country)


def held_message(catalog: Catalog, verdict: Verdict, country: str) -> HelpMessage:
    """The private check for a message the learned stage lowered (``help.held``): the
    verdict stays ``concern``, with the resources a disclosure at the lexicon's own
    severity would get (``risk``: a danger is never lowered, :func:`safety.lower`)."""
    info = safety_info(
        verdict, country, author_of_harm=verdict.is_author_of_harm, resources_at=lowered_from(verdict)
    )
    return _rendered(catalog, catalog.help["help.held"], info, country)


def shared_info(held: SafetyInfo, country: str) -> SafetyInfo:
    """The safety of a held message its author chose to share: a ``concern``, with a
    concern's resources."""
    categories = tuple(held.categories)
    return SafetyInfo(
        severity=Severity.CONCERN.value,
        categories=list(categories),
        resources=_resources(country, Severity.CONCERN, categories),
        policy_version=held.policy_version,
    )
