"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from coach.api.problems import problem_response, problem_responses
from coach.api.schemas import Health
from coach.model import ResilientClient
from coach.store import Store


@get("/healthz", tags=["health"], summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", tags=["health"], summary="Readiness: the store answers", responses=problem_responses())
async def readyz(
    store: NamedDependency[Store],
    model: NamedDependency[ResilientClient],
    safety_learned: NamedDependency[str],
    safety_learned_lowers: NamedDependency[bool],
    safety_learned_exit: NamedDependency[bool],
) -> Response[Any]:
    try:
        await asyncio.wait_for(store.ping(), 2.0)
    except Exception:
        return problem_response(
            503,
            "store-unavailable",
            "The store is unavailable",
            "The store did not answer.",
            "/readyz",
            {"Retry-After": "2"},
        )
    primary = model.primary
    breaker = getattr(primary, "breaker", None)
    return Response(
        Health(
            status="ready",
            store="ok",
            model=model.name,
            breaker=breaker.state if breaker is not None else None,
            safety_learned=safety_learned,
            safety_learned_lowers=safety_learned_lowers,
            safety_learned_exit=safety_learned_exit,
        )
    )
