"""The learned safety stage in worker processes (``COACH_SAFETY_LEARNED_PROCESSES``, the
default): the workers give the stage's own verdicts; until they are ready, and when one
dies, the server classifies itself, so no message loses the stage's verdict, and new
workers take over; a killed server leaves no worker behind; an app starts its workers at
startup and leaves the shared pool running when it closes. Needs `make model`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import respx
from litestar.testing import AsyncTestClient

from coach.learned import WORKERS, LearnedClassifier, WorkerPool, load_stage, worker_pool
from coach.settings import Settings
from safety import Severity, scan
from safety.learned import DEFAULT_MODEL_DIR, LearnedStage
from tests.conftest import ROOT, UPSTREAM, AppFactory, Script, new_couple, upstream_client
from tests.integration.test_safety_classifier import coach_logs

MODEL_DIR = DEFAULT_MODEL_DIR.resolve()
DANGER = "He held a knife to my throat last night and said next time he will finish it."
# The lexicon finds nothing in ISOLATED (test_safety_learned.py checks it); the stage does.
ISOLATED = "He says my friends are trouble so I stopped seeing them, it is easier that way."
TEXTS = [
    "We planned the weekend together and picked a new recipe to try on Sunday.",
    ISOLATED,
    "I have been thinking that everyone would be better off if I just was not here anymore.",
    DANGER,
    "I have pills saved up and I am going to take them all tonight.",
    "ok",  # under five words: not scored
]
# Generous: the first call may wait for the workers to start (about a second).
TIMEOUT = 30


async def _ready(pool: WorkerPool) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pool.ready():
        assert time.monotonic() < deadline, "the workers never became ready"
        await asyncio.sleep(0.05)


@pytest.fixture
def in_server(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts this process's stage classifies (the workers' are not seen here)."""
    seen: list[str] = []
    stage_classify = LearnedStage.classify

    def classify(self: LearnedStage, text: str) -> Any:
        seen.append(text)
        return stage_classify(self, text)

    monkeypatch.setattr(LearnedStage, "classify", classify)
    return seen


@pytest.fixture(scope="module")
def stage() -> LearnedStage:
    return load_stage(MODEL_DIR)


@pytest.fixture(scope="module")
def learned(stage: LearnedStage) -> LearnedClassifier:
    """On the process's shared pool for the default folder, the one every app here uses."""
    return LearnedClassifier(stage, pool=worker_pool(MODEL_DIR))


async def test_the_workers_give_the_stages_own_verdicts(
    stage: LearnedStage, learned: LearnedClassifier, in_server: list[str]
) -> None:
    expected = [stage.classify(text) for text in TEXTS]
    assert {c.severity for c in expected} == {Severity.NONE, Severity.RISK, Severity.DANGER}
    assert learned.processes is not None
    learned.start()
    await _ready(learned.processes)
    in_server.clear()
    got = await asyncio.wait_for(asyncio.gather(*(learned.classify(text) for text in TEXTS)), TIMEOUT)
    assert got == expected
    assert in_server == []  # the workers judged them
    assert learned.stamp == f"learned.{stage.version}"
    assert learned.processes is not None and len(learned.processes.pids()) == WORKERS
    # a worker imports the stage without the lexicon (safety/__init__ compiles it: ~2.4 s)
    probe = learned.processes.executor().submit(eval, "'safety.engine' in __import__('sys').modules")
    assert await asyncio.wait_for(asyncio.wrap_future(probe), TIMEOUT) is False


async def test_a_killed_worker_loses_no_verdict_and_new_workers_take_over(
    stage: LearnedStage, learned: LearnedClassifier, in_server: list[str]
) -> None:
    pool = learned.processes
    assert pool is not None
    expected = stage.classify(DANGER)
    learned.start()
    await _ready(pool)
    assert await asyncio.wait_for(learned.classify(DANGER), TIMEOUT) == expected
    old = [psutil.Process(pid) for pid in pool.pids()]
    in_server.clear()
    with coach_logs() as records:
        os.kill(old[0].pid, signal.SIGKILL)
        # calls under way or sent meanwhile: each still gets the stage's verdict
        results = await asyncio.wait_for(
            asyncio.gather(*(learned.classify(DANGER) for _ in range(6))), TIMEOUT
        )
        assert results == [expected] * 6
        assert in_server  # the server classified what the dead pool could not
        await _ready(pool)
        in_server.clear()
        later = await asyncio.wait_for(learned.classify(DANGER), TIMEOUT)
    assert later == expected and in_server == []  # the new workers answer
    new = pool.pids()
    assert len(new) == WORKERS and not set(new) & {p.pid for p in old}
    # however many calls met the broken pool, it was replaced once
    replaced = [r for r in records if getattr(r, "event", None) == "safety_learned_workers_replaced"]
    assert len(replaced) == 1
    # the executor stopped the surviving worker as well
    assert _gone_within(old, 5) == []


async def test_workers_that_cannot_load_the_stage_are_logged_once_and_the_server_classifies(
    stage: LearnedStage, tmp_path: Path
) -> None:
    """(The server loaded it, so this takes files vanishing meanwhile.) The failure is
    logged once; the workers are not replaced (new ones would fail the same way) and every
    message still gets the stage's verdict, from the server."""
    pool = WorkerPool(tmp_path)
    expected = stage.classify(DANGER)
    try:
        learned = LearnedClassifier(stage, pool=pool)
        with coach_logs() as records:
            learned.start()
            workers = pool.pids()
            deadline = time.monotonic() + TIMEOUT
            while not [r for r in records if getattr(r, "event", None) == "safety_learned_workers_failed"]:
                assert time.monotonic() < deadline, "the workers' failure was never logged"
                await asyncio.sleep(0.05)
            for _ in range(2):
                assert await asyncio.wait_for(learned.classify(DANGER), TIMEOUT) == expected
        assert not pool.ready() and pool.pids() == workers and len(workers) == WORKERS
        failed = [r for r in records if getattr(r, "event", None) == "safety_learned_workers_failed"]
        assert len(failed) == 1 and "did not load" in failed[0].getMessage()
        assert "learned_build" in failed[0].getMessage()
        assert not [r for r in records if getattr(r, "event", None) == "safety_learned_workers_replaced"]
    finally:
        pool.shutdown()


def _alive(process: psutil.Process) -> bool:
    """Still running (a zombie waiting for whoever adopted it to reap it counts as gone)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_within(processes: list[psutil.Process], seconds: float) -> list[int]:
    """The pids of ``processes`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p.pid for p in processes if _alive(p)]


# A server in miniature: the pool, one classification, its pids printed; then it waits.
SERVER = """
import asyncio, sys
from pathlib import Path
from coach.learned import worker_pool
pool = worker_pool(Path(sys.argv[1]))
print(asyncio.run(pool.classify(sys.argv[2])), *pool.pids(), flush=True)
sys.stdin.read()
"""


def test_a_killed_server_leaves_no_worker_behind(stage: LearnedStage) -> None:
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(MODEL_DIR), DANGER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert proc.stdout is not None
            hang = threading.Timer(TIMEOUT, proc.kill)  # a hung child: readline sees the end
            hang.start()
            try:
                line = proc.stdout.readline().split()
            finally:
                hang.cancel()
            stderr.seek(0)
            assert line, stderr.read().decode()[-2000:]
            verdict, pids = line[0], [int(pid) for pid in line[1:]]
            assert verdict == stage.classify(DANGER).severity.value
            assert len(pids) == WORKERS
            workers = [psutil.Process(pid) for pid in pids]
            assert all(p.ppid() == proc.pid for p in workers)
        finally:
            proc.kill()  # SIGKILL: no exit handler runs
            proc.wait(timeout=10)
        left = _gone_within(workers, 5)
        for pid in left:  # do not leave them to the rest of the suite
            os.kill(pid, signal.SIGKILL)
        assert left == []


@pytest.fixture
def model_copy() -> Iterator[Path]:
    """The built encoder in a folder of its own: its own pool, not yet started."""
    folder = Path(tempfile.mkdtemp(prefix="coach-model-")).resolve()
    for item in MODEL_DIR.iterdir():
        shutil.copy(item, folder / item.name)
    yield folder
    worker_pool(folder).shutdown()
    shutil.rmtree(folder)


async def test_before_the_workers_are_ready_the_server_classifies(
    model_copy: Path, stage: LearnedStage, in_server: list[str]
) -> None:
    expected = stage.classify(DANGER)
    pool = worker_pool(model_copy)
    learned = LearnedClassifier(stage, pool=pool)
    learned.start()  # the workers take about a second to load the stage
    in_server.clear()
    assert await asyncio.wait_for(learned.classify(DANGER), TIMEOUT) == expected
    assert in_server == [DANGER]  # answered here, without waiting for them
    await _ready(pool)
    in_server.clear()
    assert await asyncio.wait_for(learned.classify(DANGER), TIMEOUT) == expected
    assert in_server == []


async def test_an_app_starts_the_workers_at_startup_and_leaves_them_to_the_others(
    make_app: AppFactory,
    redis_client: Any,
    model_copy: Path,
    stage: LearnedStage,
    in_server: list[str],
) -> None:
    assert Settings().safety_learned_processes is True
    assert Settings.from_env({"COACH_SAFETY_LEARNED_PROCESSES": "off"}).safety_learned_processes is False
    danger = stage.classify(DANGER).severity.value
    assert scan(ISOLATED).severity == Severity.NONE
    in_server.clear()
    pool = worker_pool(model_copy)
    assert pool.pids() == []
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(f"{UPSTREAM}/chat/completions").mock(side_effect=coach)
        app = make_app(model=upstream_client(), safety_learned=True, safety_model_dir=model_copy)
        async with AsyncTestClient(app=app) as client:
            workers = pool.pids()
            assert len(workers) == WORKERS  # started by the startup, before any message
            c = await new_couple(client)
            await _ready(pool)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])
            ).json()["session_id"]
            r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": ISOLATED}, headers=c["a"])
            assert r.status_code == 201, r.text
    assert r.json()["reply"]["safety"]["severity"] == "risk" and coach.requests == []
    assert in_server == []  # the workers judged it
    # the app closed; the shared pool runs on for the process's other apps
    assert pool.pids() == workers
    assert await asyncio.wait_for(pool.classify(DANGER), TIMEOUT) == danger
