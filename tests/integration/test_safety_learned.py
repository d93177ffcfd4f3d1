"""The learned safety stage through the HTTP API: a message only it catches becomes a private
disclosure (help to its author, nothing for the other partner, no model call); with
``COACH_SAFETY_LEARNED`` off the same message goes to the model; a stage that cannot load
leaves the lexicon alone and ``/readyz`` says so. Needs `make model`."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import respx
from litestar.testing import AsyncTestClient

from coach.learned import LearnedClassifier, make_learned
from coach.store import Store
from safety import POLICY_VERSION, scan
from safety.learned import DEFAULT_MODEL_DIR
from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, upstream_client
from tests.integration.test_safety_classifier import coach_logs, logged_text

COMPLETIONS = f"{UPSTREAM}/chat/completions"
# The lexicon finds nothing here (checked below); the learned stage says risk.
ISOLATED = "He says my friends are trouble so I stopped seeing them, it is easier that way."


def test_the_example_is_missed_by_the_lexicon() -> None:
    assert scan(ISOLATED).severity.value == "none"


async def _post(app: Any, text: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    async with AsyncTestClient(app=app) as client:
        c = await new_couple(client, country="GB")
        sid = (
            await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])
        ).json()["session_id"]
        url = f"/v1/sessions/{sid}/messages"
        r = await client.post(url, json={"text": text}, headers=c["a"])
        assert r.status_code == 201, r.text
        mine = (await client.get(url, headers=c["a"])).json()["messages"]
        theirs = (await client.get(url, headers=c["b"])).json()["messages"]
        ready = (await client.get("/readyz")).json()
    return {**r.json(), "ready": ready}, mine, theirs


async def test_a_message_only_the_learned_stage_catches_is_a_private_disclosure(
    make_app: AppFactory, redis_client: Any
) -> None:
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        app = make_app(model=upstream_client(), safety_learned=True)
        with coach_logs() as records:
            body, mine, theirs = await _post(app, ISOLATED)
    assert coach.requests == []  # no model call at all
    # lowering is on by default since round thirty-eight; the stage's raise is no lexicon alarm
    assert body["ready"]["safety_learned"] == "on" and body["ready"]["safety_learned_lowers"] is True
    # the setting is on by default, but since round twenty-five no exit is served
    assert body["ready"]["safety_learned_exit"] is False
    reply = body["reply"]
    assert body["message"]["private"] is True and reply["private"] is True
    assert reply["safety"]["severity"] == "risk"
    assert reply["safety"]["categories"] == []  # the stage names none: the generic help message
    assert reply["template"]["id"] == "help.risk"
    # help lines for GB: with no category, both the abuse line and the crisis line
    kinds = [r["kind"] for r in reply["safety"]["resources"]]
    assert "domestic_abuse" in kinds and "crisis" in kinds
    assert body["session"]["status"] == "paused"
    assert ISOLATED in [m["text"] for m in mine]
    assert ISOLATED not in [m["text"] for m in theirs]
    assert [m["kind"] for m in theirs] == ["notice"]
    raised = [rec for rec in records if getattr(rec, "event", None) == "safety_raised"]
    assert [(rec.stage, rec.lexicon_severity, rec.severity) for rec in raised] == [
        ("learned", "none", "risk")
    ]
    assert "friends are trouble" not in logged_text(records)
    # the stamp names the heads that judged it, after the lexicon's policy version
    stamp = reply["safety"]["policy_version"]
    assert re.fullmatch(re.escape(POLICY_VERSION) + r"\+learned\.[0-9a-f]{10}", stamp)


async def test_with_the_setting_off_the_same_message_goes_to_the_model(
    make_app: AppFactory, redis_client: Any
) -> None:
    coach = Script("Thanks for telling me.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        body, _mine, theirs = await _post(make_app(model=upstream_client(), safety_learned=False), ISOLATED)
    assert len(coach.requests) == 1
    assert body["ready"]["safety_learned"] == "off"
    assert body["message"]["safety"]["severity"] == "none"
    assert body["message"]["safety"]["policy_version"] == POLICY_VERSION  # the lexicon alone judged
    assert body["reply"]["text"] == "Thanks for telling me." and body["reply"]["private"] is False
    assert ISOLATED in [m["text"] for m in theirs]


async def test_a_plain_denial_is_coached_with_the_stage_on(make_app: AppFactory, redis_client: Any) -> None:
    """The issue's own hard negative: "he has never hit me" is none. The stage read it as
    risk (paused session, help, a private message) until round thirty-five: a text that
    says nothing but a negated signal is not put to it."""
    text = "He has never hit me and never would."
    coach = Script("Thanks for telling me.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        body, _mine, theirs = await _post(make_app(model=upstream_client(), safety_learned=True), text)
    assert body["ready"]["safety_learned"] == "on" and len(coach.requests) == 1
    assert body["message"]["safety"]["severity"] == "none" and body["message"]["private"] is False
    assert body["reply"]["text"] == "Thanks for telling me." and body["session"]["status"] != "paused"
    assert text in [m["text"] for m in theirs]


async def test_with_the_exit_off_the_stage_still_catches_and_readyz_says_so(
    make_app: AppFactory, redis_client: Any
) -> None:
    """COACH_SAFETY_LEARNED_EXIT=false: every message runs the whole encoder. Since round
    twenty-five settings.json names no exit, so the setting changes nothing: the same
    catch, the same stamp (tests/unit/safety/test_safety_learned_exit.py tests an exit)."""
    coach = Script()
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        body, _mine, theirs = await _post(
            make_app(model=upstream_client(), safety_learned=True, safety_learned_exit=False), ISOLATED
        )
    assert coach.requests == []
    assert body["ready"]["safety_learned"] == "on" and body["ready"]["safety_learned_exit"] is False
    assert body["reply"]["safety"]["severity"] == "risk" and body["reply"]["private"] is True
    assert ISOLATED not in [m["text"] for m in theirs]
    served, whole = (make_learned(True, DEFAULT_MODEL_DIR, early_exit=e)[0] for e in (True, False))
    assert served is not None and whole is not None and not served.exits and not whole.exits
    stamp = body["reply"]["safety"]["policy_version"]
    assert whole.stamp == served.stamp and whole.stamp in stamp


async def test_a_stage_that_cannot_load_leaves_the_lexicon_and_readyz_says_so(
    make_app: AppFactory, redis_client: Any, tmp_path: Path
) -> None:
    coach = Script("Thanks for telling me.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        app = make_app(model=upstream_client(), safety_learned=True, safety_model_dir=tmp_path)
        body, _mine, _theirs = await _post(app, ISOLATED)
    assert body["ready"]["status"] == "ready" and body["ready"]["safety_learned"] == "unavailable"
    assert body["message"]["safety"]["severity"] == "none" and len(coach.requests) == 1
    with coach_logs() as records:  # building an app resets the handlers: log the load again
        assert make_learned(True, tmp_path) == (None, "unavailable")
    [record] = [rec for rec in records if getattr(rec, "event", None) == "safety_learned_unavailable"]
    assert record.levelno == logging.ERROR and "learned_build" in record.getMessage()


async def test_a_rewrite_request_only_the_learned_stage_flags_gets_help_not_a_rewrite(
    make_app: AppFactory, redis_client: Any
) -> None:
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        async with AsyncTestClient(app=make_app(model=upstream_client(), safety_learned=True)) as client:
            c = await new_couple(client)
            r = await client.post("/v1/rewrite", json={"text": ISOLATED}, headers=c["a"])
            assert r.status_code == 200, r.text
            body = r.json()
    assert body["rewrite"] is None and body["help"]
    assert body["safety"]["severity"] == "risk"
    assert coach.requests == []


async def test_the_learned_stage_runs_while_the_endpoint_reads_the_session(
    make_app: AppFactory, redis_client: Any, monkeypatch: Any
) -> None:
    """The stage's encoder (milliseconds) starts as soon as the message is read, so the
    session read and the turn's claim wait on Redis at the same time as it; the verdict
    is the same (a private disclosure, no model call)."""
    order: list[str] = []
    stage_classify, read = LearnedClassifier.classify, Store.session_with_names

    async def classify(self: LearnedClassifier, text: str, *, full: bool = False) -> Any:
        order.append("stage starts")
        return await stage_classify(self, text, full=full)

    async def session_with_names(self: Store, *args: Any) -> Any:
        got = await read(self, *args)
        order.append("session read")
        return got

    monkeypatch.setattr(LearnedClassifier, "classify", classify)
    monkeypatch.setattr(Store, "session_with_names", session_with_names)
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        body, _mine, theirs = await _post(make_app(model=upstream_client(), safety_learned=True), ISOLATED)
    assert order == ["stage starts", "session read"]
    assert body["reply"]["safety"]["severity"] == "risk" and coach.requests == []
    assert ISOLATED not in [m["text"] for m in theirs]


# A figure of speech the lexicon raises to danger and the served encoder is sure about
# (tests/unit/safety/test_safety_lowering.py), which stays a danger all the same; one the
# lexicon raises to risk and the encoder is sure about, which with lowering on is held for
# its author (tests/integration/test_safety_held.py); and a disclosure it is not sure about.
TOASTER = "Our toaster is going to die by my hand this morning, third burnt slice in a row."
CUPBOARD = (
    "I feel annoyed when you leave cupboard doors open because I keep hitting my head on them. "
    "I have a bruise the shape of the spice rack."
)
NECK = "He put his hands around my neck last night and squeezed until I saw stars."


async def _assert_a_private_alarm(app: Any, text: str) -> None:
    """``text`` is answered with help at danger, no model call, hidden from the partner."""
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        body, _mine, theirs = await _post(app, text)
    assert coach.requests == [] and body["reply"]["safety"]["severity"] == "danger"
    assert body["message"]["private"] is True and body["session"]["status"] == "paused"
    assert text not in [m["text"] for m in theirs]


async def test_with_lowering_off_the_same_figure_of_speech_stays_a_private_alarm(
    make_app: AppFactory, redis_client: Any
) -> None:
    app = make_app(model=upstream_client(), safety_learned=True, safety_learned_lowers=False)
    await _assert_a_private_alarm(app, TOASTER)


async def test_with_lowering_on_a_danger_figure_of_speech_still_pauses_as_a_private_alarm(
    make_app: AppFactory, redis_client: Any
) -> None:
    """The stage is sure the toaster is nothing, but a danger is never lowered."""
    app = make_app(model=upstream_client(), safety_learned=True, safety_learned_lowers=True)
    await _assert_a_private_alarm(app, TOASTER)


async def test_with_lowering_on_a_disclosure_stays_private(make_app: AppFactory, redis_client: Any) -> None:
    app = make_app(model=upstream_client(), safety_learned=True, safety_learned_lowers=True)
    await _assert_a_private_alarm(app, NECK)
