"""How stored records look to the partner asking: only what this partner may see."""

from __future__ import annotations

import msgspec

from coach.api.schemas import (
    ExerciseOut,
    MessageOut,
    ResourceOut,
    SafetyOut,
    SessionOut,
    StepOut,
    TemplateOut,
)
from coach.catalog import Exercise
from coach.records import COACH, SafetyInfo, Session, Turn


def step_out(exercise: Exercise, index: int) -> StepOut:
    step = exercise.steps[min(index, len(exercise.steps) - 1)]
    return StepOut(
        id=step.id,
        number=index + 1,
        title=step.title,
        invite=step.invite,
        advance=step.advance,
    )


def exercise_out(exercise: Exercise) -> ExerciseOut:
    return ExerciseOut(
        id=exercise.id,
        title=exercise.title,
        summary=exercise.summary,
        mode=exercise.mode,
        duration=exercise.duration,
        cadence=exercise.cadence,
        steps=[step_out(exercise, i) for i in range(len(exercise.steps))],
    )


def session_out(session: Session, exercise: Exercise) -> SessionOut:
    return SessionOut(
        session_id=session.id,
        exercise_id=session.exercise_id,
        mode=session.mode,
        status=session.status,
        step=step_out(exercise, session.step_index),
        step_count=len(exercise.steps),
        day=session.day,
        created_at=session.created_at,
    )


def safety_out(info: SafetyInfo) -> SafetyOut:
    return SafetyOut(
        severity=info.severity,  # type: ignore[arg-type]
        categories=list(info.categories),
        resources=[msgspec.convert(r, ResourceOut) for r in info.resources],
        policy_version=info.policy_version,
    )


def can_see(turn: Turn, viewer: str) -> bool:
    return turn.visible_to is None or turn.visible_to == viewer


def message_out(turn: Turn, viewer: str, names: dict[str, str | None]) -> MessageOut:
    """A turn as ``viewer`` sees it. Safety details are shown only on the viewer's own
    messages and on what was addressed to the viewer alone, never on the other's."""
    own = turn.author == viewer or (turn.author == COACH and turn.visible_to == viewer)
    return MessageOut(
        id=turn.id,
        seq=turn.seq,
        kind=turn.kind,
        author="coach" if turn.author == COACH else "partner",
        text=turn.text,
        created_at=turn.created_at,
        step_id=turn.step_id,
        private=turn.visible_to is not None,
        partner_id=None if turn.author == COACH else turn.author,
        display_name=None if turn.author == COACH else names.get(turn.author),
        mine=turn.author == viewer,
        template=TemplateOut(turn.template.id, turn.template.version) if turn.template else None,
        model=turn.model,
        safety=safety_out(turn.safety) if turn.safety is not None and own else None,
        fallback=turn.fallback,
        replaced=turn.replaced,
        draft=turn.draft,
        in_reply_to=turn.in_reply_to,
        held=turn.held,
        shares=turn.shares,
    )
