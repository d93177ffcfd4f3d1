from __future__ import annotations

import datetime as dt

import pytest

from coach import challenge

D0 = dt.date(2026, 11, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def test_streak_missed_days_and_momentum() -> None:
    p = challenge.start("cpl", D0)
    challenge.complete(p, 1, "emotional", day(0))
    challenge.complete(p, 2, "physical", day(1))
    s = challenge.state(p, day(1))
    assert (s.day, s.streak, s.missed_days, s.done_today) == (3, 2, 0, True)
    # Two days off: the streak breaks, the day does not skip ahead.
    s = challenge.state(p, day(4))
    assert (s.day, s.streak, s.missed_days) == (3, 0, 2)
    challenge.complete(p, 3, "emotional", day(4))
    s = challenge.state(p, day(4))
    assert (s.day, s.streak, s.completed_days) == (4, 1, 3)
    assert p.completed == {"1": "emotional", "2": "physical", "3": "emotional"}


def test_one_day_per_calendar_day_and_the_right_day() -> None:
    p = challenge.start("cpl", D0)
    challenge.complete(p, 1, "emotional", day(0))
    with pytest.raises(challenge.AlreadyDoneToday):
        challenge.complete(p, 2, "emotional", day(0))
    with pytest.raises(challenge.WrongDay):
        challenge.complete(p, 5, "emotional", day(1))


def test_thirty_days_finish() -> None:
    p = challenge.start("cpl", D0)
    for n in range(30):
        challenge.complete(p, n + 1, "physical", day(n))
    s = challenge.state(p, day(30))
    assert s.finished and s.day == 30 and s.completed_days == 30
    with pytest.raises(challenge.ChallengeFinished):
        challenge.complete(p, 30, "physical", day(31))
