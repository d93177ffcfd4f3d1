"""The exercise catalog in prompts/: it loads, renders, versions and refuses bad data."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2.exceptions import SecurityError, UndefinedError

from coach.catalog import (
    CHALLENGE_EXERCISE_ID,
    Catalog,
    CatalogError,
    Template,
    load_catalog,
)

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"

# exercises.md, in its order: id -> mode.
BRIEF = {
    "rose-bud-thorn": "together",
    "state-of-the-union": "together",
    "evening-check-in": "together",
    "micro-rituals": "together",
    "i-statement": "solo",
    "active-listening": "together",
    "deeper-questions": "together",
    "honesty-hour": "together",
    "thirty-day-challenge": "together",
    "reconnection-blueprint": "together",
    "attunement-check": "solo",
    "resentment-check": "solo",
    "progress-review": "together",
}
DAILY_RITUALS = {"rose-bud-thorn", "evening-check-in", "micro-rituals"}
USER_TEXT_NAMES = {
    "message",
    "messages",
    "text",
    "name",
    "display_name",
    "partner_name",
    "user_text",
}
LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(PROMPTS)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of prompts/ without help/ (another team's files), to edit freely."""
    target = tmp_path / "prompts"
    shutil.copytree(PROMPTS, target, ignore=shutil.ignore_patterns("help"))
    return target


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_help(folder: Path, name: str, body: dict[str, Any]) -> None:
    (folder / "help").mkdir(exist_ok=True)
    (folder / "help" / name).write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


def versions(catalog: Catalog) -> dict[str, str]:
    return {template.id: template.version for template in catalog.templates()}


# ---------------------------------------------------------------- the real catalog


def test_every_template_renders_each_example_in_every_field(catalog: Catalog) -> None:
    for template in catalog.templates():
        for example in template.examples:
            for field in ("text", *template.extra):
                rendered = catalog.render(template, example, field)
                assert rendered.strip(), (template.id, field)
                assert not LEFTOVER.search(rendered), (template.id, field, rendered)
                assert rendered == rendered.strip()
                assert all(line == line.rstrip() for line in rendered.splitlines())


def test_every_step_renders_with_the_context_the_service_builds(catalog: Catalog) -> None:
    for exercise in catalog.exercises.values():
        days = range(1, 31) if exercise.id == CHALLENGE_EXERCISE_ID else [None]
        for index, step in enumerate(exercise.steps):
            for partner_count in (1, 2):
                for day in days:
                    context = catalog.step_context(exercise, index, partner_count=partner_count, day=day)
                    for field in ("text", "scripted"):
                        rendered = catalog.render(step.template, context, field)
                        assert rendered and not LEFTOVER.search(rendered), step.template.id


def test_scripted_lines_are_single_short_paragraphs(catalog: Catalog) -> None:
    for exercise in catalog.exercises.values():
        for step in exercise.steps:
            for example in step.template.examples:
                line = catalog.render(step.template, example, "scripted")
                assert "\n" not in line, step.template.id
                assert "  " not in line, step.template.id
                assert line[-1] in ".?", step.template.id
                assert len(line) <= 400, step.template.id


def test_every_exercise_of_the_brief_is_present_with_its_mode(catalog: Catalog) -> None:
    assert {eid: ex.mode for eid, ex in catalog.exercises.items()} == BRIEF
    assert set(list(catalog.exercises)[:3]) == DAILY_RITUALS
    for eid, exercise in catalog.exercises.items():
        assert exercise.id == eid
        assert exercise.title and exercise.summary and exercise.duration
        assert exercise.cadence in {"daily", "weekly", "monthly", "any", "programme"}
        for step in exercise.steps:
            assert step.template.id == f"{eid}.{step.id}"
            assert step.template.source == f"exercises/{eid}.yaml"
            assert step.advance in ("each", "any")
            assert step.invite and step.title
            assert step.template.extra["title"] == step.title
            assert step.template.extra["invite"] == step.invite


def test_step_counts(catalog: Catalog) -> None:
    counts = {eid: len(ex.steps) for eid, ex in catalog.exercises.items()}
    assert counts.pop("honesty-hour") == 9
    assert counts.pop("attunement-check") == 7
    assert all(2 <= count <= 5 for count in counts.values()), counts


def test_honesty_hour_has_the_nine_steps_in_order(catalog: Catalog) -> None:
    steps = catalog.exercises["honesty-hour"].steps
    assert [step.id for step in steps] == [
        "set-the-time",
        "name-the-goal",
        "ground-rules",
        "open-with-vulnerability",
        "i-statements",
        "pause-and-reflect",
        "validate",
        "appreciation",
        "follow-up",
    ]
    assert steps[-1].advance == "any"


def test_rose_bud_thorn_shares_then_responds_then_closes(catalog: Catalog) -> None:
    steps = catalog.exercises["rose-bud-thorn"].steps
    assert [(step.id, step.advance) for step in steps] == [
        ("share", "each"),
        ("respond", "each"),
        ("close", "any"),
    ]
    instruction = catalog.render(steps[0].template, steps[0].template.examples[0])
    for part in ("Rose:", "Bud:", "Thorn:"):
        assert part in instruction


def test_the_challenge_has_thirty_days_in_four_phases_and_sixty_activities(
    catalog: Catalog,
) -> None:
    assert [(p.number, p.first_day, p.last_day) for p in catalog.phases] == [
        (1, 1, 7),
        (2, 8, 15),
        (3, 16, 23),
        (4, 24, 30),
    ]
    assert [day.day for day in catalog.days] == list(range(1, 31))
    for day in catalog.days:
        phase = catalog.phases[day.phase - 1]
        assert phase.first_day <= day.day <= phase.last_day
    activities = [a for day in catalog.days for a in (day.emotional, day.physical)]
    assert len(activities) == 60
    assert len({" ".join(a.casefold().split()) for a in activities}) == 60


def test_step_context_for_the_challenge_gives_the_days_activities(catalog: Catalog) -> None:
    challenge = catalog.exercises[CHALLENGE_EXERCISE_ID]
    context = catalog.step_context(challenge, 0, partner_count=2, day=9)
    day9 = catalog.days[8]
    assert context["day"] == 9
    assert context["phase"] == 2
    assert context["phase_title"] == catalog.phases[1].title
    assert context["emotional_activity"] == day9.emotional
    assert context["physical_activity"] == day9.physical
    assert context["together"] is True and context["partner_count"] == 2
    assert (context["step_number"], context["step_count"]) == (1, len(challenge.steps))
    rendered = catalog.render(challenge.steps[0].template, context, "scripted")
    assert day9.emotional in rendered and day9.physical in rendered

    assert catalog.step_context(challenge, 0, partner_count=2)["day"] == 1
    with pytest.raises(ValueError):
        catalog.step_context(challenge, 0, partner_count=2, day=31)


def test_step_context_outside_the_challenge(catalog: Catalog) -> None:
    exercise = catalog.exercises["honesty-hour"]
    context = catalog.step_context(exercise, 8, partner_count=1, day=4)
    assert context == {
        "exercise_title": exercise.title,
        "step_title": exercise.steps[8].title,
        "step_number": 9,
        "step_count": 9,
        "is_last_step": True,
        "together": False,
        "partner_count": 1,
    }
    with pytest.raises(IndexError):
        catalog.step_context(exercise, 9, partner_count=2)
    with pytest.raises(ValueError):
        catalog.step_context(exercise, 0, partner_count=3)


def test_no_template_takes_user_text_as_a_variable(catalog: Catalog) -> None:
    for template in catalog.templates():
        assert not USER_TEXT_NAMES & set(template.variables), template.id


def test_rewrite_and_classifier(catalog: Catalog) -> None:
    rewrite = catalog.template("rewrite.i-statement")
    assert rewrite.variables == ()
    assert {"correction", "scaffold"} <= set(rewrite.extra)
    instruction = catalog.render(rewrite, {})
    for key in ('"rewrite"', '"feeling"', '"situation"', '"need"', '"request"'):
        assert key in instruction
    correction = catalog.render(rewrite, {"problem": "it kept 'you never'"}, "correction")
    assert "it kept 'you never'" in correction
    with pytest.raises(UndefinedError):
        catalog.render(rewrite, {}, "correction")
    scaffold = catalog.render(rewrite, {}, "scaffold")
    assert "I feel" in scaffold and "when" in scaffold and "need" in scaffold

    classifier = catalog.template("safety.classifier").text
    for name in (
        "physical_abuse",
        "sexual_coercion",
        "coercive_control",
        "emotional_abuse",
        "threats",
        "stalking",
        "child_safety",
        "self_harm",
        "harm_to_others",
    ):
        assert f"- {name}:" in classifier
    for severity in ("none", "concern", "risk", "danger"):
        assert f"- {severity}:" in classifier


def test_template_lookup(catalog: Catalog) -> None:
    ids = [template.id for template in catalog.templates()]
    assert len(ids) == len(set(ids))
    assert ids[0] == "system"
    assert catalog.template("honesty-hour.ground-rules").source == "exercises/honesty-hour.yaml"
    with pytest.raises(KeyError):
        catalog.template("no-such.template")
    with pytest.raises(KeyError):
        catalog.render(catalog.system, catalog.system.examples[0], "no-such-field")


# ---------------------------------------------------------------- versions


def test_versions_are_stable_and_change_with_the_text(copy: Path) -> None:
    before = versions(load_catalog(copy))
    assert all(re.fullmatch(r"[0-9a-f]{12}", v) for v in before.values())
    assert versions(load_catalog(copy)) == before

    def reword(data: dict[str, Any]) -> None:
        data["steps"][2]["text"] = data["steps"][2]["text"].replace("sarcasm", "mockery")

    edit_yaml(copy / "exercises/honesty-hour.yaml", reword)
    after = versions(load_catalog(copy))
    changed = {tid for tid in before if before[tid] != after[tid]}
    assert changed == {"honesty-hour.ground-rules"}


def test_a_changed_scripted_line_or_invite_changes_the_version(copy: Path) -> None:
    before = versions(load_catalog(copy))

    def reword(data: dict[str, Any]) -> None:
        data["steps"][0]["scripted"] += " Take your time."
        data["steps"][1]["invite"] = "What did you hear?"

    edit_yaml(copy / "exercises/rose-bud-thorn.yaml", reword)
    after = versions(load_catalog(copy))
    assert after["rose-bud-thorn.share"] != before["rose-bud-thorn.share"]
    assert after["rose-bud-thorn.respond"] != before["rose-bud-thorn.respond"]
    assert after["rose-bud-thorn.close"] == before["rose-bud-thorn.close"]


def test_a_changed_activity_changes_the_challenge_steps_versions(copy: Path) -> None:
    before = versions(load_catalog(copy))

    def reword(data: dict[str, Any]) -> None:
        data["days"][0]["physical"] = "Hold hands for a whole song."

    edit_yaml(copy / "challenge/activities.yaml", reword)
    after = versions(load_catalog(copy))
    changed = {tid for tid in before if before[tid] != after[tid]}
    assert changed == {s.template.id for s in load_catalog(copy).exercises[CHALLENGE_EXERCISE_ID].steps}


# ---------------------------------------------------------------- refusing bad data


def test_an_undeclared_variable_is_refused_naming_the_file(copy: Path) -> None:
    def add(data: dict[str, Any]) -> None:
        # The examples give a value, so only the declaration check can catch it.
        data["steps"][1]["text"] += "\n{% if is_last_step %}This is the end.{% endif %}"
        for example in data["steps"][1]["examples"]:
            example["is_last_step"] = False

    edit_yaml(copy / "exercises/rose-bud-thorn.yaml", add)
    with pytest.raises(
        CatalogError,
        match=r"exercises/rose-bud-thorn\.yaml: steps\[2\]\.text: .*is_last_step.*not declare",
    ):
        load_catalog(copy)


def test_a_declared_variable_no_text_uses_is_refused(copy: Path) -> None:
    def declare(data: dict[str, Any]) -> None:
        data["steps"][0]["variables"].append("is_last_step")

    edit_yaml(copy / "exercises/evening-check-in.yaml", declare)
    with pytest.raises(CatalogError, match=r"exercises/evening-check-in\.yaml.*is_last_step"):
        load_catalog(copy)


def test_an_example_missing_a_variable_is_refused_naming_the_file(copy: Path) -> None:
    def drop(data: dict[str, Any]) -> None:
        del data["steps"][0]["examples"][0]["together"]

    edit_yaml(copy / "exercises/micro-rituals.yaml", drop)
    with pytest.raises(
        CatalogError, match=r"exercises/micro-rituals\.yaml: steps\[1\]\.examples\[1\].*together"
    ):
        load_catalog(copy)


def test_a_user_text_variable_is_refused(copy: Path) -> None:
    def leak(data: dict[str, Any]) -> None:
        data["variables"].append("display_name")
        data["text"] += "\nYou are talking to {{ display_name }}."
        for example in data["examples"]:
            example["display_name"] = "Sam"

    edit_yaml(copy / "system.yaml", leak)
    with pytest.raises(CatalogError, match=r"system\.yaml.*display_name"):
        load_catalog(copy)


def test_honesty_hour_must_keep_nine_steps(copy: Path) -> None:
    edit_yaml(copy / "exercises/honesty-hour.yaml", lambda data: data["steps"].pop())
    with pytest.raises(CatalogError, match=r"exercises/honesty-hour\.yaml.*steps"):
        load_catalog(copy)


def test_a_repeated_activity_is_refused(copy: Path) -> None:
    def repeat(data: dict[str, Any]) -> None:
        data["days"][20]["emotional"] = data["days"][3]["emotional"]

    edit_yaml(copy / "challenge/activities.yaml", repeat)
    with pytest.raises(CatalogError, match=r"challenge/activities\.yaml.*days\[21\]"):
        load_catalog(copy)


def test_a_misspelled_field_is_refused(copy: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        data["steps"][0]["scriptd"] = data["steps"][0].pop("scripted")

    edit_yaml(copy / "exercises/deeper-questions.yaml", typo)
    with pytest.raises(CatalogError, match=r"exercises/deeper-questions\.yaml"):
        load_catalog(copy)


def test_an_exercise_file_missing_from_the_order_is_refused(copy: Path) -> None:
    shutil.copy(copy / "exercises/rose-bud-thorn.yaml", copy / "exercises/rose-bud-thorn-2.yaml")
    with pytest.raises(CatalogError, match=r"rose-bud-thorn-2\.yaml"):
        load_catalog(copy)


# ---------------------------------------------------------------- help and the sandbox


def test_help_may_be_empty_and_is_loaded_when_present(copy: Path) -> None:
    assert load_catalog(copy).help == {}
    write_help(
        copy,
        "danger.yaml",
        {
            "id": "help.danger",
            "description": "Shown at danger.",
            "variables": ["country_name"],
            "text": "You deserve to be safe.   \nHelp in {{ country_name }}:   \n\n",
            "examples": [{"country_name": "Ireland"}],
        },
    )
    catalog = load_catalog(copy)
    template = catalog.help["help.danger"]
    assert template.source == "help/danger.yaml"
    assert template in catalog.templates()
    assert catalog.template("help.danger") is template
    rendered = catalog.render(template, {"country_name": "Ireland"})
    assert rendered == "You deserve to be safe.\nHelp in Ireland:"


def test_a_help_template_id_may_not_repeat_another(copy: Path) -> None:
    body = {"id": "system", "description": "x", "variables": [], "text": "Hi.", "examples": [{}]}
    write_help(copy, "clash.yaml", body)
    with pytest.raises(CatalogError, match=r"help/clash\.yaml.*system"):
        load_catalog(copy)


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_escapes(copy: Path, escape: str) -> None:
    write_help(
        copy,
        "evil.yaml",
        {"id": "help.evil", "description": "x", "variables": [], "text": escape, "examples": [{}]},
    )
    with pytest.raises(CatalogError, match=r"help/evil\.yaml") as refused:
        load_catalog(copy)
    assert isinstance(refused.value.__cause__, SecurityError)

    catalog = load_catalog(PROMPTS)
    evil = Template(
        id="help.evil",
        description="x",
        variables=(),
        text=escape,
        examples=({},),
        extra={},
        version="000000000000",
        source="help/evil.yaml",
    )
    with pytest.raises(SecurityError):
        catalog.render(evil, {})


def test_a_key_given_twice_is_refused(copy: Path) -> None:
    path = copy / "system.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "text: A second text.\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"system\.yaml.*duplicate key 'text'"):
        load_catalog(copy)
