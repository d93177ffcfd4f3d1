# Slim, non-root image of the coach.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-deps -r requirements.lock
COPY coach ./coach
COPY safety ./safety
COPY prompts ./prompts
RUN pip install --no-deps . && useradd --system --uid 10001 coach
USER coach
ENV COACH_PROMPTS_DIR=/app/prompts COACH_HOST=0.0.0.0
EXPOSE 8000
CMD ["coach", "serve"]
