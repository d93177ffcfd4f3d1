"""Help lines by country: completeness, ordering, fallback."""

from __future__ import annotations

import pytest

from safety import Severity, country_name, resources_for
from safety.resources import countries

REQUIRED = ("US", "GB", "CA", "AU", "IE", "NZ", "DE", "IN", "INTL")


def test_required_countries_exist() -> None:
    assert set(REQUIRED) <= set(countries())


@pytest.mark.parametrize("code", REQUIRED)
def test_every_country_has_emergency_domestic_abuse_and_crisis(code: str) -> None:
    kinds = {r.kind for r in resources_for(code, Severity.DANGER, ["physical_abuse", "self_harm"])}
    assert {"emergency", "domestic_abuse", "crisis"} <= kinds


@pytest.mark.parametrize("code", REQUIRED)
def test_every_entry_names_its_source(code: str) -> None:
    for r in resources_for(code, Severity.DANGER, ["physical_abuse", "self_harm", "harm_to_others"]):
        assert r.source.startswith("https://"), r
        assert r.phone or r.sms or r.url or r.note, r


@pytest.mark.parametrize("code", REQUIRED)
def test_danger_puts_emergency_first(code: str) -> None:
    for cats in (["physical_abuse"], ["self_harm"], ["threats", "stalking"], []):
        assert resources_for(code, Severity.DANGER, cats)[0].kind == "emergency"


def test_self_harm_puts_crisis_line_right_after_emergency() -> None:
    res = resources_for("GB", Severity.DANGER, ["self_harm"])
    assert [r.kind for r in res[:2]] == ["emergency", "crisis"]
    assert res[1].phone == "116 123"
    assert resources_for("US", Severity.RISK, ["self_harm"])[0].phone == "988"


def test_abuse_gets_the_domestic_abuse_line() -> None:
    res = resources_for("US", Severity.RISK, ["coercive_control"])
    assert res[0].kind == "domestic_abuse" and res[0].phone == "1-800-799-7233"
    assert res[-1].kind == "emergency"  # last at risk: "if you are in danger now"


@pytest.mark.parametrize("code", countries())
@pytest.mark.parametrize("severity", [Severity.RISK, Severity.DANGER])
def test_a_verdict_without_category_gets_both_the_abuse_and_the_crisis_line(
    code: str, severity: Severity
) -> None:
    # the learned stage raises without naming a category: the disclosure may be abuse or
    # a suicide plan ("driving to the cliffs tonight, sorry for everything")
    kinds = [r.kind for r in resources_for(code, severity, [])]
    assert "domestic_abuse" in kinds and "crisis" in kinds
    assert kinds.index("domestic_abuse") < kinds.index("crisis")


def test_author_of_harm_gets_the_perpetrator_line() -> None:
    res = resources_for("GB", Severity.RISK, ["harm_to_others"])
    assert res[0].kind == "perpetrator" and res[0].phone == "0808 802 4040"
    res = resources_for("AU", Severity.RISK, ["physical_abuse"], for_author_of_harm=True)
    assert res[0].phone == "1300 766 491"
    assert any(r.kind == "crisis" for r in resources_for("GB", Severity.RISK, ["harm_to_others"]))


@pytest.mark.parametrize("country", [None, "", "ZZ", "fr"])
def test_unknown_country_falls_back_to_international(country: str | None) -> None:
    res = resources_for(country, Severity.DANGER, ["physical_abuse"])
    assert res[0].kind == "emergency" and res[0].phone is None
    assert any("findahelpline.com" in (r.url or "") for r in res)
    assert country_name(country) == "your country"


def test_country_names_and_aliases() -> None:
    assert country_name("US") == "United States"
    assert country_name("uk") == "United Kingdom"
    assert resources_for("uk", Severity.DANGER, [])[0].phone == "999"


def test_none_severity_has_no_resources_and_concern_is_gentle() -> None:
    assert resources_for("US", Severity.NONE, []) == []
    kinds = {r.kind for r in resources_for("US", Severity.CONCERN, ["emotional_abuse"])}
    assert "emergency" not in kinds
