"""The learned safety stage in the service: ``safety.learned`` behind the classifier protocol.

On by default (``COACH_SAFETY_LEARNED``). For each inbound message the lexicon did not
already find at danger (``safety.stage_applies``), ``Coach.check_inbound`` asks this stage
first (a few ms of CPU, local) and then, if still no disclosure and it is on, the model
classifier. With ``COACH_SAFETY_LEARNED_LOWERS`` on (the default since round
thirty-eight) it is asked about every inbound message and may also lower a lexicon
verdict it is sure about
(``safety.lower``; docs/safety.md). With ``COACH_SAFETY_LEARNED_EXIT`` (on by default)
and an exit named in settings.json (none since round twenty-five) an ordinary message
leaves after the exit's layer when the exit head there is sure of it - except a message
it may lower, which is scored in full.

The stage runs in its own small thread pool, never on the event loop; a failure while
classifying is logged (without the text) and returns ``None`` - the lexicon verdict
stands. If the stage cannot load at startup (encoder not built, bad files), the app logs
an error and runs on the lexicon alone; ``/readyz`` reports ``safety_learned:
"unavailable"``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from safety import Classification
from safety.learned import LearnedStage, LearnedStageUnavailable

log = logging.getLogger("coach.safety")

#: Threads classifying at once: each uses one onnxruntime thread, so this bounds the CPU.
WORKERS = 2

LearnedStatus = Literal["on", "off", "unavailable"]


@functools.cache
def load_stage(model_dir: Path, lowers: bool = False, early_exit: bool = True) -> LearnedStage:
    """One loaded stage per folder (and lowering and exit choice) per process (it is
    read-only and thread-safe)."""
    return LearnedStage.load(model_dir, lowers=lowers, early_exit=early_exit)


class LearnedClassifier:
    """``classify(text)``: the learned stage's classification, or ``None`` on any failure.
    ``lowers``: whether its classifications can be ``clear`` (``COACH_SAFETY_LEARNED_LOWERS``)."""

    def __init__(self, stage: LearnedStage, *, workers: int = WORKERS) -> None:
        self.stage = stage
        self.lowers = stage.t_lower is not None
        #: whether an ordinary message may leave the encoder early (``COACH_SAFETY_LEARNED_EXIT``)
        self.exits = stage.exit is not None
        self.stamp = f"learned.{stage.version}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="safety-learned")

    async def classify(self, text: str, *, full: bool = False) -> Classification | None:
        """``full``: no early exit (``safety.needs_full_score``)."""
        loop = asyncio.get_running_loop()
        try:
            call = functools.partial(self.stage.classify, text, full=full)
            return await loop.run_in_executor(self._pool, call)
        except Exception:
            log.exception("the learned safety stage failed; the lexicon verdict stands")
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_learned(
    enabled: bool, model_dir: Path, lowers: bool = True, early_exit: bool = True
) -> tuple[LearnedClassifier | None, LearnedStatus]:
    """The stage when on and loadable; a load failure is logged and leaves the lexicon alone.
    ``lowers`` and ``early_exit`` default to the coach's own defaults (coach/settings.py)."""
    if not enabled:
        return None, "off"
    try:
        stage = load_stage(Path(model_dir).resolve(), lowers, early_exit)
    except LearnedStageUnavailable as exc:
        log.error(
            "the learned safety stage is unavailable; only the lexicon scans (%s)",
            exc,
            extra={"event": "safety_learned_unavailable"},
        )
        return None, "unavailable"
    return LearnedClassifier(stage), "on"
