"""The exercise catalog: every reviewed text in ``prompts/``, loaded, checked and versioned.

``load_catalog(prompts_dir)`` reads the YAML files, checks them (required fields, unique
ids, declared variables == variables used, examples complete and renderable, the 30-day
challenge complete) and compiles every text once in one sandboxed jinja2 environment.
Any problem raises ``CatalogError`` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
import msgspec
import yaml
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "CHALLENGE_EXERCISE_ID",
    "Catalog",
    "CatalogError",
    "ChallengeDay",
    "ChallengePhase",
    "Exercise",
    "Step",
    "Template",
    "load_catalog",
]

CHALLENGE_EXERCISE_ID = "thirty-day-challenge"
CHALLENGE_DAY_COUNT = 30
CHALLENGE_PHASE_COUNT = 4
# Exercises whose structure the content brief fixes.
FIXED_STEP_COUNTS = {"honesty-hour": 9, "attunement-check": 7}

# The variables the service passes to every step template, and to the challenge's.
STEP_VARIABLES = frozenset(
    {
        "exercise_title",
        "step_title",
        "step_number",
        "step_count",
        "is_last_step",
        "together",
        "partner_count",
    }
)
CHALLENGE_VARIABLES = frozenset({"day", "phase", "phase_title", "emotional_activity", "physical_activity"})
SYSTEM_VARIABLES = frozenset({"exercise_title", "mode"})
CORRECTION_VARIABLES = frozenset({"problem"})
# What a person types never becomes a template variable: it only travels in user messages.
USER_TEXT_VARIABLES = frozenset(
    {
        "message",
        "messages",
        "text",
        "content",
        "input",
        "user_text",
        "user_message",
        "name",
        "display_name",
        "partner_name",
        "first_name",
    }
)

MODES = ("solo", "together")
CADENCES = ("daily", "weekly", "monthly", "any", "programme")
ADVANCES = ("each", "any")

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_TEMPLATE_ID = re.compile(r"^[a-z0-9_]+(?:[-.][a-z0-9_]+)*$")
_JINJA_MARKERS = ("{{", "{%", "{#")


class CatalogError(Exception):
    """A file in prompts/ is missing, malformed or inconsistent."""


class Template(msgspec.Struct, frozen=True):
    id: str
    description: str
    variables: tuple[str, ...]
    text: str
    examples: tuple[dict[str, Any], ...]
    # Other reviewed text fields, e.g. "scripted", "invite", "title"; "correction", "scaffold".
    extra: dict[str, str]
    # First 12 hex chars of sha256 over canonical JSON of {id, variables, text, extra}.
    version: str
    # Path relative to the prompts folder, e.g. "exercises/honesty-hour.yaml".
    source: str


class Step(msgspec.Struct, frozen=True):
    id: str
    title: str
    invite: str
    advance: Literal["each", "any"]
    template: Template


class Exercise(msgspec.Struct, frozen=True):
    id: str
    title: str
    summary: str
    mode: Literal["solo", "together"]
    duration: str
    cadence: str
    steps: tuple[Step, ...]


class ChallengeDay(msgspec.Struct, frozen=True):
    day: int
    phase: int
    emotional: str
    physical: str


class ChallengePhase(msgspec.Struct, frozen=True):
    number: int
    title: str
    first_day: int
    last_day: int
    summary: str


def template_version(template_id: str, variables: Iterable[str], text: str, extra: Mapping[str, str]) -> str:
    """The content hash that identifies one reviewed version of a template."""
    canonical = json.dumps(
        {"id": template_id, "variables": list(variables), "text": text, "extra": dict(extra)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _new_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _tidy(rendered: str) -> str:
    """Drop trailing whitespace on every line, and whitespace at either end."""
    return "\n".join(line.rstrip() for line in rendered.splitlines()).strip()


class Catalog:
    """Every template, exercise and challenge day, checked and compiled once."""

    def __init__(
        self,
        *,
        prompts_dir: Path,
        system: Template,
        exercises: dict[str, Exercise],
        rewrite: Template,
        classifier: Template,
        help: dict[str, Template],
        phases: tuple[ChallengePhase, ...],
        days: tuple[ChallengeDay, ...],
        environment: SandboxedEnvironment,
        compiled: dict[tuple[str, str, str], jinja2.Template],
    ) -> None:
        self.prompts_dir = prompts_dir
        self.system = system
        self.exercises = exercises
        self.rewrite = rewrite
        self.classifier = classifier
        self.help = help
        self.phases = phases
        self.days = days
        self._environment = environment
        self._compiled = compiled
        self._by_id = {template.id: template for template in self.templates()}

    def templates(self) -> list[Template]:
        """Every template: system, each step's (in catalog order), rewrite, classifier, help."""
        found = [self.system]
        for exercise in self.exercises.values():
            found.extend(step.template for step in exercise.steps)
        found.extend([self.rewrite, self.classifier])
        found.extend(self.help[key] for key in sorted(self.help))
        return found

    def template(self, template_id: str) -> Template:
        """The template with this id; KeyError if there is none."""
        try:
            return self._by_id[template_id]
        except KeyError:
            raise KeyError(template_id) from None

    def render(self, template: Template, context: Mapping[str, Any], field: str = "text") -> str:
        """Render ``template.text`` (or ``template.extra[field]``) in the sandbox.

        A missing variable raises ``jinja2.UndefinedError``; an attempt to reach Python
        internals raises ``jinja2.exceptions.SecurityError``.
        """
        compiled = self._compiled_for(template, field)
        return _tidy(compiled.render(dict(context)))

    def step_context(
        self,
        exercise: Exercise,
        step_index: int,
        *,
        partner_count: int,
        day: int | None = None,
    ) -> dict[str, Any]:
        """Every variable a step template may use, for one step of one exercise.

        ``step_index`` is 0-based; ``step_number`` in the context is 1-based. The
        challenge variables are added for the thirty-day challenge only (day 1 unless
        given).
        """
        if not 0 <= step_index < len(exercise.steps):
            raise IndexError(f"{exercise.id} has {len(exercise.steps)} steps; no step index {step_index}")
        if partner_count not in (1, 2):
            raise ValueError(f"partner_count must be 1 or 2, not {partner_count}")
        step = exercise.steps[step_index]
        context: dict[str, Any] = {
            "exercise_title": exercise.title,
            "step_title": step.title,
            "step_number": step_index + 1,
            "step_count": len(exercise.steps),
            "is_last_step": step_index == len(exercise.steps) - 1,
            "together": exercise.mode == "together" and partner_count == 2,
            "partner_count": partner_count,
        }
        if exercise.id == CHALLENGE_EXERCISE_ID:
            context.update(self.challenge_context(1 if day is None else day))
        return context

    def challenge_context(self, day: int) -> dict[str, Any]:
        """The challenge variables for one day (1-30)."""
        if not 1 <= day <= len(self.days):
            raise ValueError(f"the challenge has days 1-{len(self.days)}, not {day}")
        entry = self.days[day - 1]
        phase = self.phases[entry.phase - 1]
        return {
            "day": entry.day,
            "phase": phase.number,
            "phase_title": phase.title,
            "emotional_activity": entry.emotional,
            "physical_activity": entry.physical,
        }

    def system_context(self, exercise: Exercise, *, partner_count: int) -> dict[str, Any]:
        """The variables of the system template: ``mode`` is "together" when both partners
        take part in a together exercise, else "solo"."""
        if partner_count not in (1, 2):
            raise ValueError(f"partner_count must be 1 or 2, not {partner_count}")
        together = exercise.mode == "together" and partner_count == 2
        return {"exercise_title": exercise.title, "mode": "together" if together else "solo"}

    def _compiled_for(self, template: Template, field: str) -> jinja2.Template:
        key = (template.id, template.version, field)
        compiled = self._compiled.get(key)
        if compiled is None:
            if field == "text":
                source = template.text
            elif field in template.extra:
                source = template.extra[field]
            else:
                raise KeyError(f"template {template.id} has no field {field!r}")
            compiled = self._environment.from_string(source)
            self._compiled[key] = compiled
        return compiled


# --------------------------------------------------------------------------- loading


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_DuplicateKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Loader:
    """One load of a prompts folder: collects compiled texts and checks ids."""

    def __init__(self, prompts_dir: Path) -> None:
        self.prompts_dir = prompts_dir
        self.environment = _new_environment()
        self.compiled: dict[tuple[str, str, str], jinja2.Template] = {}
        self.template_sources: dict[str, str] = {}

    # ---- files

    def read(self, relative: str) -> dict[str, Any]:
        path = self.prompts_dir / relative
        if not path.is_file():
            raise CatalogError(f"{relative}: file is missing")
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_DuplicateKeyLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{relative}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise CatalogError(f"{relative}: expected a mapping at the top level")
        return data

    # ---- fields

    @staticmethod
    def fail(source: str, field: str, problem: str) -> CatalogError:
        return CatalogError(f"{source}: {field}: {problem}")

    def string(
        self, data: Mapping[str, Any], key: str, source: str, where: str = "", *, line: bool = False
    ) -> str:
        field = f"{where}{key}"
        if key not in data:
            raise self.fail(source, field, "is required")
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(source, field, "must be a non-empty string")
        value = value.rstrip()
        if line and "\n" in value:
            raise self.fail(source, field, "must be one line")
        return value

    def integer(self, data: Mapping[str, Any], key: str, source: str, where: str = "") -> int:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(source, f"{where}{key}", "must be a whole number")
        return value

    def plain(self, value: str, source: str, field: str) -> str:
        if any(marker in value for marker in _JINJA_MARKERS):
            raise self.fail(source, field, "is plain text shown as is; it may not use {{ }} or {% %}")
        return value

    def no_unknown_keys(
        self, data: Mapping[str, Any], allowed: Iterable[str], source: str, where: str = ""
    ) -> None:
        unknown = sorted(str(key) for key in data if key not in set(allowed))
        if unknown:
            raise self.fail(source, f"{where}{unknown[0]}", "is not a known field")

    def variables_used(self, text: str, source: str, field: str) -> tuple[Any, set[str]]:
        try:
            ast = self.environment.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise self.fail(source, field, f"template error on line {exc.lineno}: {exc.message}") from exc
        used = set(meta.find_undeclared_variables(ast)) - set(self.environment.globals)
        return ast, used

    # ---- templates

    def template(
        self,
        data: Mapping[str, Any],
        source: str,
        *,
        template_id: str,
        where: str = "",
        shared: Mapping[str, str] | None = None,
        own: Mapping[str, tuple[str, frozenset[str]]] | None = None,
        plain: Mapping[str, str] | None = None,
        allowed: frozenset[str] | None = None,
    ) -> Template:
        """Build and check one template.

        ``shared``: extra fields that use the declared variables (e.g. ``scripted``);
        ``own``: extra fields with their own fixed variables (e.g. ``correction``);
        ``plain``: extra fields that must be plain text (e.g. ``title``);
        ``allowed``: the variables the service can provide, when that set is known.
        """
        shared = shared or {}
        own = own or {}
        plain = plain or {}
        if not _TEMPLATE_ID.match(template_id):
            raise self.fail(source, f"{where}id", f"{template_id!r} is not a valid id (e.g. 'help.danger')")
        if template_id in self.template_sources:
            raise self.fail(
                source,
                f"{where}id",
                f"template id {template_id!r} is already used in {self.template_sources[template_id]}",
            )
        description = self.string(data, "description", source, where, line=True)
        text = self.string(data, "text", source, where)

        raw_variables = data.get("variables")
        if not isinstance(raw_variables, list) or not all(isinstance(name, str) for name in raw_variables):
            raise self.fail(source, f"{where}variables", "must be a list of names ([] for none)")
        variables: tuple[str, ...] = tuple(raw_variables)
        if len(set(variables)) != len(variables):
            raise self.fail(source, f"{where}variables", "lists a name twice")
        for name in variables:
            if not _IDENTIFIER.match(name):
                raise self.fail(source, f"{where}variables", f"{name!r} is not a valid name")
            if name in USER_TEXT_VARIABLES:
                raise self.fail(
                    source,
                    f"{where}variables",
                    f"{name!r} would carry what a person typed; user text only travels in "
                    "user messages, never in a template",
                )
            if allowed is not None and name not in allowed:
                raise self.fail(
                    source,
                    f"{where}variables",
                    f"{name!r} is not provided here; available: {', '.join(sorted(allowed))}",
                )

        fields: dict[str, str] = {"text": text}
        extra: dict[str, str] = {}
        for key, value in shared.items():
            fields[key] = extra[key] = value
        for key, (value, _) in own.items():
            fields[key] = extra[key] = value
        for key, value in plain.items():
            extra[key] = self.plain(value, source, f"{where}{key}")

        # Declared variables must be exactly those used by the text and its shared fields.
        asts: dict[str, Any] = {}
        used_shared: set[str] = set()
        for key, value in fields.items():
            ast, used = self.variables_used(value, source, f"{where}{key}")
            asts[key] = ast
            if key in own:
                expected = own[key][1]
                if used != expected:
                    raise self.fail(
                        source,
                        f"{where}{key}",
                        f"must use exactly {sorted(expected)}, uses {sorted(used)}",
                    )
            else:
                undeclared = sorted(used - set(variables))
                if undeclared:
                    raise self.fail(
                        source,
                        f"{where}{key}",
                        f"uses {undeclared[0]!r} but {where}variables does not declare it",
                    )
                used_shared |= used
        for name in variables:
            if name not in used_shared:
                raise self.fail(source, f"{where}variables", f"declares {name!r} but no text uses it")

        raw_examples = data.get("examples")
        if not isinstance(raw_examples, list) or not raw_examples:
            raise self.fail(source, f"{where}examples", "needs at least one example")
        needed = set(variables)
        for _, names in own.values():
            needed |= names
        examples: list[dict[str, Any]] = []
        for number, example in enumerate(raw_examples, start=1):
            if example is None and not needed:
                example = {}
            if not isinstance(example, dict) or not all(isinstance(k, str) for k in example):
                raise self.fail(source, f"{where}examples[{number}]", "must be a mapping of variable: value")
            missing = sorted(needed - set(example))
            if missing:
                raise self.fail(
                    source, f"{where}examples[{number}]", f"gives no value for {', '.join(missing)}"
                )
            examples.append(example)

        version = template_version(template_id, variables, text, extra)
        compiled: dict[str, jinja2.Template] = {}
        for key, ast in asts.items():
            compiled[key] = self.environment.from_string(ast)
        for key, value in plain.items():
            compiled[key] = self.environment.from_string(value)

        # Every example must render every field: a preview a counselor can trust.
        for number, example in enumerate(examples, start=1):
            for key, template in compiled.items():
                try:
                    template.render(example)
                except jinja2.TemplateError as exc:
                    raise self.fail(
                        source,
                        f"{where}{key}",
                        f"does not render with examples[{number}]: {type(exc).__name__}: {exc}",
                    ) from exc

        for key, template in compiled.items():
            self.compiled[(template_id, version, key)] = template
        self.template_sources[template_id] = source
        return Template(
            id=template_id,
            description=description,
            variables=variables,
            text=text,
            examples=tuple(examples),
            extra=extra,
            version=version,
            source=source,
        )

    def simple_template(
        self,
        relative: str,
        *,
        expected_id: str | None = None,
        allowed: frozenset[str] | None = None,
    ) -> Template:
        data = self.read(relative)
        self.no_unknown_keys(data, ("id", "description", "variables", "text", "examples"), relative)
        template_id = self.string(data, "id", relative, line=True)
        if expected_id is not None and template_id != expected_id:
            raise self.fail(relative, "id", f"must be {expected_id!r}")
        return self.template(data, relative, template_id=template_id, allowed=allowed)

    # ---- files of each kind

    def rewrite(self) -> Template:
        relative = "rewrite/i-statement.yaml"
        data = self.read(relative)
        self.no_unknown_keys(
            data,
            ("id", "description", "variables", "text", "examples", "correction", "scaffold"),
            relative,
        )
        template_id = self.string(data, "id", relative, line=True)
        if template_id != "rewrite.i-statement":
            raise self.fail(relative, "id", "must be 'rewrite.i-statement'")
        return self.template(
            data,
            relative,
            template_id=template_id,
            own={
                "correction": (
                    self.string(data, "correction", relative),
                    CORRECTION_VARIABLES,
                )
            },
            plain={"scaffold": self.string(data, "scaffold", relative)},
            allowed=frozenset(),
        )

    def help(self) -> dict[str, Template]:
        folder = self.prompts_dir / "help"
        found: dict[str, Template] = {}
        if not folder.is_dir():
            return found
        for path in sorted(folder.glob("*.yaml")):
            relative = f"help/{path.name}"
            template = self.help_template(relative)
            found[template.id] = template
        return found

    def help_template(self, relative: str) -> Template:
        """Help messages: the template format; other text fields become reviewed extras."""
        data = self.read(relative)
        template_id = self.string(data, "id", relative, line=True)
        core = ("id", "description", "variables", "text", "examples")
        shared: dict[str, str] = {}
        for key, value in data.items():
            if key in core:
                continue
            if not isinstance(value, str):
                raise self.fail(relative, str(key), "extra fields must be text")
            shared[str(key)] = value.rstrip()
        return self.template(data, relative, template_id=template_id, shared=shared)

    def challenge(self) -> tuple[tuple[ChallengePhase, ...], tuple[ChallengeDay, ...]]:
        relative = "challenge/activities.yaml"
        data = self.read(relative)
        self.no_unknown_keys(data, ("phases", "days"), relative)
        raw_phases = data.get("phases")
        if not isinstance(raw_phases, list) or len(raw_phases) != CHALLENGE_PHASE_COUNT:
            raise self.fail(relative, "phases", f"must list {CHALLENGE_PHASE_COUNT} phases")
        phases: list[ChallengePhase] = []
        next_day = 1
        for index, raw in enumerate(raw_phases, start=1):
            where = f"phases[{index}]."
            if not isinstance(raw, dict):
                raise self.fail(relative, f"phases[{index}]", "must be a mapping")
            self.no_unknown_keys(raw, ("number", "title", "days", "summary"), relative, where)
            number = self.integer(raw, "number", relative, where)
            if number != index:
                raise self.fail(relative, f"{where}number", f"must be {index}")
            span = raw.get("days")
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in span)
            ):
                raise self.fail(relative, f"{where}days", "must be [first, last]")
            first, last = span
            if first != next_day or last < first:
                raise self.fail(
                    relative, f"{where}days", f"must start on day {next_day} and not run backwards"
                )
            next_day = last + 1
            phases.append(
                ChallengePhase(
                    number=number,
                    title=self.string(raw, "title", relative, where, line=True),
                    first_day=first,
                    last_day=last,
                    summary=self.string(raw, "summary", relative, where),
                )
            )
        if next_day != CHALLENGE_DAY_COUNT + 1:
            raise self.fail(relative, "phases", f"must cover days 1-{CHALLENGE_DAY_COUNT}")

        raw_days = data.get("days")
        if not isinstance(raw_days, list) or len(raw_days) != CHALLENGE_DAY_COUNT:
            raise self.fail(relative, "days", f"must list {CHALLENGE_DAY_COUNT} days")
        days: list[ChallengeDay] = []
        seen: dict[str, str] = {}
        for index, raw in enumerate(raw_days, start=1):
            where = f"days[{index}]."
            if not isinstance(raw, dict):
                raise self.fail(relative, f"days[{index}]", "must be a mapping")
            self.no_unknown_keys(raw, ("day", "phase", "emotional", "physical"), relative, where)
            if self.integer(raw, "day", relative, where) != index:
                raise self.fail(relative, f"{where}day", f"must be {index}")
            phase = self.integer(raw, "phase", relative, where)
            expected = next(p.number for p in phases if p.first_day <= index <= p.last_day)
            if phase != expected:
                raise self.fail(relative, f"{where}phase", f"day {index} is in phase {expected}")
            entry = ChallengeDay(
                day=index,
                phase=phase,
                emotional=self.plain(
                    self.string(raw, "emotional", relative, where), relative, f"{where}emotional"
                ),
                physical=self.plain(
                    self.string(raw, "physical", relative, where), relative, f"{where}physical"
                ),
            )
            for kind, activity in (("emotional", entry.emotional), ("physical", entry.physical)):
                key = " ".join(activity.casefold().split())
                if key in seen:
                    raise self.fail(relative, f"{where}{kind}", f"repeats the activity of {seen[key]}")
                seen[key] = f"{where}{kind}"
            days.append(entry)
        return tuple(phases), tuple(days)

    def exercise_order(self) -> list[str]:
        relative = "catalog.yaml"
        data = self.read(relative)
        self.no_unknown_keys(data, ("exercises",), relative)
        order = data.get("exercises")
        if not isinstance(order, list) or not order or not all(isinstance(item, str) for item in order):
            raise self.fail(relative, "exercises", "must list exercise ids")
        if len(set(order)) != len(order):
            raise self.fail(relative, "exercises", "lists an exercise twice")
        on_disk = sorted(path.stem for path in (self.prompts_dir / "exercises").glob("*.yaml"))
        for exercise_id in order:
            if exercise_id not in on_disk:
                raise self.fail(
                    relative,
                    "exercises",
                    f"lists {exercise_id!r} but exercises/{exercise_id}.yaml is missing",
                )
        for stem in on_disk:
            if stem not in order:
                raise self.fail(f"exercises/{stem}.yaml", "id", "is not listed in catalog.yaml")
        return order

    def exercise(self, exercise_id: str, challenge_text: str) -> Exercise:
        relative = f"exercises/{exercise_id}.yaml"
        data = self.read(relative)
        self.no_unknown_keys(
            data, ("id", "title", "summary", "mode", "duration", "cadence", "steps"), relative
        )
        if self.string(data, "id", relative, line=True) != exercise_id:
            raise self.fail(relative, "id", f"must match the file name ({exercise_id!r})")
        title = self.plain(self.string(data, "title", relative, line=True), relative, "title")
        summary = self.plain(self.string(data, "summary", relative, line=True), relative, "summary")
        mode = self.string(data, "mode", relative)
        if mode == "solo":
            exercise_mode: Literal["solo", "together"] = "solo"
        elif mode == "together":
            exercise_mode = "together"
        else:
            raise self.fail(relative, "mode", f"must be one of {', '.join(MODES)}")
        duration = self.string(data, "duration", relative, line=True)
        cadence = self.string(data, "cadence", relative)
        if cadence not in CADENCES:
            raise self.fail(relative, "cadence", f"must be one of {', '.join(CADENCES)}")

        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.fail(relative, "steps", "must list the steps")
        fixed = FIXED_STEP_COUNTS.get(exercise_id)
        if fixed is not None and len(raw_steps) != fixed:
            raise self.fail(relative, "steps", f"{exercise_id} has exactly {fixed} steps")

        allowed = STEP_VARIABLES
        if exercise_id == CHALLENGE_EXERCISE_ID:
            allowed = STEP_VARIABLES | CHALLENGE_VARIABLES
        steps: list[Step] = []
        step_ids: set[str] = set()
        for index, raw in enumerate(raw_steps, start=1):
            where = f"steps[{index}]."
            if not isinstance(raw, dict):
                raise self.fail(relative, f"steps[{index}]", "must be a mapping")
            self.no_unknown_keys(
                raw,
                (
                    "id",
                    "title",
                    "invite",
                    "advance",
                    "description",
                    "variables",
                    "text",
                    "scripted",
                    "examples",
                ),
                relative,
                where,
            )
            step_id = self.string(raw, "id", relative, where, line=True)
            if not _SLUG.match(step_id):
                raise self.fail(relative, f"{where}id", "must be a slug like 'share-roses'")
            if step_id in step_ids:
                raise self.fail(relative, f"{where}id", f"{step_id!r} is used by another step")
            step_ids.add(step_id)
            step_title = self.string(raw, "title", relative, where, line=True)
            invite = self.string(raw, "invite", relative, where)
            advance = raw.get("advance")
            if advance == "each":
                step_advance: Literal["each", "any"] = "each"
            elif advance == "any":
                step_advance = "any"
            else:
                raise self.fail(relative, f"{where}advance", "must be 'each' or 'any'")
            plain = {
                "title": step_title,
                "invite": invite,
                # Exercise texts shown to people are reviewed with every step that uses them.
                "exercise_title": title,
                "exercise_summary": summary,
            }
            if exercise_id == CHALLENGE_EXERCISE_ID:
                plain["challenge_activities"] = challenge_text
            template = self.template(
                raw,
                relative,
                template_id=f"{exercise_id}.{step_id}",
                where=where,
                shared={"scripted": self.string(raw, "scripted", relative, where)},
                plain=plain,
                allowed=allowed,
            )
            steps.append(
                Step(
                    id=step_id,
                    title=step_title,
                    invite=invite,
                    advance=step_advance,
                    template=template,
                )
            )
        return Exercise(
            id=exercise_id,
            title=title,
            summary=summary,
            mode=exercise_mode,
            duration=duration,
            cadence=cadence,
            steps=tuple(steps),
        )


def _challenge_text(phases: Iterable[ChallengePhase], days: Iterable[ChallengeDay]) -> str:
    """The whole challenge as plain text, reviewed with the challenge's step templates."""
    lines: list[str] = []
    for phase in phases:
        lines.append(
            f"Phase {phase.number} (days {phase.first_day}-{phase.last_day}): {phase.title}. {phase.summary}"
        )
    for day in days:
        lines.append(f"Day {day.day}. Emotional: {day.emotional} Physical: {day.physical}")
    return "\n".join(lines)


def load_catalog(prompts_dir: Path) -> Catalog:
    """Load, check and compile every template in ``prompts_dir``."""
    prompts_dir = Path(prompts_dir)
    if not prompts_dir.is_dir():
        raise CatalogError(f"{prompts_dir}: the prompts folder does not exist")
    loader = _Loader(prompts_dir)
    system = loader.simple_template("system.yaml", expected_id="system", allowed=SYSTEM_VARIABLES)
    phases, days = loader.challenge()
    challenge_text = _challenge_text(phases, days)
    exercises = {
        exercise_id: loader.exercise(exercise_id, challenge_text) for exercise_id in loader.exercise_order()
    }
    rewrite = loader.rewrite()
    classifier = loader.simple_template(
        "safety/classifier.yaml", expected_id="safety.classifier", allowed=frozenset()
    )
    help_templates = loader.help()
    return Catalog(
        prompts_dir=prompts_dir,
        system=system,
        exercises=exercises,
        rewrite=rewrite,
        classifier=classifier,
        help=help_templates,
        phases=phases,
        days=days,
        environment=loader.environment,
        compiled=loader.compiled,
    )
