"""One settings object, read from the environment (prefix ``COACH_``).

Every field maps to one variable; ``.env.example`` lists them all (a test keeps the
two in step). ``OPENAI_API_KEY`` is honoured as the conventional name for the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
_FLAGS = frozenset(
    {
        "allow_draft_templates",
        "safety_classifier",
        "safety_learned",
        "safety_learned_lowers",
        "safety_learned_exit",
    }
)
#: Folders: msgspec does not turn a string into a Path, so these are made Paths here.
_PATHS = frozenset({"safety_model_dir", "prompts_dir"})

# name -> (env var, help text). The order is the order of .env.example.
ENV_VARS: dict[str, tuple[str, str]] = {
    "host": ("COACH_HOST", "Interface to serve on."),
    "port": ("COACH_PORT", "Port to serve on."),
    "redis_url": (
        "COACH_REDIS_URL",
        "Redis URL. Empty: an in-process store (fakeredis), nothing persisted.",
    ),
    "redis_max_connections": (
        "COACH_REDIS_MAX_CONNECTIONS",
        "Redis connection pool size; a request waits for a free connection (up to 5 s).",
    ),
    "redis_timeout": (
        "COACH_REDIS_TIMEOUT",
        "Seconds Redis may take to answer a command; then the request fails fast with 503 "
        "store-unavailable instead of hanging on a stalled or unreachable Redis.",
    ),
    "model_base_url": (
        "COACH_MODEL_BASE_URL",
        "OpenAI-compatible API base URL (OpenAI, vLLM, Ollama, llama.cpp). Empty: offline.",
    ),
    "model_api_key": ("OPENAI_API_KEY", "API key for the model API."),
    "model": ("COACH_MODEL", "Model name sent to the model API."),
    "model_timeout": ("COACH_MODEL_TIMEOUT", "Seconds one model request may take."),
    "turn_deadline": (
        "COACH_TURN_DEADLINE",
        "Seconds a whole turn may spend on the model, retries included, before the offline fallback answers.",
    ),
    "breaker_failures": (
        "COACH_BREAKER_FAILURES",
        "Consecutive failed turns that open the model circuit breaker.",
    ),
    "breaker_reset": (
        "COACH_BREAKER_RESET",
        "Seconds the breaker stays open before one trial request.",
    ),
    "model_max_connections": (
        "COACH_MODEL_MAX_CONNECTIONS",
        "Connection pool size towards the model API.",
    ),
    "safety_learned": (
        "COACH_SAFETY_LEARNED",
        "Learned safety stage: a local sentence-embedding model scores each message the lexicon did not "
        "flag as risk or danger (a few ms of CPU; it can only raise severity). Needs `make model`.",
    ),
    "safety_learned_lowers": (
        "COACH_SAFETY_LEARNED_LOWERS",
        "On by default since round thirty-eight: let the learned stage lower a lexicon verdict of risk "
        "(never danger, since session twenty-nine) to concern when it is sure the text is no disclosure; the "
        "message is then held private to its author, answered with the resources and no pause, until they "
        "share it (docs/safety.md). Off: every lexicon alarm pauses the exercise.",
    ),
    "safety_learned_exit": (
        "COACH_SAFETY_LEARNED_EXIT",
        "Use the early exit safety/data/learned/settings.json names: the learned stage stops after the "
        "exit's layer when a head there is sure the message is ordinary. None is named since round "
        "twenty-five (its exit let too few ordinary messages out), so this changes nothing now. Off: every "
        "message runs the whole encoder. With COACH_SAFETY_LEARNED_LOWERS on, a message the lexicon "
        "alarmed on is scored in full.",
    ),
    "safety_model_dir": (
        "COACH_SAFETY_MODEL_DIR",
        "Folder of the learned stage's built encoder. Empty: .cache/safety-model beside the code.",
    ),
    "safety_classifier": (
        "COACH_SAFETY_CLASSIFIER",
        "Optional second safety stage: a model classifies each message the lexicon did not flag as risk "
        "or danger (one more model call per message; it can only raise severity).",
    ),
    "safety_classifier_timeout": (
        "COACH_SAFETY_CLASSIFIER_TIMEOUT",
        "Seconds the safety classifier may take; after that the lexicon verdict stands.",
    ),
    "prompts_dir": ("COACH_PROMPTS_DIR", "Folder of templates, help messages and approvals."),
    "retention_days": (
        "COACH_RETENTION_DAYS",
        "Days a couple's data is kept after their last activity.",
    ),
    "max_message_chars": ("COACH_MAX_MESSAGE_CHARS", "Longest accepted message, in characters."),
    "max_body_bytes": ("COACH_MAX_BODY_BYTES", "Largest accepted request body, in bytes."),
    "history_turns": (
        "COACH_HISTORY_TURNS",
        "Earlier turns of the session sent to the model with each message.",
    ),
    "default_country": (
        "COACH_DEFAULT_COUNTRY",
        "Country code for help resources when a couple gives none (INTL: international).",
    ),
    "widget_origins": (
        "COACH_WIDGET_ORIGINS",
        "Comma-separated origins allowed to embed the widget (CORS).",
    ),
    "allow_draft_templates": (
        "COACH_ALLOW_DRAFT_TEMPLATES",
        "Development only: serve templates that are not approved (replies are marked draft).",
    ),
    "rate_limit_per_minute": (
        "COACH_RATE_LIMIT_PER_MINUTE",
        "Requests a token may make per minute (0 disables).",
    ),
    "ip_rate_limit_per_minute": (
        "COACH_IP_RATE_LIMIT_PER_MINUTE",
        "Requests one client address may make per minute (0 disables).",
    ),
    "heartbeat_seconds": (
        "COACH_HEARTBEAT_SECONDS",
        "Seconds between SSE heartbeat comments.",
    ),
    "log_level": ("COACH_LOG_LEVEL", "Log level (DEBUG shows message text; INFO never does)."),
}


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    redis_max_connections: int = 256
    redis_timeout: float = 2.0
    model_base_url: str | None = None
    model_api_key: str | None = None
    model: str = "gpt-4o-mini"
    model_timeout: float = 20.0
    turn_deadline: float = 30.0
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    model_max_connections: int = 100
    safety_learned: bool = True
    safety_learned_lowers: bool = True
    safety_learned_exit: bool = True
    safety_model_dir: Path | None = None
    safety_classifier: bool = False
    safety_classifier_timeout: float = 3.0
    prompts_dir: Path = ROOT / "prompts"
    retention_days: int = 90
    max_message_chars: int = 4000
    max_body_bytes: int = 65536
    history_turns: int = 12
    default_country: str = "INTL"
    widget_origins: tuple[str, ...] = ("http://127.0.0.1:8000", "http://localhost:8000")
    allow_draft_templates: bool = False
    rate_limit_per_minute: int = 120
    ip_rate_limit_per_minute: int = 600
    heartbeat_seconds: float = 15.0
    log_level: str = "INFO"

    @property
    def model_configured(self) -> bool:
        return bool(self.model_base_url or self.model_api_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); empty values count as unset."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field, (var, _help) in ENV_VARS.items():
            value = env.get(var, "").strip()
            if not value and field == "model_api_key":
                value = env.get("COACH_MODEL_API_KEY", "").strip()
            if not value:
                continue
            if field == "widget_origins":
                raw[field] = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
            elif field in _FLAGS:
                raw[field] = value.lower() in {"1", "true", "yes", "on"}
            elif field in _PATHS:
                raw[field] = Path(value)
            else:
                raw[field] = value
        raw.update(overrides)
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid setting: {exc}") from exc
