"""Help lines by country (``data/resources.yaml``) and which ones to show when.

Ordering rules of :func:`resources_for`:

1. at ``danger`` the emergency number comes first;
2. ``self_harm`` puts the crisis line (and crisis text/chat) next;
3. abuse categories add the domestic-abuse line (and its text/chat);
   a verdict with no category (a learned stage names none) gets the domestic-abuse
   line and then the crisis line, since it may be either;
4. ``harm_to_others`` or ``for_author_of_harm`` add the "worried about your own
   behaviour" line where one exists, plus the crisis line;
5. lines listed for one of the categories (``for:`` in the data) follow;
6. at ``risk`` the emergency number comes last ("if you are in danger now");
7. at ``concern`` the crisis line and the directory (someone to talk to);
8. at ``none``: nothing.

Unknown or missing countries get the international fallback (``INTL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources as _res
from typing import Any

import msgspec
import yaml

from safety.severity import Severity

KINDS = ("emergency", "domestic_abuse", "crisis", "text", "chat", "perpetrator", "directory")
ABUSE_CATEGORIES = frozenset(
    {
        "physical_abuse",
        "sexual_coercion",
        "coercive_control",
        "emotional_abuse",
        "threats",
        "stalking",
        "child_safety",
    }
)
FALLBACK = "INTL"


class Resource(msgspec.Struct, frozen=True):
    """One help line or service."""

    name: str
    kind: str
    phone: str | None = None
    sms: str | None = None
    url: str | None = None
    hours: str | None = None
    note: str | None = None
    source: str = ""


class _Entry(msgspec.Struct, frozen=True):
    resource: Resource
    for_categories: frozenset[str]


def _load(raw: bytes) -> tuple[dict[str, str], dict[str, list[_Entry]], dict[str, str]]:
    data: dict[str, Any] = yaml.safe_load(raw)
    names: dict[str, str] = {}
    entries: dict[str, list[_Entry]] = {}
    for code, spec in data["countries"].items():
        names[code] = str(spec["name"])
        items: list[_Entry] = []
        for r in spec["resources"]:
            kind = str(r["kind"])
            if kind not in KINDS:
                raise ValueError(f"{code}: unknown resource kind {kind!r}")
            res = Resource(
                name=str(r["name"]),
                kind=kind,
                phone=_opt(r.get("phone")),
                sms=_opt(r.get("sms")),
                url=_opt(r.get("url")),
                hours=_opt(r.get("hours")),
                note=_opt(r.get("note")),
                source=str(r["source"]),
            )
            items.append(_Entry(res, frozenset(str(c) for c in r.get("for") or ())))
        entries[code] = items
    aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
    return names, entries, aliases


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


_NAMES, _ENTRIES, _ALIASES = _load(
    _res.files("safety").joinpath("data").joinpath("resources.yaml").read_bytes()
)


def countries() -> list[str]:
    """Country codes with their own entries (plus ``INTL``)."""
    return sorted(_ENTRIES)


def _code(country: str | None) -> str:
    if not country:
        return FALLBACK
    code = country.strip().upper()
    code = _ALIASES.get(code, code)
    return code if code in _ENTRIES else FALLBACK


def country_name(code: str | None) -> str:
    """The display name for a country code ("your country" when unknown)."""
    return _NAMES[_code(code)]


def resources_for(
    country: str | None,
    severity: Severity,
    categories: Sequence[str],
    *,
    for_author_of_harm: bool = False,
) -> list[Resource]:
    """The help lines to show, most urgent first (see the module docstring)."""
    if severity == Severity.NONE:
        return []
    entries = _ENTRIES[_code(country)]
    cats = set(categories)
    out: list[Resource] = []

    def add(kind: str, *, only_for: set[str] | None = None) -> None:
        for e in entries:
            if e.resource.kind != kind or e.resource in out:
                continue
            if only_for is not None and e.for_categories and not (e.for_categories & only_for):
                continue
            out.append(e.resource)

    def add_related() -> None:
        for e in entries:
            if e.for_categories & cats and e.resource not in out:
                out.append(e.resource)

    if severity == Severity.CONCERN:
        add("crisis", only_for={"self_harm"})
        add("directory")
        return out
    if severity == Severity.DANGER:
        add("emergency")
    author = for_author_of_harm or "harm_to_others" in cats
    if "self_harm" in cats:
        add("crisis", only_for={"self_harm"})
        add("text", only_for={"self_harm"})
        add("chat", only_for={"self_harm"})
    if author:
        add("perpetrator")
        add("crisis", only_for={"harm_to_others"})
    if cats & ABUSE_CATEGORIES or not cats:
        add("domestic_abuse")
        add("text", only_for=set(ABUSE_CATEGORIES))
        add("chat", only_for=set(ABUSE_CATEGORIES))
    if not cats:
        add("crisis", only_for={"self_harm"})
    add_related()
    if not any(r.kind in ("crisis", "domestic_abuse", "perpetrator") for r in out):
        add("crisis", only_for=set())
    add("directory")
    add("emergency")
    return out
