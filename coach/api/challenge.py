"""The 30-day challenge: progress, the day's two activities, completing a day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from coach import challenge
from coach.api.problems import Problem, problem_responses
from coach.api.schemas import ChallengeChoice, ChallengeDayOut, ChallengeOut
from coach.catalog import CHALLENGE_EXERCISE_ID, Catalog
from coach.conversation import Coach
from coach.records import ChallengeProgress, Couple
from coach.store import Store

Today = Callable[[], dt.date]


def challenge_out(progress: ChallengeProgress, catalog: Catalog, today: dt.date) -> ChallengeOut:
    st = challenge.state(progress, today)
    phase, phase_title, emotional, physical = challenge.activities(catalog, st.day)
    return ChallengeOut(
        started_on=progress.started_on,
        day=st.day,
        finished=st.finished,
        completed_days=st.completed_days,
        streak=st.streak,
        missed_days=st.missed_days,
        choices=dict(progress.completed),
        done_today=st.done_today,
        today=ChallengeDayOut(
            day=st.day, phase=phase, phase_title=phase_title, emotional=emotional, physical=physical
        ),
    )


def check_servable(coach: Coach) -> None:
    """The day's activities are reviewed with the challenge exercise's steps: served only
    when that exercise is (every step approved, or drafts allowed)."""
    if CHALLENGE_EXERCISE_ID not in coach.servable_exercises():
        raise Problem("not-approved", "The 30-day challenge is not available until a counselor approves it.")


class ChallengeController(Controller):
    path = "/v1/challenge"
    tags = ["challenge"]
    security = [{"bearer": []}]

    @post(
        "/",
        summary="Start the 30-day challenge (returns the progress if already started)",
        status_code=HTTP_201_CREATED,
        responses={
            200: ResponseSpec(
                ChallengeOut, description="Already started: the progress", generate_examples=False
            ),
            **problem_responses(401, 404, 409),
        },
    )
    async def start(
        self,
        couple: NamedDependency[Couple],
        coach: NamedDependency[Coach],
        store: NamedDependency[Store],
        catalog: NamedDependency[Catalog],
        today: NamedDependency[Today],
    ) -> Response[ChallengeOut]:
        check_servable(coach)
        progress = await store.get_challenge(couple.id)
        status = HTTP_200_OK
        if progress is None:
            progress = challenge.start(couple.id, today())
            await store.save_challenge(progress)
            status = HTTP_201_CREATED
        return Response(challenge_out(progress, catalog, today()), status_code=status)

    @get(
        "/",
        summary="Progress: day, choices, streak, missed days, today's activities",
        responses=problem_responses(401, 404),
    )
    async def show(
        self,
        couple: NamedDependency[Couple],
        coach: NamedDependency[Coach],
        store: NamedDependency[Store],
        catalog: NamedDependency[Catalog],
        today: NamedDependency[Today],
    ) -> ChallengeOut:
        check_servable(coach)
        progress = await store.get_challenge(couple.id)
        if progress is None:
            raise Problem("not-found", "The challenge has not been started.")
        return challenge_out(progress, catalog, today())

    @post(
        "/days/{day:int}",
        status_code=HTTP_200_OK,
        summary="Complete a day with a choice",
        responses=problem_responses(401, 404, 409, 413),
    )
    async def complete(
        self,
        day: FromPath[int],
        data: JSONBody[ChallengeChoice],
        couple: NamedDependency[Couple],
        coach: NamedDependency[Coach],
        store: NamedDependency[Store],
        catalog: NamedDependency[Catalog],
        today: NamedDependency[Today],
    ) -> ChallengeOut:
        check_servable(coach)
        progress = await store.get_challenge(couple.id)
        if progress is None:
            raise Problem("not-found", "The challenge has not been started.")
        try:
            challenge.complete(progress, day, data.choice, today())
        except challenge.AlreadyDoneToday:
            raise Problem("conflict", "Today's activity is already done; come back tomorrow.") from None
        except challenge.ChallengeFinished:
            raise Problem("conflict", "All 30 days are done.") from None
        except challenge.WrongDay as exc:
            raise Problem("conflict", f"Today is day {exc.expected}.", day=exc.expected) from None
        await store.save_challenge(progress)
        return challenge_out(progress, catalog, today())
