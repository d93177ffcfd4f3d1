"""Model replies: self-harm means, victim blaming, reconciliation after a disclosure."""

from __future__ import annotations

import pytest

from safety import ScanContext, Severity, scan, scan_reply


@pytest.mark.parametrize(
    "reply",
    [
        "What did you do to provoke him?",
        "Maybe try not to upset her when she has been drinking.",
        "It takes two, so both of you are responsible here.",
    ],
)
def test_victim_blaming_is_unsafe(reply: str) -> None:
    v = scan_reply(reply)
    assert v.severity.rank >= Severity.RISK.rank
    assert "unsafe_reply" in v.categories


@pytest.mark.parametrize(
    "reply",
    [
        "A lethal dose would be around twenty of those.",
        "The most painless way to die is something people ask about a lot.",
        "You could tie a noose from a bedsheet.",
    ],
)
def test_self_harm_means_are_danger(reply: str) -> None:
    v = scan_reply(reply)
    assert v.severity is Severity.DANGER
    assert "unsafe_reply" in v.categories


@pytest.mark.parametrize(
    "reply",
    [
        "It might help to talk it through together tonight.",
        "Try the honesty hour with him this weekend.",
        "Maybe give him another chance, people can change.",
        "Couples counseling could help you both.",
    ],
)
def test_reconciliation_only_after_a_disclosure(reply: str) -> None:
    assert scan_reply(reply, after_disclosure=False).severity is Severity.NONE
    v = scan_reply(reply, after_disclosure=True)
    assert v.severity.rank >= Severity.RISK.rank
    assert "unsafe_reply" in v.categories


def test_reply_that_carries_abuse_signals_is_unsafe() -> None:
    v = scan("Sometimes I want to kill myself.", ScanContext(source="reply"))
    assert v.severity is Severity.DANGER
    assert "unsafe_reply" in v.categories and "self_harm" in v.categories


@pytest.mark.parametrize(
    "reply",
    [
        "Thank you for telling me. You deserve to be safe, and none of this is your fault.",
        "If you are in danger right now, please call 911. Are you safe to talk right now?",
        "That sounds like a lovely plan for your anniversary, enjoy it together.",
        "Take all the time you need; nothing you write here is shown to your partner.",
    ],
)
def test_safe_replies_pass(reply: str) -> None:
    assert scan_reply(reply, after_disclosure=True).severity.rank < Severity.RISK.rank
