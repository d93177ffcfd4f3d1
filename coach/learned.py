"""The learned safety stage in the service: ``safety.learned`` behind the classifier protocol.

On by default (``COACH_SAFETY_LEARNED``). For each inbound message the lexicon did not
already find at danger (``safety.stage_applies``), ``Coach.check_inbound`` asks this stage
first (a few ms of CPU, local) and then, if still no disclosure and it is on, the model
classifier.

The stage never runs on the event loop; a failure while classifying is logged (without
the text) and returns ``None`` - the lexicon verdict stands. If the stage cannot load at
startup (encoder not built, bad files), the app logs an error and runs on the lexicon
alone; ``/readyz`` reports ``safety_learned: "unavailable"``.

Where it runs
-------------
By default (``COACH_SAFETY_LEARNED_PROCESSES``) in :data:`WORKERS` worker processes; with
that setting off, in a pool of :data:`WORKERS` threads inside the server process (kept as
the fallback and for tests). Why processes: the profile in docs/benchmarks.md ("Where a
JSON turn's time goes") caught the event loop waiting for the GIL while the stage's thread
ran Python and small numpy calls (tokenising, the SVM heads), so a turn's own work queued
behind another message's classification; in a process of its own the stage holds its own
GIL, and the loop only pickles a string each way. An experiment raised JSON turns/s at
c=64 by roughly 15-30 % (noisy).

* **One pool per model folder per server process** (:func:`worker_pool`), created lazily
  and shared by every app the process builds (the tests build many); an app's
  :meth:`LearnedClassifier.close` leaves it running for the others.
* **Spawned, never forked**: the server has threads and an event loop. Each worker loads
  the stage once in its initializer (:func:`load_stage`) and classifies one sentence there,
  so the encoder's first, slower run is paid before any message; it answers ``classify``
  with the severity's value and the parent builds the ``Classification``.
* **The parent still loads the stage** (once, as before): a model that cannot load is
  found at startup ("unavailable"), and the stamp ``learned.<version>`` comes from it.
* **Light worker imports**: this module imports only the standard library at its top,
  and a worker imports ``safety.learned`` without running ``safety/__init__`` (which
  compiles the whole lexicon at import: about 2.4 s of CPU and ~20 MB a worker never
  uses), see :func:`_import_stage_module`. A worker alone is ready 0.75 s after it is
  spawned (0.7 s of CPU), two at once after about 1.1-1.2 s on a 2-core machine.
* **Warm-up**: the app's lifespan schedules :meth:`LearnedClassifier.start` with
  ``loop.call_soon``, so it runs once the startup hooks are done (started before them,
  two importing workers made ``coach serve`` answer ``/readyz`` about 0.8 s later on a
  2-core machine; its ``gc.freeze`` hook is CPU-bound). It creates the pool if need be and submits one trivial
  classify per worker: the executor spawns a process for each submit while none is idle,
  so both start loading at once. Nothing waits for them (spawning costs a few ms) and the
  server serves meanwhile.
* **Until the workers are ready, and whenever they fail, the server classifies itself**,
  in a small thread pool with the stage it loaded (the pre-process behaviour): a message
  in the first second after startup does not wait for the workers, and a message is never
  judged by the lexicon alone because a worker died. The pool is ready once every worker
  has answered its warm-up classify.
* **A worker that dies** (killed, out of memory) breaks the executor
  (``BrokenProcessPool``; the executor also stops the other worker): the calls that hit
  it are classified in the server instead, and the first of them replaces the pool (under
  a lock, so concurrent calls replace it once) and starts the new workers at once. Workers
  that cannot load the stage are logged once and not replaced (new ones would fail the
  same way); the server keeps classifying.
* **Exit**: at a normal exit ``concurrent.futures``' own exit handler stops the workers
  (:func:`shutdown_worker_pools` does it at once). A server that dies without running it
  - killed (SIGKILL), or ``coach serve`` stopped with SIGTERM, which uvicorn re-raises
  after its graceful shutdown - leaves its workers to their watchdog thread: it sees the
  parent gone (multiprocessing's parent sentinel closes; ``os.getppid()`` is also checked
  every second) and exits. Workers ignore SIGINT (a Ctrl-C in a terminal reaches the
  whole process group): the server stops them.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from safety import Classification
    from safety.learned import LearnedStage

log = logging.getLogger("coach.safety")

#: Processes (or threads) classifying at once: each uses one onnxruntime thread, so this
#: bounds the CPU.
WORKERS = 2
#: How often a worker checks that the server that started it is still alive.
PARENT_CHECK_SECONDS = 1.0
#: Classified once by each worker as it starts (five words or more: the encoder runs).
WARM_TEXT = "warming up the learned safety stage"

LearnedStatus = Literal["on", "off", "unavailable"]


@functools.cache
def load_stage(model_dir: Path) -> LearnedStage:
    """One loaded stage per folder per process (it is read-only and thread-safe)."""
    from safety.learned import LearnedStage

    return LearnedStage.load(model_dir)


# --- in a worker process --------------------------------------------------------------

_worker_stage: LearnedStage | None = None
_worker_error: str | None = None


def _import_stage_module() -> ModuleType:
    """``safety.learned``, imported without running ``safety/__init__``: that module scans
    nothing itself but imports ``safety.engine``, which compiles the lexicon at import
    (about 2.4 s of CPU), and a worker only needs the learned stage. An empty ``safety``
    package object (its ``__path__``, not its code) is put in ``sys.modules`` first, so
    importing the submodule finds it there. Should ``safety.learned`` ever need a name
    from the package itself, the ordinary import is done instead (slower, still right)."""
    if "safety" not in sys.modules:
        spec = importlib.util.find_spec("safety")
        if spec is not None and spec.submodule_search_locations is not None:
            sys.modules["safety"] = importlib.util.module_from_spec(spec)
    try:
        return importlib.import_module("safety.learned")
    except ImportError:
        for name in [n for n in sys.modules if n == "safety" or n.startswith("safety.")]:
            del sys.modules[name]
        return importlib.import_module("safety.learned")


def _exit_with_parent(parent: int) -> None:
    """A worker's watchdog: once the process that started it is gone (killed, or ended
    by a signal, so that it could not stop its workers), exit too. It checks
    ``os.getppid()`` every :data:`PARENT_CHECK_SECONDS`, and in between waits on
    multiprocessing's sentinel for the parent (a pipe the parent's end of which closes
    when it dies), so that it usually exits at once."""
    parent_process = multiprocessing.parent_process()
    while True:
        if parent_process is not None:
            parent_process.join(PARENT_CHECK_SECONDS)
        else:
            time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent or (parent_process is not None and not parent_process.is_alive()):
            os._exit(0)


def _worker_start(model_dir: str) -> None:
    """A worker's initializer: the watchdog, then the stage, loaded and run once. A stage
    that does not load here is not an exception (the executor would call the pool broken
    and every replacement would fail the same way): each ``classify`` then raises."""
    global _worker_stage, _worker_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watchdog = threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watchdog", daemon=True
    )
    watchdog.start()
    try:
        _import_stage_module()
        stage = load_stage(Path(model_dir))
        stage.classify(WARM_TEXT)
    except Exception as exc:
        _worker_error = f"{type(exc).__name__}: {exc}"
        return
    _worker_stage = stage


def _worker_classify(text: str) -> str:
    """The stage's severity for ``text``, as its value (a str: cheap to send back)."""
    if _worker_stage is None:
        raise RuntimeError(f"the learned stage did not load in worker {os.getpid()}: {_worker_error}")
    return _worker_stage.classify(text).severity.value


# --- in the server process ------------------------------------------------------------


class WorkerPool:
    """The learned stage in ``workers`` spawned processes (see the module doc); the
    executor is created on first use and replaced when a worker has died."""

    def __init__(self, model_dir: Path, workers: int = WORKERS) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warm: list[Future[str]] = []

    def executor(self) -> ProcessPoolExecutor:
        """The current executor; a new one starts its workers at once (one trivial
        classify submitted per worker: a process is spawned per submit while none is idle)."""
        with self._lock:
            if self._executor is None:
                executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                    initargs=(str(self.model_dir),),
                )
                self._warm = [executor.submit(_worker_classify, "") for _ in range(self.workers)]
                self._warm[0].add_done_callback(_log_warm_failure)
                self._executor = executor
            return self._executor

    def ready(self) -> bool:
        """Whether the workers have started and each answered its warm-up classify; workers
        that died while starting are replaced here (no call reaches them to notice)."""
        with self._lock:
            executor, warm = self._executor, list(self._warm)
        if executor is None or not all(f.done() for f in warm):
            return False
        if any(not f.cancelled() and isinstance(f.exception(), BrokenProcessPool) for f in warm):
            self.replace(executor)
            return False
        return all(not f.cancelled() and f.exception() is None for f in warm)

    def start(self) -> None:
        """Start the workers if they are not running (the warm-up); does not wait for them."""
        try:
            self.executor()
        except Exception:
            log.exception("the learned safety stage's worker processes did not start")

    async def classify(self, text: str) -> str:
        """The severity's value; raises on any failure (a dead worker: after replacing the pool)."""
        executor = self.executor()
        try:
            return await asyncio.wrap_future(executor.submit(_worker_classify, text))
        except BrokenProcessPool:
            self.replace(executor)
            raise

    def replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken`` and start new workers, unless another call already has."""
        with self._lock:
            if self._executor is not broken:
                return
            self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
        log.error(
            "a learned safety stage worker process died; starting new ones",
            extra={"event": "safety_learned_workers_replaced"},
        )
        self.start()

    def shutdown(self) -> None:
        """Stop the workers and wait for them (a normal exit does this by itself); the
        next use starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first use)."""
        with self._lock:
            executor = self._executor
        return sorted(executor._processes or ()) if executor is not None else []


def _log_warm_failure(warm: Future[str]) -> None:
    """Log (once per set of workers) workers that could not load the stage."""
    if warm.cancelled() or isinstance(warm.exception(), BrokenProcessPool):
        return  # stopped, or died: the next call replaces them and says so
    if warm.exception() is not None:
        log.error(
            "the learned safety stage's worker processes could not load it; the server classifies (%s)",
            warm.exception(),
            extra={"event": "safety_learned_workers_failed"},
        )


_pools: dict[Path, WorkerPool] = {}
_pools_lock = threading.Lock()


def worker_pool(model_dir: Path) -> WorkerPool:
    """One pool per model folder per process, shared by every app (created idle)."""
    with _pools_lock:
        pool = _pools.get(model_dir)
        if pool is None:
            pool = _pools[model_dir] = WorkerPool(model_dir)
        return pool


def shutdown_worker_pools() -> None:
    """Stop every pool's workers and wait for them. For a serving process's shutdown:
    uvicorn ends the process with the signal it caught (SIGTERM) once its graceful
    shutdown is done, so ``concurrent.futures``' exit handler does not run then (the
    workers' watchdogs still end them, and the resource tracker warns of leaked
    semaphores)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.shutdown()


class LearnedClassifier:
    """``classify(text)``: the learned stage's classification, or ``None`` on any failure.
    In ``pool``'s worker processes when given and ready, else (and when they fail) in a
    thread pool of its own."""

    def __init__(
        self, stage: LearnedStage, *, workers: int = WORKERS, pool: WorkerPool | None = None
    ) -> None:
        from safety import Classification, Severity

        self.stage = stage
        self.stamp = f"learned.{stage.version}"
        self.processes = pool
        # threads start on first use: with worker processes, only until they are ready
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="safety-learned")
        self._verdicts = {severity.value: Classification(severity) for severity in Severity}

    def start(self) -> None:
        """At the app's startup: start the worker processes (no-op with threads)."""
        if self.processes is not None:
            self.processes.start()

    async def classify(self, text: str) -> Classification | None:
        if self.processes is not None and self.processes.ready():
            try:
                return self._verdicts[await self.processes.classify(text)]
            except Exception:
                log.exception("a learned safety stage worker failed; the server classifies this message")
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._threads, self.stage.classify, text)
        except Exception:
            log.exception("the learned safety stage failed; the lexicon verdict stands")
            return None

    def close(self) -> None:
        """Stop this classifier's threads; a shared worker pool stays for the other apps."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def make_learned(
    enabled: bool, model_dir: Path, *, processes: bool = True
) -> tuple[LearnedClassifier | None, LearnedStatus]:
    """The stage when on and loadable (in worker processes if ``processes``); a load
    failure is logged and leaves the lexicon alone."""
    if not enabled:
        return None, "off"
    from safety.learned import LearnedStageUnavailable

    model_dir = Path(model_dir).resolve()
    try:
        stage = load_stage(model_dir)
    except LearnedStageUnavailable as exc:
        log.error(
            "the learned safety stage is unavailable; only the lexicon scans (%s)",
            exc,
            extra={"event": "safety_learned_unavailable"},
        )
        return None, "unavailable"
    return LearnedClassifier(stage, pool=worker_pool(model_dir) if processes else None), "on"
