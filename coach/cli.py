"""The ``coach`` command: serve, safety eval, templates check, openapi export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safety import Classification
    from safety.cli import Served


def _freeze_heap() -> None:
    """Once the app is up: collect, then move everything alive to the garbage collector's
    permanent generation. A full collection of the startup heap (the app, templates, the
    safety lexicon: ~150,000 objects) took about 100 ms, a stall every request waiting at
    that moment paid (it set the open-loop p99); afterwards only newer objects are scanned.
    Only in the serving process: tests build many apps in one process."""
    import gc

    gc.collect()
    gc.freeze()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from coach.app import create_app
    from coach.settings import Settings

    settings = Settings.from_env()
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0


def openapi_text() -> str:
    """The OpenAPI document exactly as docs/openapi.json holds it."""
    from litestar.serialization import encode_json

    from coach.app import create_app
    from coach.settings import Settings

    app = create_app(Settings.from_env({}))
    schema = json.loads(encode_json(app.openapi_schema.to_schema()))
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _openapi(args: argparse.Namespace) -> int:
    text = openapi_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _model_classify(texts: list[str]) -> dict[str, Classification | None]:
    """``coach safety eval --classifier``: the configured model classifies ``texts``."""
    import asyncio

    import msgspec

    from coach.app import make_classifier
    from coach.approvals import ApprovalGate, load_approvals
    from coach.catalog import load_catalog
    from coach.classifier import classify_all
    from coach.settings import Settings

    settings = msgspec.structs.replace(Settings.from_env(), safety_classifier=True)
    catalog = load_catalog(settings.prompts_dir)
    gate = ApprovalGate(load_approvals(settings.prompts_dir), allow_drafts=True)
    classifier = make_classifier(settings, catalog, gate) if settings.model_configured else None
    if classifier is None:
        raise ValueError("--classifier needs a model API: set COACH_MODEL_BASE_URL and/or OPENAI_API_KEY")
    template = catalog.classifier
    if gate.is_draft(template):
        print(f"note: evaluating the unapproved draft {template.id}@{template.version}", file=sys.stderr)

    async def run() -> dict[str, Classification | None]:
        try:
            return await classify_all(classifier, texts)
        finally:
            await classifier.aclose()

    results = asyncio.run(run())
    failed = sum(result is None for result in results.values())
    print(
        f"classifier: {settings.model} asked about {len(texts)} texts the lexicon did not flag; "
        f"{failed} failed (the lexicon verdict stands for those)",
        file=sys.stderr,
    )
    return results


def _served_stage() -> Served:
    """The learned stage as this coach's settings serve it: what ``coach safety eval``
    measures by default. Unreadable settings leave the coach's defaults (``serve`` is the
    command that refuses them)."""
    from coach.settings import Settings
    from safety.cli import SERVED_DEFAULT, Served

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"note: {exc}; measuring with the coach's default settings", file=sys.stderr)
        return SERVED_DEFAULT
    return Served(
        learned=settings.safety_learned,
        lowers=settings.safety_learned_lowers,
        model_dir=settings.safety_model_dir,
        early_exit=settings.safety_learned_exit,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["safety"]:
        from safety.cli import main as safety_main

        return safety_main(argv[1:], classify=_model_classify, served=_served_stage())
    if argv[:1] in (["templates"], ["counselor"]):
        from coach.review_cli import main as review_main

        return review_main(argv)
    parser = argparse.ArgumentParser(prog="coach", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the coach (settings from COACH_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_serve)
    openapi = sub.add_parser("openapi", help="print or write the OpenAPI 3.1 schema")
    openapi.add_argument("--output", "-o")
    openapi.set_defaults(func=_openapi)
    sub.add_parser("safety", help="safety eval FILE.jsonl [--format json] [--classifier | --learned]")
    sub.add_parser("templates", help="templates check: every served template approved, renders")
    sub.add_parser("counselor", help="counselor add NAME [--role admin]")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
