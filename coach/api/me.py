"""Data rights: export everything about this partner; delete this partner."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_204_NO_CONTENT

from coach.api.problems import problem_responses
from coach.records import Couple, Partner
from coach.store import Store


class MeController(Controller):
    path = "/v1/me"
    tags = ["me"]
    security = [{"bearer": []}]

    @get("/export", summary="All of this partner's data, as JSON", responses=problem_responses(401))
    async def export(
        self,
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
    ) -> dict[str, Any]:
        sessions = []
        for session in await store.list_sessions(couple.id):
            if not session.visible_for(partner.id):
                continue
            turns = [t for t in await store.list_turns(session.id) if t.visible_to in (None, partner.id)]
            sessions.append(
                {
                    "session": msgspec.to_builtins(session),
                    "turns": [msgspec.to_builtins(t) for t in turns],
                }
            )
        progress = await store.get_challenge(couple.id)
        return {
            "partner": msgspec.to_builtins(partner),
            "couple": {
                "id": couple.id,
                "country": couple.country,
                "partners": len(couple.partner_ids),
            },
            "sessions": sessions,
            "challenge": msgspec.to_builtins(progress) if progress else None,
        }

    @delete(
        "/",
        status_code=HTTP_204_NO_CONTENT,
        summary="Erase this partner (and the couple's data once both have left)",
        responses=problem_responses(401),
    )
    async def erase(self, partner: NamedDependency[Partner], store: NamedDependency[Store]) -> None:
        await store.erase_partner(partner)
