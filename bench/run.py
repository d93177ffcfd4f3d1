"""``make bench``: the coach's performance, side by side with direct and LiteLLM.

Starts its own redis-server, the fake upstream (``bench/fake_upstream.py``), a LiteLLM
proxy (1 worker) and the coach (``coach serve``), all on 127.0.0.1 and free ports, then
drives each path with the load generator (``bench/load.py``, a separate process) at the
same concurrency levels and request counts, and stops everything it started.

    .venv/bin/python bench/run.py            # full run (10-14 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # smaller counts (~5 min)
    .venv/bin/python bench/run.py --only upstream,direct,litellm

Results: a table on stdout, ``bench/results/bench-<time>.json`` and ``latest.json``/
``latest.md`` (git-ignored). LiteLLM runs from its own virtualenv (``bench/.venv``,
created on first use) because ``litellm[proxy]`` pins openai 2.x, rich and websockets
below what the coach uses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PY = sys.executable
LITELLM_VENV = BENCH / ".venv"
LITELLM_PIN = "litellm[proxy]==1.106.2"
MASTER_KEY = "sk-bench-local"
LEVELS = (1, 16, 64, 256)
FULL = {False: {1: 300, 16: 1500, 64: 3000, 256: 4000}, True: {1: 60, 16: 400, 64: 1000, 256: 1500}}
QUICK = {False: {1: 100, 16: 300, 64: 600, 256: 800}, True: {1: 20, 16: 80, 64: 200, 256: 300}}
SECTIONS = ("upstream", "direct", "sdk", "litellm", "coach", "openloop", "listeners", "scaleout")
EXTRA_SECTIONS = ("profile",)  # only when named in --only


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Procs:
    """Every process this run starts, each in its own process group; stopped in reverse."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs.append((name, proc, out))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        for i, (name, p, out) in enumerate(self.procs):
            if p is proc:
                _stop_group(name, p)
                out.close()
                del self.procs[i]
                return

    def stop_all(self) -> None:
        while self.procs:
            name, p, out = self.procs.pop()
            _stop_group(name, p)
            out.close()


def _stop_group(name: str, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    log(f"stopped {name}")


def wait_http(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0, headers=headers).status_code < 500:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def wait_redis(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.1)
    raise RuntimeError("redis not ready")


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants (psutil reads /proc/<pid>/stat)."""
    try:
        p = psutil.Process(pid)
        total = sum(p.cpu_times()[:2])
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(c.cpu_times()[:2])
        return float(total)
    except psutil.Error:
        return 0.0


def main_thread_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid``'s main thread alone (the coach's event loop; the learned
    stage's pool and other helper threads are the rest of :func:`cpu_seconds`)."""
    try:
        for t in psutil.Process(pid).threads():
            if t.id == pid:
                return float(t.user_time + t.system_time)
    except psutil.Error:
        pass
    return 0.0


def rss_bytes(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        return int(p.memory_info().rss) + sum(int(c.memory_info().rss) for c in p.children(recursive=True))
    except psutil.Error:
        return 0


class Load:
    """One load.py run with the ready/go handshake; CPU of ``watch`` pids sampled around
    the measured phase only (setup and warm-up excluded)."""

    def __init__(
        self, spec: dict[str, Any], watch: dict[str, int], timeout: float, redis_port: int | None = None
    ) -> None:
        self.spec = spec
        self.watch = watch
        self.timeout = timeout
        self.redis_port = redis_port
        self.proc = subprocess.Popen(
            [PY, str(BENCH / "load.py"), msgspec.json.encode(spec).decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.ready: dict[str, Any] = {}

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load.py exited ({self.proc.wait(timeout=10)})")
        data: dict[str, Any] = msgspec.json.decode(line)
        return data

    def wait_ready(self) -> dict[str, Any]:
        self.ready = self._line()
        return self.ready

    def go(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        cmds = redis_commands(self.redis_port) if self.redis_port else None
        before = {k: cpu_seconds(pid) for k, pid in self.watch.items()}
        loop_before = {k: main_thread_cpu_seconds(pid) for k, pid in self.watch.items()}
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        result = self._line()
        after = {k: cpu_seconds(pid) for k, pid in self.watch.items()}
        loop_after = {k: main_thread_cpu_seconds(pid) for k, pid in self.watch.items()}
        if cmds is not None and self.redis_port:
            done = redis_commands(self.redis_port)
            if done is not None:
                # minus the INFO command itself
                result["redis_cmds_per_req"] = (done - cmds - 1) / max(1, result.get("n") or 0)
        self.proc.wait(timeout=30)
        n = max(1, int(result.get("n") or 0))
        result["server_cpu_s"] = {k: after[k] - before[k] for k in self.watch}
        result["server_cpu_ms_per_req"] = {k: (after[k] - before[k]) * 1000 / n for k in self.watch}
        result["server_main_thread_cpu_ms_per_req"] = {
            k: (loop_after[k] - loop_before[k]) * 1000 / n for k in self.watch
        }
        result["server_core_fraction"] = {
            k: (after[k] - before[k]) / result["elapsed"] if result.get("elapsed") else 0.0
            for k in self.watch
        }
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def run_load(
    spec: dict[str, Any], watch: dict[str, int], timeout: float = 300.0, redis_port: int | None = None
) -> dict[str, Any]:
    load = Load(spec, watch, timeout, redis_port)
    try:
        load.wait_ready()
        return load.go()
    finally:
        load.kill()


# -- components -----------------------------------------------------------------------
def ensure_litellm() -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    uv = shutil.which("uv")
    if uv is None:
        log("uv not found: skipping LiteLLM")
        return None
    log(f"creating {LITELLM_VENV} with {LITELLM_PIN} (first run only)")
    try:
        subprocess.run(
            [uv, "venv", "--quiet", "--python", "3.11", str(LITELLM_VENV)], check=True, timeout=300
        )
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(LITELLM_VENV / "bin" / "python"), LITELLM_PIN],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"could not install LiteLLM ({exc}): skipping it")
        return None
    return exe if exe.exists() else None


def start_litellm(
    procs: Procs, exe: Path, upstream: str, workdir: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: fake\n    litellm_params:\n      model: openai/fake\n"
        f"      api_base: {upstream}\n      api_key: x\n"
        "litellm_settings:\n  drop_params: true\n  set_verbose: false\n"
        f"general_settings:\n  master_key: {MASTER_KEY}\n",
        encoding="utf-8",
    )
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    proc = procs.start(
        "litellm",
        [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env,
        cwd=workdir,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=120)
    return f"http://127.0.0.1:{port}/v1", proc


COACH_ENV: dict[str, str] = {}  # --coach-env: extra settings for every coach process


def start_coach(
    procs: Procs, name: str, redis_port: int, upstream: str, redis_query: str = ""
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        "COACH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0{redis_query}",
        "COACH_MODEL_BASE_URL": upstream,
        "OPENAI_API_KEY": "x",
        "COACH_MODEL": "fake",
        "COACH_ALLOW_DRAFT_TEMPLATES": "true",
        "COACH_RATE_LIMIT_PER_MINUTE": "0",
        "COACH_IP_RATE_LIMIT_PER_MINUTE": "0",
        "COACH_MODEL_MAX_CONNECTIONS": "300",
        "COACH_PORT": str(port),
        "COACH_HOST": "127.0.0.1",
        **COACH_ENV,
    }
    proc = procs.start(name, [PY, "-m", "coach.cli", "serve"], env, cwd=ROOT)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
    return f"http://127.0.0.1:{port}", proc


def wrk_ceiling(
    upstream: str, workdir: Path, duration: int, conns: int, latency_ms: float | None = None
) -> dict[str, Any] | None:
    """wrk (Debian's, C) against the fake upstream, when it is installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = workdir / "post.lua"
    extra = "" if latency_ms is None else f'wrk.headers["x-fake-latency-ms"] = "{latency_ms:g}"\n'
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        + extra
        + 'wrk.body = \'{"model":"fake","messages":[{"role":"user","content":"hi"}]}\'\n',
        encoding="utf-8",
    )
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{conns}",
            f"-d{duration}s",
            "-s",
            str(script),
            upstream.rstrip("/") + "/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=False,
    )
    rps = None
    for line in out.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
    return {"requests_per_s": rps, "output": out.stdout}


# -- reporting --------------------------------------------------------------------------
def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def lat(r: dict[str, Any], key: str, pct: str) -> float | None:
    s = r.get(key)
    return None if not s else float(s[pct])


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| path | mode | conc | n | err | req/s | p50 ms | p95 ms | p99 ms | +p50 ms | "
        "+p99 ms | TTFT p50 | 1st sentence p50 | server CPU ms/req | client core |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        lines.append(
            f"| {r['path']} | {'stream' if r['stream'] else 'json'} | {r['concurrency']} | "
            f"{r['n']} | {sum(r['errors'].values())} | {fmt(r['throughput'])} | "
            f"{fmt(lat(r, 'latency', 'p50'))} | {fmt(lat(r, 'latency', 'p95'))} | "
            f"{fmt(lat(r, 'latency', 'p99'))} | {fmt(r.get('added_p50'))} | "
            f"{fmt(r.get('added_p99'))} | {fmt(lat(r, 'first_token', 'p50'))} | "
            f"{fmt(lat(r, 'first_sentence', 'p50'))} | {fmt(r.get('cpu_ms_per_req'), 2)} | "
            f"{r['client_core_fraction'] * 100:.0f}% |"
        )
    return "\n".join(lines)


def added(rows: list[dict[str, Any]]) -> None:
    base = {(r["stream"], r["concurrency"]): r for r in rows if r["path"] == "direct"}
    for r in rows:
        b = base.get((r["stream"], r["concurrency"]))
        if b is None or not r.get("latency") or not b.get("latency"):
            continue
        r["added_p50"] = r["latency"]["p50"] - b["latency"]["p50"]
        r["added_p99"] = r["latency"]["p99"] - b["latency"]["p99"]


def best(rows: list[dict[str, Any]], path: str, stream: bool) -> float:
    return max((r["throughput"] for r in rows if r["path"] == path and r["stream"] == stream), default=0.0)


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = res["rows"]
    out: list[tuple[str, str, str]] = []

    def row(path: str, stream: bool, c: int) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["path"] == path and r["stream"] == stream and r["concurrency"] == c), None
        )

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    c1 = row("coach", False, 1)
    if c1 and c1.get("added_p50") is not None:
        out.append(
            (
                "coach added latency c=1 p50 <= 2 ms",
                f"{c1['added_p50']:.2f} ms",
                verdict(c1["added_p50"] <= 2),
            )
        )
        out.append(
            (
                "coach added latency c=1 p99 <= 5 ms",
                f"{c1['added_p99']:.2f} ms",
                verdict(c1["added_p99"] <= 5),
            )
        )
    for stream in (False, True):
        coach, lite = best(rows, "coach", stream), best(rows, "litellm", stream)
        if coach and lite:
            out.append(
                (
                    f"coach turns/s >= 4x LiteLLM req/s ({'stream' if stream else 'json'})",
                    f"{coach:.0f} vs {lite:.0f} ({coach / lite:.1f}x)",
                    verdict(coach >= 4 * lite),
                )
            )
    for stream in (False, True):
        cpu = [
            r["cpu_ms_per_req"]
            for r in rows
            if r["path"] == "coach"
            and r["stream"] == stream
            and r["concurrency"] >= 16
            and r.get("cpu_ms_per_req") is not None
            and sum(r["errors"].values()) <= 0.01 * max(1, r["n"])
        ]
        if cpu:
            out.append(
                (
                    f"coach CPU per turn <= 3 ms ({'stream' if stream else 'json'}, "
                    "best level c>=16 without errors)",
                    f"{min(cpu):.2f} ms",
                    verdict(min(cpu) <= 3),
                )
            )
    ol = res.get("openloop")
    if ol and ol.get("added_p99") is not None:
        out.append(
            (
                f"open loop at {ol['rate']:.0f}/s ({'fixed' if ol.get('fixed') else 'half capacity'}): "
                "added p99 <= 10 ms",
                f"{ol['added_p99']:.2f} ms",
                verdict(ol["added_p99"] <= 10),
            )
        )
    lags = [r["release_lag"] for r in rows if r["path"] == "coach" and r.get("release_lag")]
    if lags:
        worst = max(lag["after_last_token"]["p99"] for lag in lags if lag["after_last_token"])
        worst_b = max(lag["after_boundary_token"]["p99"] for lag in lags if lag["after_boundary_token"])
        c1s = row("coach", True, 1)
        c1lag = (c1s or {}).get("release_lag") or {}
        c1_last = (c1lag.get("after_last_token") or {}).get("p99")
        out.append(
            (
                "sentence released <= 5 ms after its last token (c=1 p99)",
                fmt(c1_last, 2) + " ms",
                verdict(None if c1_last is None else c1_last <= 5),
            )
        )
        out.append(
            (
                "  same, worst level p99 (after last token / after boundary token)",
                f"{worst:.1f} / {worst_b:.1f} ms",
                verdict(worst <= 5),
            )
        )
    for key, label in (("listeners", ""), ("listeners_wide_pool", " (Redis pool 5000)")):
        li = res.get(key)
        if not li:
            continue
        ok = li["result"]["still_connected"] >= 2000 and li["result"]["failed"] == 0
        out.append(
            (
                f"2,000 idle SSE listeners on one process{label}",
                f"{li['result']['still_connected']} held, "
                f"{li['result']['failed']} failed, RSS +{li['rss_delta_mib']:.0f} MiB "
                f"({li['rss_per_listener_kib']:.0f} KiB each), delivery "
                f"{li['result']['delivered']}/{li['result']['probes']}",
                verdict(ok),
            )
        )
    so = res.get("scaleout")
    if so:
        out.append(
            (
                "scale-out: 2 processes vs 1 (json, c=64)",
                f"{so['two']['throughput']:.0f} vs {so['one']['throughput']:.0f} turns/s "
                f"({so['ratio']:.2f}x)",
                "info",
            )
        )
        d = so["delivery"]
        out.append(
            (
                "scale-out: message on A reaches listener on B",
                f"{d['delivered']}/{d['probes']} delivered, p50 "
                f"{fmt((d.get('delivery_ms') or {}).get('p50'))} ms",
                verdict(d["delivered"] == d["probes"]),
            )
        )
    return out


def report(res: dict[str, Any]) -> str:
    loads = [r["loadavg_1m"] for r in res["rows"] if "loadavg_1m" in r]
    parts = [
        f"machine: {res['machine']['nproc']} cores, {res['machine']['cpu']}, "
        f"Python {res['machine']['python']}"
        + (
            f"; 1-min load average after each level {min(loads):.1f}-{max(loads):.1f}"
            " (the bench alone makes about 2-3; more: other work shared the cores)"
            if loads
            else ""
        ),
        f"command: {res['command']}",
    ]
    up = res.get("upstream")
    if up:
        parts.append(
            f"fake upstream ceiling (json, {up['config']}): load.py raw client c=256 "
            f"{fmt(up['load']['throughput'], 0)} req/s (client core "
            f"{up['load']['client_core_fraction'] * 100:.0f}%, upstream core "
            f"{up['load']['server_core_fraction']['upstream'] * 100:.0f}%)"
            + (f"; wrk c=256 {fmt(up['wrk']['requests_per_s'], 0)} req/s" if up.get("wrk") else "")
        )
        z, wz = up.get("load_zero_latency"), up.get("wrk_zero_latency")
        if z:
            parts.append(
                f"fake upstream CPU ceiling (0 ms latency, c=64): load.py "
                f"{fmt(z['throughput'], 0)} req/s (client core "
                f"{z['client_core_fraction'] * 100:.0f}%, upstream core "
                f"{z['server_core_fraction']['upstream'] * 100:.0f}%)"
                + (
                    f"; wrk {fmt(wz['requests_per_s'], 0)} req/s (upstream core "
                    f"{wz['upstream_core_fraction'] * 100:.0f}%)"
                    if wz
                    else ""
                )
            )
    parts.append("")
    parts.append(table(res["rows"]))
    cmds = [
        f"{'stream' if r['stream'] else 'json'} c={r['concurrency']}: {r['redis_cmds_per_req']:.1f}"
        for r in res["rows"]
        if r.get("redis_cmds_per_req") is not None
    ]
    if cmds:
        parts.append("")
        parts.append(
            "coach: Redis commands per turn (measured phase, session starts included): " + "; ".join(cmds)
        )
    ol = res.get("openloop")
    if ol:
        parts.append("")
        how = "fixed by --openloop-rate" if ol.get("fixed") else "half the coach's best json throughput"
        parts.append(
            f"open loop (Poisson, {ol['rate']:.0f} arrivals/s = {how}): coach p50/p99 "
            f"{fmt(lat(ol['coach'], 'latency', 'p50'))}/"
            f"{fmt(lat(ol['coach'], 'latency', 'p99'))} ms, direct "
            f"{fmt(lat(ol['direct'], 'latency', 'p50'))}/"
            f"{fmt(lat(ol['direct'], 'latency', 'p99'))} ms, added p99 "
            f"{fmt(ol.get('added_p99'))} ms; dropped (no free partner) "
            f"{ol['coach']['errors'].get('no-free-slot', 0)}"
        )
    lags = [
        (r["concurrency"], r["release_lag"])
        for r in res["rows"]
        if r["path"] == "coach" and r.get("release_lag")
    ]
    if lags:
        parts.append("")
        parts.append(
            "sentence release lag (client receive - upstream send, ms): "
            "after the sentence's last token | after the next token (ends it)"
        )
        for c, lag in lags:
            a, b = lag["after_last_token"] or {}, lag["after_boundary_token"] or {}
            parts.append(
                f"  c={c}: p50 {fmt(a.get('p50'))} p99 {fmt(a.get('p99'))} max "
                f"{fmt(a.get('max'))} | p50 {fmt(b.get('p50'))} p99 {fmt(b.get('p99'))}"
                f" max {fmt(b.get('max'))}  ({lag['turns']} turns)"
            )
    for key, label in (
        ("listeners", "coach as configured"),
        ("listeners_wide_pool", "Redis pool max_connections=5000"),
    ):
        li = res.get(key)
        if not li:
            continue
        r = li["result"]
        parts.append("")
        parts.append(
            f"idle SSE listeners ({label}): {r['still_connected']}/{r['listeners']} held "
            f"(errors {r.get('errors') or 0}) "
            f"(failed {r['failed']}), connect {r['connect_s']:.1f}s; coach RSS "
            f"{li['rss_before_mib']:.0f} -> {li['rss_after_mib']:.0f} MiB "
            f"(+{li['rss_per_listener_kib']:.0f} KiB/listener); redis clients "
            f"{li.get('redis_clients')}; delivery to a listener while they idle: "
            f"{r['delivered']}/{r['probes']}, p50 {fmt((r.get('delivery_ms') or {}).get('p50'))}"
            f" ms"
        )
    so = res.get("scaleout")
    if so:
        parts.append("")
        parts.append(
            f"scale-out (json, c={so['concurrency']}): one process "
            f"{so['one']['throughput']:.0f} turns/s, two processes "
            f"{so['two']['throughput']:.0f} turns/s ({so['ratio']:.2f}x); A->B delivery "
            f"{so['delivery']['delivered']}/{so['delivery']['probes']}, p50 "
            f"{fmt((so['delivery'].get('delivery_ms') or {}).get('p50'))} ms"
        )
    t = targets(res)
    if t:
        parts.append("")
        parts.append("| target | measured | verdict |\n|---|---|---|")
        parts.extend(f"| {a} | {b} | {c} |" for a, b, c in t)
    return "\n".join(parts)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
    }


# -- the run ----------------------------------------------------------------------------
def row_of(path: str, stream: bool, c: int, r: dict[str, Any], cpu_key: str) -> dict[str, Any]:
    r = dict(r)
    r.update(
        path=path,
        stream=stream,
        concurrency=c,
        loadavg_1m=os.getloadavg()[0],
        cpu_ms_per_req=r.get("server_cpu_ms_per_req", {}).get(cpu_key),
        main_thread_cpu_ms_per_req=r.get("server_main_thread_cpu_ms_per_req", {}).get(cpu_key),
    )
    return r


def sweep(
    path: str,
    spec: dict[str, Any],
    watch: dict[str, int],
    cpu_key: str,
    counts: dict[bool, dict[int, int]],
    levels: tuple[int, ...],
    limit: float,
    rows: list[dict[str, Any]],
    stamp: bool = False,
    redis_port: int | None = None,
) -> None:
    for stream in (False, True):
        for c in levels:
            n = counts[stream][c]
            s = {
                **spec,
                "stream": stream,
                "concurrency": c,
                "requests": n,
                "warmup": min(max(2 * c, 20), n),
                "time_limit": limit,
            }
            if stamp and stream:
                s["stamp_every"] = 1
            r = run_load(s, watch, timeout=limit + 300, redis_port=redis_port)
            rows.append(row_of(path, stream, c, r, cpu_key))
            log(
                f"{path:8} {'stream' if stream else 'json':6} c={c:<3} n={r['n']:<5} "
                f"{r['throughput']:7.1f}/s p50 {fmt(lat(r, 'latency', 'p50'))} p99 "
                f"{fmt(lat(r, 'latency', 'p99'))} ms cpu/req "
                f"{fmt(rows[-1]['cpu_ms_per_req'], 2)} ms (main thread "
                f"{fmt(rows[-1]['main_thread_cpu_ms_per_req'], 2)}) client "
                f"{r['client_core_fraction'] * 100:.0f}% errors {r['errors'] or 0}"
                + (
                    f" redis cmds/req {r['redis_cmds_per_req']:.1f}"
                    if r.get("redis_cmds_per_req") is not None
                    else ""
                )
            )


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="coach-bench-") as d:
        yield Path(d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Coach performance benchmarks (see docstring).")
    ap.add_argument("--quick", action="store_true", help="smaller request counts")
    ap.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections: {','.join(SECTIONS + EXTRA_SECTIONS)}",
    )
    ap.add_argument("--levels", default=",".join(map(str, LEVELS)))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="fake upstream latency")
    ap.add_argument("--token-ms", type=float, default=5.0, help="fake upstream token pacing")
    ap.add_argument("--limit", type=float, default=None, help="seconds per measured run")
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument(
        "--openloop-rate",
        type=float,
        default=None,
        help="arrivals/s for the open-loop section (default: half the coach's best json throughput "
        "of this run, or 100/s without the coach section); fixed, to compare two builds at one rate",
    )
    ap.add_argument(
        "--coach-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the coach processes (repeatable), e.g. COACH_SAFETY_LEARNED=false",
    )
    ap.add_argument(
        "--docs", action="store_true", help="also write the results into docs/benchmarks.md (between markers)"
    )
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    COACH_ENV.update(item.split("=", 1) for item in args.coach_env)
    levels = tuple(int(x) for x in args.levels.split(","))
    base_counts = QUICK if args.quick else FULL
    counts = {
        s: {c: max(1, int(base_counts[s].get(c, 200) * args.scale)) for c in levels} for s in (False, True)
    }
    limit = args.limit or (15.0 if args.quick else 40.0)
    raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    res: dict[str, Any] = {
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "counts": {("stream" if s else "json"): counts[s] for s in counts},
        "rows": [],
        "upstream_config": {"latency_ms": args.latency_ms, "token_ms": args.token_ms},
        "coach_env": dict(COACH_ENV),
    }
    rows: list[dict[str, Any]] = res["rows"]
    with workspace() as work:
        logdir = RESULTS / "logs"
        logdir.mkdir(exist_ok=True)
        procs = Procs(logdir)
        try:
            redis_port = free_port()
            redis = procs.start(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxclients",
                    "10000",
                ],
            )
            wait_redis(redis_port)
            up_port = free_port()
            upstream_proc = procs.start(
                "upstream",
                [
                    PY,
                    str(BENCH / "fake_upstream.py"),
                    "--port",
                    str(up_port),
                    "--latency-ms",
                    str(args.latency_ms),
                    "--token-ms",
                    str(args.token_ms),
                ],
            )
            upstream = f"http://127.0.0.1:{up_port}/v1"
            wait_http(f"http://127.0.0.1:{up_port}/healthz", upstream_proc)
            up_watch = {"upstream": upstream_proc.pid}

            if "upstream" in only:
                r = run_load(
                    {
                        "target": "raw",
                        "base_url": upstream,
                        "concurrency": 256,
                        "requests": 20000 if not args.quick else 8000,
                        "warmup": 512,
                        "time_limit": 10.0,
                    },
                    up_watch,
                )
                # and its CPU ceiling: no latency, so only its own work limits it
                r0 = run_load(
                    {
                        "target": "raw",
                        "base_url": upstream,
                        "concurrency": 64,
                        "requests": 40000 if not args.quick else 15000,
                        "warmup": 512,
                        "time_limit": 8.0,
                        "headers": {"x-fake-latency-ms": "0"},
                    },
                    up_watch,
                )
                cpu0 = cpu_seconds(upstream_proc.pid)
                wrk0 = wrk_ceiling(upstream, work, 5, 64, latency_ms=0)
                if wrk0 is not None:
                    wrk0["upstream_core_fraction"] = (cpu_seconds(upstream_proc.pid) - cpu0) / 5
                res["upstream"] = {
                    "config": f"{args.latency_ms:g} ms latency",
                    "load": r,
                    "wrk": wrk_ceiling(upstream, work, 5, 256),
                    "load_zero_latency": r0,
                    "wrk_zero_latency": wrk0,
                }
                log(
                    f"upstream: load.py {r['throughput']:.0f}/s (c=256, "
                    f"{args.latency_ms:g} ms), {r0['throughput']:.0f}/s (c=64, 0 ms); wrk "
                    f"{(res['upstream']['wrk'] or {}).get('requests_per_s')} / "
                    f"{(wrk0 or {}).get('requests_per_s')}"
                )
            if "direct" in only:
                sweep(
                    "direct",
                    {"target": "raw", "base_url": upstream},
                    up_watch,
                    "upstream",
                    counts,
                    levels,
                    limit,
                    rows,
                )
            if "sdk" in only:
                # the openai SDK client saturates a core by c=16 (see docs/benchmarks.md):
                # higher levels measure the client, not the path
                sweep(
                    "direct-sdk",
                    {"target": "sdk", "base_url": upstream},
                    up_watch,
                    "upstream",
                    counts,
                    tuple(c for c in levels if c <= 16) or levels,
                    limit,
                    rows,
                )
            if "litellm" in only:
                exe = ensure_litellm()
                if exe is not None:
                    lbase, lproc = start_litellm(procs, exe, upstream, work)
                    watch = {"litellm": lproc.pid, **up_watch}
                    # warm up: the first requests build caches and import provider code
                    run_load(
                        {
                            "target": "raw",
                            "base_url": lbase,
                            "api_key": MASTER_KEY,
                            "concurrency": 4,
                            "requests": 40,
                            "stream": True,
                        },
                        watch,
                    )
                    sweep(
                        "litellm",
                        {"target": "raw", "base_url": lbase, "api_key": MASTER_KEY},
                        watch,
                        "litellm",
                        counts,
                        levels,
                        limit,
                        rows,
                    )
                    res["litellm_rss_mib"] = rss_bytes(lproc.pid) / 2**20
                    procs.stop(lproc)
            coach_sections = {"coach", "openloop", "listeners", "scaleout", "profile"} & only
            if coach_sections:
                cbase, cproc = start_coach(procs, "coach", redis_port, upstream)
                watch = {"coach": cproc.pid, "redis": redis.pid, **up_watch}
                run_load(
                    {
                        "target": "coach",
                        "base_url": cbase,
                        "concurrency": 8,
                        "requests": 40,
                        "warmup": 40,
                        "stream": True,
                    },
                    watch,
                )
                if "coach" in only:
                    sweep(
                        "coach",
                        {"target": "coach", "base_url": cbase, "stamps_url": f"http://127.0.0.1:{up_port}"},
                        watch,
                        "coach",
                        counts,
                        levels,
                        limit,
                        rows,
                        stamp=True,
                        redis_port=redis_port,
                    )
                    res["coach_rss_mib"] = rss_bytes(cproc.pid) / 2**20
                if "openloop" in only:
                    cap = best(rows, "coach", False) or 200.0
                    rate = args.openloop_rate or cap / 2
                    dur = 10.0 if args.quick else 20.0
                    n = int(rate * dur)
                    common = {"concurrency": 256, "requests": n, "rate": rate, "time_limit": dur + 5}
                    co = run_load(
                        {"target": "coach", "base_url": cbase, "warmup": 64, **common},
                        watch,
                        timeout=dur + 300,
                    )
                    di = run_load(
                        {"target": "raw", "base_url": upstream, "warmup": 64, **common},
                        up_watch,
                        timeout=dur + 300,
                    )
                    res["openloop"] = {
                        "rate": rate,
                        "fixed": bool(args.openloop_rate),
                        "coach": co,
                        "direct": di,
                        "added_p99": (co["latency"]["p99"] - di["latency"]["p99"])
                        if co.get("latency") and di.get("latency")
                        else None,
                    }
                    log(
                        f"open loop {rate:.0f}/s: coach p99 {fmt(lat(co, 'latency', 'p99'))} "
                        f"direct p99 {fmt(lat(di, 'latency', 'p99'))}"
                    )
                if "profile" in only:
                    res["profile"] = profile(cbase, cproc.pid, watch, 20.0)
                if "listeners" in only:
                    li = listeners(cbase, cproc.pid, redis_port, args.listeners)
                    res["listeners"] = li
                    if li["result"]["failed"] or li["result"]["missing"]:
                        # The coach's Redis pool (redis-py default: 100) ran out: measure
                        # memory again with a pool wide enough for one connection each.
                        log("listeners failed on the default Redis pool; again with ?max_connections=5000")
                        wbase, wproc = start_coach(
                            procs, "coach-wide-pool", redis_port, upstream, "?max_connections=5000"
                        )
                        res["listeners_wide_pool"] = listeners(wbase, wproc.pid, redis_port, args.listeners)
                        procs.stop(wproc)
                if "scaleout" in only:
                    res["scaleout"] = scaleout(
                        procs, cbase, cproc, redis_port, upstream, args.quick, limit, watch
                    )
        finally:
            procs.stop_all()
    added(rows)
    res["elapsed_s"] = time.monotonic() - started
    text = report(res)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    blob = msgspec.json.format(msgspec.json.encode(res))
    (RESULTS / f"bench-{stamp}.json").write_bytes(blob)
    (RESULTS / "latest.json").write_bytes(blob)
    (RESULTS / "latest.md").write_text(text + "\n", encoding="utf-8")
    if args.docs:
        write_docs(res, text)
    print()
    print(text)
    print(f"\n(total {res['elapsed_s'] / 60:.1f} min; results in {RESULTS}/latest.json)")
    return 0


def profile(cbase: str, pid: int, watch: dict[str, int], seconds: float) -> dict[str, Any]:
    """py-spy on the coach while turns run (json c=16, then stream c=16): the functions
    with the most samples, inclusive and self. Output in bench/results/profile-*.txt."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy not installed: skipping the profile")
        return {}
    out: dict[str, Any] = {}
    for stream in (False, True):
        mode = "stream" if stream else "json"
        folded = RESULTS / f"profile-{mode}.folded"
        load = Load(
            {
                "target": "coach",
                "base_url": cbase,
                "concurrency": 16,
                "requests": 100000,
                "warmup": 32,
                "stream": stream,
                "time_limit": seconds + 3,
            },
            watch,
            timeout=seconds + 120,
        )
        try:
            load.wait_ready()
            assert load.proc.stdin is not None
            load.proc.stdin.write(b"go\n")
            load.proc.stdin.flush()
            subprocess.run(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(folded),
                ],
                capture_output=True,
                timeout=seconds + 60,
                check=False,
            )
            load.proc.wait(timeout=seconds + 60)
        finally:
            load.kill()
        out[mode] = summarize_folded(folded, RESULTS / f"profile-{mode}.txt")
        log(f"profile {mode}: {RESULTS / f'profile-{mode}.txt'}")
    return out


def summarize_folded(folded: Path, dest: Path, top: int = 40) -> dict[str, Any]:
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    if not folded.exists():
        return {}
    for line in folded.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    lines = [f"{total} samples", "", "inclusive %  function"]
    incl = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    lines += [f"{100 * n / max(1, total):6.1f}  {f}" for f, n in incl]
    lines += ["", "self %  function"]
    selfs = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    lines += [f"{100 * n / max(1, total):6.1f}  {f}" for f, n in selfs]
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "samples": total,
        "inclusive": [(f, round(100 * n / max(1, total), 1)) for f, n in incl[:25]],
        "self": [(f, round(100 * n / max(1, total), 1)) for f, n in selfs[:25]],
    }


DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def write_docs(res: dict[str, Any], text: str) -> None:
    """Replace the results block of docs/benchmarks.md with this run's report."""
    if not DOCS.exists():
        log(f"{DOCS} missing: not written")
        return
    doc = DOCS.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        log(f"{DOCS} has no results markers: not written")
        return
    head, rest = doc.split(START, 1)
    _old, tail = rest.split(END, 1)
    block = f"{START}\nRun of {res['started']} ({res['elapsed_s'] / 60:.1f} min).\n\n{text}\n{END}"
    DOCS.write_text(head + block + tail, encoding="utf-8")
    log(f"wrote the results into {DOCS}")


def redis_commands(port: int) -> int | None:
    """Redis' total_commands_processed (INFO stats)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"INFO stats\r\n")
        data = b""
        deadline = time.monotonic() + 2
        while b"total_commands_processed" not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("total_commands_processed:"):
                return int(line.split(":")[1])
    return None


def redis_clients(port: int) -> int | None:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"INFO clients\r\n")
        time.sleep(0.2)
        data = s.recv(65536).decode(errors="replace")
        for line in data.splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":")[1])
    return None


def listeners(cbase: str, pid: int, redis_port: int, count: int) -> dict[str, Any]:
    before = rss_bytes(pid)
    load = Load(
        {"target": "listeners", "base_url": cbase, "listeners": count, "probes": 20},
        {"coach": pid},
        timeout=600,
    )
    try:
        ready = load.wait_ready()
        time.sleep(2.0)  # let the connections settle
        after = rss_bytes(pid)
        clients = redis_clients(redis_port)
        result = load.go()
    finally:
        load.kill()
    held = max(1, int(ready.get("listeners") or 1))
    out = {
        "ready": ready,
        "result": result,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "rss_delta_mib": (after - before) / 2**20,
        "rss_per_listener_kib": (after - before) / 1024 / held,
        "redis_clients": clients,
    }
    log(
        f"listeners: {result['still_connected']} held, RSS {before / 2**20:.0f} -> "
        f"{after / 2**20:.0f} MiB, redis clients {clients}, probes {result['delivered']}/"
        f"{result['probes']}"
    )
    return out


def scaleout(
    procs: Procs,
    abase: str,
    aproc: subprocess.Popen[bytes],
    redis_port: int,
    upstream: str,
    quick: bool,
    limit: float,
    watch: dict[str, int],
) -> dict[str, Any]:
    bbase, bproc = start_coach(procs, "coach-b", redis_port, upstream)
    watch2 = {**watch, "coach-b": bproc.pid}
    c = 64
    n = 800 if quick else 2500
    spec = {"target": "coach", "concurrency": c, "requests": n, "warmup": 2 * c, "time_limit": limit}
    one = run_load({**spec, "base_url": abase}, watch2)
    two = run_load({**spec, "base_url": f"{abase},{bbase}"}, watch2)
    delivery = Load(
        {"target": "listeners", "base_url": abase, "listen_url": bbase, "listeners": 40, "probes": 20},
        watch2,
        timeout=300,
    )
    try:
        delivery.wait_ready()
        d = delivery.go()
    finally:
        delivery.kill()
    procs.stop(bproc)
    ratio = two["throughput"] / one["throughput"] if one["throughput"] else 0.0
    log(
        f"scale-out: one {one['throughput']:.0f}/s two {two['throughput']:.0f}/s, "
        f"delivery {d['delivered']}/{d['probes']}"
    )
    return {"concurrency": c, "one": one, "two": two, "ratio": ratio, "delivery": d}


if __name__ == "__main__":
    raise SystemExit(main())
