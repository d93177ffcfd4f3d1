"""Couples: the first partner creates the couple, the second joins with the invite code."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from coach.api.idempotency import Claim, idempotent
from coach.api.problems import Problem, problem_responses
from coach.api.schemas import CoupleCreated, CoupleJoined, CreateCouple, JoinCouple
from coach.settings import Settings
from coach.store import Store


def client_scope(request: Request[Any, Any, Any]) -> str:
    host = request.client.host if request.client else "unknown"
    return f"anon:{host}"


class CoupleController(Controller):
    path = "/v1/couples"
    tags = ["couples"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a couple (the first partner)",
        responses={
            201: ResponseSpec(CoupleCreated, description="CoupleCreated", generate_examples=False),
            **problem_responses(413),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreateCouple],
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
    ) -> Response[bytes]:
        country = (data.country or settings.default_country).upper()

        async def run(_: Claim | None) -> tuple[int, CoupleCreated]:
            couple, partner, token = await store.create_couple(
                country=country, display_name=data.display_name
            )
            assert couple.invite_code is not None
            return 201, CoupleCreated(
                couple_id=couple.id,
                partner_id=partner.id,
                token=token,
                invite_code=couple.invite_code,
            )

        return await idempotent(request, store, client_scope(request), run)

    @post(
        "/join",
        status_code=HTTP_201_CREATED,
        summary="Join a couple with its invite code",
        responses={
            201: ResponseSpec(CoupleJoined, description="CoupleJoined", generate_examples=False),
            **problem_responses(404, 409, 413),
        },
    )
    async def join(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[JoinCouple],
        store: NamedDependency[Store],
    ) -> Response[bytes]:
        async def run(_: Claim | None) -> tuple[int, CoupleJoined]:
            joined = await store.join_couple(invite_code=data.invite_code, display_name=data.display_name)
            if joined is None:
                raise Problem("not-found", "This invite code is not valid or was already used.")
            couple, partner, token = joined
            return 201, CoupleJoined(couple_id=couple.id, partner_id=partner.id, token=token)

        return await idempotent(request, store, client_scope(request), run)
