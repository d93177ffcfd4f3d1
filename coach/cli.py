"""The ``coach`` command: serve, safety eval, templates check, openapi export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from coach.app import create_app
    from coach.settings import Settings

    settings = Settings.from_env()
    app = create_app(settings)
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["safety"]:
        from safety.cli import main as safety_main

        return safety_main(argv[1:])
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
    sub.add_parser("safety", help="safety eval FILE.jsonl [--format json]")
    sub.add_parser("templates", help="templates check: every served template approved, renders")
    sub.add_parser("counselor", help="counselor add NAME [--role admin]")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
