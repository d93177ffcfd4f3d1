"""Signing in reads the token's partner and couple in one round trip."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from coach.store import Store


@pytest.mark.parametrize("backend", ["redis-server", "fakeredis"])
async def test_sign_in_finds_partner_and_couple_or_nothing(backend: str, redis_client: Any) -> None:
    client = redis_client if backend == "redis-server" else fakeredis.FakeAsyncRedis(decode_responses=True)
    store = Store(client, retention_seconds=600)
    couple, partner, token = await store.create_couple(country="GB", display_name="Sam")
    found = await store.sign_in(token)
    assert found is not None
    assert found[0].id == partner.id and found[0].display_name == "Sam"
    assert found[1] is not None and found[1].id == couple.id and found[1].country == "GB"
    assert await store.sign_in(token + "x") is None
    await client.delete(store.k("couple", couple.id))
    assert await store.sign_in(token) == (found[0], None)  # the API answers 401 for this
    await client.delete(store.k("partner", partner.id))
    assert await store.sign_in(token) is None
