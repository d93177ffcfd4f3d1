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


def safety_info(verdict: Verdict, country: str, *, author_of_harm: bool = False) -> SafetyInfo:
    resources = []
    if verdict.severity.rank >= Severity.CONCERN.rank:
        found = resources_for(
            country, verdict.severity, verdict.categories, for_author_of_harm=author_of_harm
        )
        resources = [msgspec.to_builtins(r) for r in found]
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


def help_message(catalog: Catalog, verdict: Verdict, country: str) -> HelpMessage:
    template = choose_template(catalog, verdict)
    info = safety_info(verdict, country, author_of_harm=verdict.is_author_of_harm)
    text = catalog.render(template, {"country_name": country_name(country), "resources": info.resources})
    return HelpMessage(text=text, template=TemplateRef(template.id, template.version), safety=info)


def _notice(catalog: Catalog, template_id: str, country: str) -> tuple[str, TemplateRef]:
    template = catalog.help[template_id]
    verdict_free = {"country_name": country_name(country), "resources": []}
    if "resources" in template.variables:
        found = resources_for(country, Severity.CONCERN, ())
        verdict_free["resources"] = [msgspec.to_builtins(r) for r in found]
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
    severity would get (emergency number first at ``danger``)."""
    template = catalog.help["help.held"]
    severity = lowered_from(verdict) or verdict.severity
    found = resources_for(country, severity, verdict.categories, for_author_of_harm=verdict.is_author_of_harm)
    info = SafetyInfo(
        severity=verdict.severity.value,
        categories=list(verdict.categories),
        resources=[msgspec.to_builtins(r) for r in found],
        policy_version=verdict.policy_version,
    )
    text = catalog.render(template, {"country_name": country_name(country), "resources": info.resources})
    return HelpMessage(text=text, template=TemplateRef(template.id, template.version), safety=info)


def shared_info(held: SafetyInfo, country: str) -> SafetyInfo:
    """The safety of a held message its author chose to share: a ``concern``, with a
    concern's resources."""
    found = resources_for(country, Severity.CONCERN, tuple(held.categories))
    return SafetyInfo(
        severity=Severity.CONCERN.value,
        categories=list(held.categories),
        resources=[msgspec.to_builtins(r) for r in found],
        policy_version=held.policy_version,
    )
