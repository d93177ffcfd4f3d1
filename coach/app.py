"""create_app(settings) -> Litestar. All wiring lives here, and nothing else does."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server

from coach import __version__
from coach.api.auth import current_couple, current_partner
from coach.api.challenge import ChallengeController
from coach.api.content_type import RequireJson
from coach.api.couples import CoupleController
from coach.api.exercises import ExerciseController
from coach.api.health import healthz, readyz
from coach.api.me import MeController
from coach.api.pages import ROUTES as PAGE_ROUTES
from coach.api.problems import handle_exception
from coach.api.ratelimit import RateLimiter
from coach.api.review import ROUTES as REVIEW_ROUTES
from coach.api.rewrite import rewrite
from coach.api.sessions import SessionController
from coach.approvals import ApprovalGate, load_approvals
from coach.catalog import Catalog, load_catalog
from coach.classifier import ModelClassifier
from coach.conversation import Coach
from coach.events import BLOCK_MS, EventHub
from coach.learned import make_learned
from coach.logs import configure
from coach.model import CircuitBreaker, ModelClient, OpenAIClient, ResilientClient
from coach.redis_pool import connection_pool
from coach.reviews import ReviewStore
from coach.settings import Settings
from coach.store import Store
from safety.learned import DEFAULT_MODEL_DIR

log = logging.getLogger("coach.app")


def make_redis(settings: Settings) -> aioredis.Redis:
    if settings.redis_url:
        pool = connection_pool(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            socket_timeout=settings.redis_timeout,
        )
        return aioredis.Redis(connection_pool=pool)
    import fakeredis

    log.warning("COACH_REDIS_URL is not set: using an in-process store; nothing is persisted")
    redis: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return redis


def make_hub_redis(settings: Settings, url: str) -> aioredis.Redis:
    """The event hub's own client: its ``XREAD`` waits up to :data:`coach.events.BLOCK_MS` for new
    events, far longer than a request's command may take (``COACH_REDIS_TIMEOUT``), so it
    reads on a connection whose timeout allows for the wait."""
    pool = connection_pool(url, max_connections=2, socket_timeout=BLOCK_MS / 1000 + settings.redis_timeout)
    return aioredis.Redis(connection_pool=pool)


def make_model(settings: Settings) -> ModelClient | None:
    if not settings.model_configured:
        log.warning("no model API configured: the offline client answers with scripted lines")
        return None
    return OpenAIClient(
        base_url=settings.model_base_url,
        api_key=settings.model_api_key,
        model=settings.model,
        request_timeout=settings.model_timeout,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset),
        max_connections=settings.model_max_connections,
    )


def make_classifier(settings: Settings, catalog: Catalog, gate: ApprovalGate) -> ModelClassifier | None:
    """The optional second safety stage, or None (off, or no model API to ask).

    Its own client: its own circuit breaker (a slow classifier never opens the coaching
    breaker, and a dead model stops costing each message the classifier's timeout) and
    no offline fallback."""
    if not settings.safety_classifier:
        return None
    if not settings.model_configured:
        log.warning("COACH_SAFETY_CLASSIFIER is on but no model API is configured: only the lexicon scans")
        return None
    classifier = ModelClassifier(
        client=OpenAIClient(
            base_url=settings.model_base_url,
            api_key=settings.model_api_key,
            model=settings.model,
            request_timeout=min(settings.model_timeout, settings.safety_classifier_timeout),
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset),
            max_connections=settings.model_max_connections,
        ),
        catalog=catalog,
        gate=gate,
        timeout=settings.safety_classifier_timeout,
    )
    if not classifier.servable:
        log.warning(
            "the safety classifier's template is not in the committed approvals: the second stage "
            "is skipped for as long as counselors have not approved it (see docs/review.md)"
        )
    return classifier


def create_app(
    settings: Settings | None = None,
    *,
    redis: aioredis.Redis | None = None,
    model: ModelClient | None = None,
    today: Callable[[], dt.date] | None = None,
) -> Litestar:
    settings = settings or Settings.from_env()
    configure(settings.log_level)
    given_redis = redis is not None
    redis = redis if redis is not None else make_redis(settings)
    store = Store(redis, retention_seconds=settings.retention_days * 86400)
    catalog = load_catalog(settings.prompts_dir)
    gate = ApprovalGate(
        load_approvals(settings.prompts_dir),
        allow_drafts=settings.allow_draft_templates,
        source=ReviewStore(store),
    )
    client = ResilientClient(model if model is not None else make_model(settings))
    classifier = make_classifier(settings, catalog, gate)
    learned, learned_status = make_learned(
        settings.safety_learned,
        settings.safety_model_dir or DEFAULT_MODEL_DIR,
        settings.safety_learned_lowers,
        settings.safety_learned_exit,
    )
    coach = Coach(
        store=store,
        catalog=catalog,
        model=client,
        turn_deadline=settings.turn_deadline,
        history_turns=settings.history_turns,
        gate=gate,
        classifier=classifier,
        learned=learned,
    )
    hub_redis = redis  # a client given by the caller (the tests) serves the hub as well
    if settings.redis_url and not given_redis:
        hub_redis = make_hub_redis(settings, settings.redis_url)
    hub = EventHub(store, redis=hub_redis)
    clock = today or (lambda: dt.datetime.now(dt.UTC).date())

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await hub.aclose()
            await client.aclose()
            if classifier is not None:
                await classifier.aclose()
            if learned is not None:
                learned.close()
            if hub_redis is not redis:
                await hub_redis.aclose()
            await redis.aclose()

    def const(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    openapi = OpenAPIConfig(
        title="Coach API",
        version=__version__,
        description=(
            "A conversation coach for couples. Errors are application/problem+json "
            "(RFC 9457); see docs/errors.md for every problem type."
        ),
        servers=[Server(url="/")],
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http", scheme="bearer", description="The partner token from /v1/couples"
                )
            }
        ),
    )
    return Litestar(
        route_handlers=[
            CoupleController,
            ExerciseController,
            SessionController,
            ChallengeController,
            MeController,
            rewrite,
            healthz,
            readyz,
            *PAGE_ROUTES,
            *REVIEW_ROUTES,
        ],
        dependencies={
            "settings": const(settings),
            "store": const(store),
            "catalog": const(catalog),
            "coach": const(coach),
            "model": const(client),
            "safety_learned": const(learned_status),
            "safety_learned_lowers": const(learned is not None and learned.lowers),
            "safety_learned_exit": const(learned is not None and learned.exits),
            "gate": const(gate),
            "hub": const(hub),
            "today": const(clock),
            "partner": Provide(current_partner),
            "couple": Provide(current_couple),
        },
        exception_handlers={Exception: handle_exception},
        openapi_config=openapi,
        cors_config=CORSConfig(
            allow_origins=list(settings.widget_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "authorization",
                "content-type",
                "idempotency-key",
                "last-event-id",
                "if-none-match",
            ],
            expose_headers=[
                "etag",
                "retry-after",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                "idempotent-replayed",
            ],
            max_age=600,
        ),
        middleware=[
            RequireJson,
            DefineMiddleware(
                RateLimiter,
                store=store,
                per_token=settings.rate_limit_per_minute,
                per_ip=settings.ip_rate_limit_per_minute,
            ),
        ],
        lifespan=[lifespan],
        before_request=gate.before_request,
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
