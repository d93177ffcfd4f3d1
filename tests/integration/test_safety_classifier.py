"""The optional second safety stage through the HTTP API: a model classifier that can only
raise a message's severity, whose failure never blocks a turn, and that is off by default."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import AsyncTestClient

from safety import POLICY_VERSION
from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, upstream_client

COMPLETIONS = f"{UPSTREAM}/chat/completions"
# The lexicon finds nothing in this (checked below); a person reading it would worry.
VEILED_THREAT = "He told me tonight would be my last night on earth, and he meant it."
EGGSHELLS = "I feel like I am walking on eggshells around him all the time."  # lexicon: concern
STRANGLED = "Last night he put his hands around my throat and squeezed until I couldn't breathe."
DANGER = '{"severity": "danger", "categories": ["threats"]}'
NONE = '{"severity": "none", "categories": []}'


class Upstream:
    """One fake model API: classifier requests and coaching requests each get their own script."""

    def __init__(self, classifier: Script, coach: Script) -> None:
        self.classifier = classifier
        self.coach = coach

    def __call__(self, request: httpx.Request) -> Any:
        first = json.loads(request.content)["messages"][0]["content"]
        if first.startswith("You are the safety classifier"):
            return self.classifier(request)
        return self.coach(request)


@contextmanager
def coach_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record the coach logs (its handler is set when the app is built)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("coach")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def logged_text(records: list[logging.LogRecord]) -> str:
    return " ".join(json.dumps(vars(r), default=str) for r in records)


def app_with_classifier(make_app: AppFactory, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "safety_learned": False,  # these tests are about the model stage; the learned one would catch
        "safety_classifier": True,
        "safety_classifier_timeout": 1.0,
        "model_base_url": UPSTREAM,
        "model_api_key": "test-key",
    }
    settings.update(overrides)
    return make_app(model=upstream_client(), **settings)


async def start(client: AsyncTestClient[Any], c: dict[str, Any], exercise: str = "rose-bud-thorn") -> str:
    r = await client.post("/v1/sessions", json={"exercise_id": exercise}, headers=c["a"])
    return str(r.json()["session_id"])


def test_the_examples_are_what_the_lexicon_says() -> None:
    from safety import scan

    assert scan(VEILED_THREAT).severity.value == "none"
    assert scan(EGGSHELLS).severity.value == "concern"
    assert scan(STRANGLED).severity.value == "danger"


async def test_the_classifier_makes_a_missed_threat_a_private_disclosure(
    make_app: AppFactory, redis_client: Any
) -> None:
    classifier, coach = Script(DANGER), Script("Thanks for sharing your rose.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        app = app_with_classifier(make_app)
        with coach_logs() as records:  # after the app is built: building it sets the handlers
            async with AsyncTestClient(app=app) as client:
                c = await new_couple(client, country="GB")
                sid = await start(client, c)
                url = f"/v1/sessions/{sid}/messages"
                r = await client.post(url, json={"text": VEILED_THREAT}, headers=c["a"])
                assert r.status_code == 201, r.text
                body = r.json()
                reply = body["reply"]
                assert reply["private"] is True and body["message"]["private"] is True
                assert reply["safety"]["severity"] == "danger"
                assert "threats" in reply["safety"]["categories"]
                assert reply["template"]["id"].startswith("help.")
                assert reply["safety"]["resources"][0]["phone"] == "999"
                stamp = reply["safety"]["policy_version"]
                assert re.fullmatch(re.escape(POLICY_VERSION) + r"\+classifier\.[\w.]+@[0-9a-f]+", stamp)
                assert body["session"]["status"] == "paused"
                theirs = (await client.get(url, headers=c["b"])).json()["messages"]
                assert VEILED_THREAT not in [m["text"] for m in theirs]
                assert [m["kind"] for m in theirs] == ["notice"]
    assert coach.requests == []  # the coaching model never saw the message
    raised = [rec for rec in records if getattr(rec, "event", None) == "safety_raised"]
    assert [(rec.lexicon_severity, rec.severity) for rec in raised] == [("none", "danger")]
    assert "last night on earth" not in logged_text(records)
    sent = json.loads(classifier.requests[0].content)
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == VEILED_THREAT
    assert VEILED_THREAT not in sent["messages"][0]["content"]
    assert sent["response_format"]["type"] == "json_schema"


async def test_a_classifier_that_says_none_cannot_clear_a_concern(
    make_app: AppFactory, redis_client: Any
) -> None:
    classifier, coach = Script(NONE), Script("That sounds tiring.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        async with AsyncTestClient(app=app_with_classifier(make_app)) as client:
            c = await new_couple(client)
            sid = await start(client, c, "evening-check-in")
            r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": EGGSHELLS}, headers=c["a"])
            assert r.status_code == 201, r.text
            assert r.json()["message"]["safety"]["severity"] == "concern"
            assert r.json()["reply"]["text"] == "That sounds tiring."
            mine = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["a"])).json()["messages"]
            assert [m["kind"] for m in mine].count("notice") == 1  # the private counselor pointer
    assert len(classifier.requests) == 1


async def test_a_lexicon_disclosure_does_not_wait_for_the_classifier(
    make_app: AppFactory, redis_client: Any
) -> None:
    classifier, coach = Script(), Script()  # either one raises if asked
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        async with AsyncTestClient(app=app_with_classifier(make_app)) as client:
            c = await new_couple(client)
            sid = await start(client, c)
            r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": STRANGLED}, headers=c["a"])
            assert r.status_code == 201, r.text
            assert r.json()["reply"]["safety"]["severity"] == "danger"
            assert r.json()["reply"]["private"] is True
    assert classifier.requests == [] and coach.requests == []


async def _hang(_request: httpx.Request) -> httpx.Response:
    await asyncio.Event().wait()  # an upstream that never answers; the deadline cancels it
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(_hang, id="timeout"),
        pytest.param("I would rate this message as mostly fine.", id="not-json"),
        pytest.param('{"severity": "catastrophic", "categories": []}', id="unknown-severity"),
        pytest.param(httpx.Response(500, json={"error": {"message": "boom"}}), id="http-500"),
    ],
)
async def test_a_failing_classifier_leaves_the_lexicon_verdict_and_the_turn_completes(
    make_app: AppFactory, redis_client: Any, failure: Any
) -> None:
    # A 500 is retried until the classifier's deadline, so it may be asked more than once.
    classifier = Script(*[failure] * 20)
    coach = Script("Thanks for sharing your rose.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        app = app_with_classifier(make_app, safety_classifier_timeout=0.5)
        with coach_logs() as records:  # after the app is built: building it sets the handlers
            async with AsyncTestClient(app=app) as client:
                c = await new_couple(client)
                sid = await start(client, c)
                r = await client.post(
                    f"/v1/sessions/{sid}/messages", json={"text": "Rose: we cooked together"}, headers=c["a"]
                )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["message"]["safety"]["severity"] == "none"
    assert body["message"]["safety"]["policy_version"] == POLICY_VERSION  # no answer, no stamp
    assert body["reply"]["text"] == "Thanks for sharing your rose."
    assert body["reply"]["model"] == "test-model" and body["reply"]["fallback"] is False
    assert len(classifier.requests) >= 1 and len(coach.requests) == 1
    failed = [rec for rec in records if getattr(rec, "outcome", None) == "failed"]
    assert failed and all(rec.levelno == logging.WARNING for rec in failed)
    assert "cooked together" not in logged_text(records)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"model_base_url": UPSTREAM}, id="off-by-default"),
        pytest.param({"safety_classifier": True}, id="on-without-a-model-api"),
    ],
)
async def test_without_the_setting_or_a_model_api_no_classifier_is_asked(
    make_app: AppFactory, redis_client: Any, overrides: dict[str, Any]
) -> None:
    classifier, coach = Script(), Script("Thanks for sharing your rose.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        app = make_app(model=upstream_client(), safety_learned=False, **overrides)  # it catches this one
        async with AsyncTestClient(app=app) as client:
            c = await new_couple(client)
            sid = await start(client, c)
            r = await client.post(
                f"/v1/sessions/{sid}/messages", json={"text": VEILED_THREAT}, headers=c["a"]
            )
            assert r.status_code == 201, r.text
            assert r.json()["message"]["safety"]["severity"] == "none"
            assert r.json()["reply"]["private"] is False
    assert classifier.requests == [] and len(coach.requests) == 1


async def test_a_rewrite_request_the_classifier_flags_gets_help_not_a_rewrite(
    make_app: AppFactory, redis_client: Any
) -> None:
    classifier, coach = Script(DANGER), Script()
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        async with AsyncTestClient(app=app_with_classifier(make_app)) as client:
            c = await new_couple(client)
            r = await client.post("/v1/rewrite", json={"text": VEILED_THREAT}, headers=c["a"])
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["rewrite"] is None and body["help"]
            assert body["safety"]["severity"] == "danger"
    assert coach.requests == []


async def test_a_dead_classifier_stops_being_asked_once_its_breaker_opens(
    make_app: AppFactory, redis_client: Any
) -> None:
    classifier = Script(*[httpx.Response(500, json={"error": {}})] * 20)
    coach = Script("Thanks for sharing your rose.", "And thanks for your bud.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Upstream(classifier, coach))
        app = app_with_classifier(make_app, breaker_failures=1, safety_classifier_timeout=0.5)
        async with AsyncTestClient(app=app) as client:
            c = await new_couple(client)
            sid = await start(client, c)
            url = f"/v1/sessions/{sid}/messages"
            first = await client.post(url, json={"text": "Rose: we cooked together"}, headers=c["a"])
            asked = len(classifier.requests)
            second = await client.post(url, json={"text": "Bud: a walk on Sunday"}, headers=c["a"])
    assert first.status_code == second.status_code == 201
    # The coaching model (its own breaker) still answers both turns.
    assert [r.json()["reply"]["model"] for r in (first, second)] == ["test-model", "test-model"]
    assert asked >= 1 and len(classifier.requests) == asked
