"""The 30-day reconnection challenge: which day a couple is on, their choices and streak.

The day advances when the couple completes it (momentum, not the calendar): one day can be
completed per calendar day. The streak counts consecutive calendar days with a completed
day, ending today or yesterday; missed days are calendar days since the start, before
today, with nothing completed.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from coach.catalog import Catalog
from coach.records import ChallengeProgress

DAYS = 30


class ChallengeState(msgspec.Struct, kw_only=True):
    day: int
    finished: bool
    completed_days: int
    streak: int
    missed_days: int
    done_today: bool


class AlreadyDoneToday(Exception):
    pass


class ChallengeFinished(Exception):
    pass


class WrongDay(Exception):
    def __init__(self, expected: int) -> None:
        super().__init__(f"today is day {expected}")
        self.expected = expected


def start(couple_id: str, today: dt.date) -> ChallengeProgress:
    return ChallengeProgress(couple_id=couple_id, started_on=today.isoformat())


def state(progress: ChallengeProgress, today: dt.date) -> ChallengeState:
    done_dates = {dt.date.fromisoformat(d) for d in progress.completed_on.values()}
    completed = len(progress.completed)
    streak = 0
    cursor = today if today in done_dates else today - dt.timedelta(days=1)
    while cursor in done_dates:
        streak += 1
        cursor -= dt.timedelta(days=1)
    started = dt.date.fromisoformat(progress.started_on)
    elapsed = max(0, (today - started).days)
    missed = sum(1 for i in range(elapsed) if started + dt.timedelta(days=i) not in done_dates)
    finished = completed >= DAYS
    return ChallengeState(
        day=min(DAYS, completed + 1),
        finished=finished,
        completed_days=completed,
        streak=streak,
        missed_days=0 if finished else missed,
        done_today=today in done_dates,
    )


def complete(progress: ChallengeProgress, day: int, choice: str, today: dt.date) -> None:
    current = state(progress, today)
    if current.finished:
        raise ChallengeFinished
    if current.done_today:
        raise AlreadyDoneToday
    if day != current.day:
        raise WrongDay(current.day)
    progress.completed[str(day)] = choice
    progress.completed_on[str(day)] = today.isoformat()


def activities(catalog: Catalog, day: int) -> tuple[int, str, str, str]:
    """(phase, phase title, emotional activity, physical activity) of a day."""
    entry = catalog.days[day - 1]
    phase = next(p for p in catalog.phases if p.number == entry.phase)
    return entry.phase, phase.title, entry.emotional, entry.physical
