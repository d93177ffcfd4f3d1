"""Partner authentication: ``Authorization: Bearer <token>``; tokens are stored hashed."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from coach.api.problems import Problem
from coach.records import Couple, Partner
from coach.store import Store

_COUPLE = "coach_couple"


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def current_partner(request: Request[Any, Any, Any], store: NamedDependency[Store]) -> Partner:
    token = bearer_token(request)
    if token is None:
        raise Problem(
            "unauthorized",
            "Send Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": 'Bearer realm="coach"'},
        )
    found = await store.sign_in(token)
    if found is None:
        raise Problem(
            "unauthorized",
            "This token is not valid (it may have been deleted).",
            headers={"WWW-Authenticate": 'Bearer realm="coach", error="invalid_token"'},
        )
    partner, couple = found
    request.state[_COUPLE] = couple  # read with the partner: current_couple needs no round trip
    return partner


async def current_couple(
    request: Request[Any, Any, Any], partner: NamedDependency[Partner], store: NamedDependency[Store]
) -> Couple:
    couple: Couple | None = request.state.get(_COUPLE)
    if couple is None or couple.id != partner.couple_id:
        couple = await store.get_couple(partner.couple_id)
    if couple is None:
        raise Problem("unauthorized", "This partner's couple no longer exists.")
    return couple
