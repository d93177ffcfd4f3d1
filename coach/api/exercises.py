"""The exercise catalog: approved exercises only, with an ETag."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from coach.api.problems import Problem, problem_responses
from coach.api.schemas import ExerciseList, ExerciseOut
from coach.api.views import exercise_out
from coach.conversation import Coach


def catalog_body(coach: NamedDependency[Coach]) -> tuple[bytes, str]:
    body = ExerciseList(exercises=[exercise_out(e) for e in coach.servable_exercises().values()])
    encoded = msgspec.json.encode(body)
    return encoded, '"' + hashlib.sha256(encoded).hexdigest()[:32] + '"'


class ExerciseController(Controller):
    path = "/v1/exercises"
    tags = ["exercises"]

    @get(
        "/",
        summary="The exercises couples can start (approved only)",
        response_headers=None,
        responses=problem_responses(),
    )
    async def list_exercises(
        self, request: Request[Any, Any, Any], coach: NamedDependency[Coach]
    ) -> Response[ExerciseList]:
        encoded, etag = catalog_body(coach)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(content=msgspec.json.decode(encoded, type=ExerciseList), headers=headers)

    @get("/{exercise_id:str}", summary="One exercise with its steps", responses=problem_responses(404))
    async def show(self, exercise_id: FromPath[str], coach: NamedDependency[Coach]) -> ExerciseOut:
        exercise = coach.servable_exercises().get(exercise_id)
        if exercise is None:
            raise Problem("not-found", f"No exercise {exercise_id!r}.")
        return exercise_out(exercise)
