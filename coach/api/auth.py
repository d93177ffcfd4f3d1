"""Partner authentication: ``Authorization: Bearer <token>``; tokens are stored hashed."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from coach.api.problems import Problem
from coach.records import Couple, Partner
from coach.store import Store


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
    partner = await store.partner_by_token(token)
    if partner is None:
        raise Problem(
            "unauthorized",
            "This token is not valid (it may have been deleted).",
            headers={"WWW-Authenticate": 'Bearer realm="coach", error="invalid_token"'},
        )
    return partner


async def current_couple(partner: NamedDependency[Partner], store: NamedDependency[Store]) -> Couple:
    couple = await store.get_couple(partner.couple_id)
    if couple is None:
        raise Problem("unauthorized", "This partner's couple no longer exists.")
    return couple
