# Slim, non-root image of the coach.

# The learned safety stage's encoder: fetched (pinned, sha256-checked), built, quantised and
# checked against reference embeddings at image build (safety/learned_build.py); onnx and
# safetensors stay in this stage (pins from requirements-dev.lock).
FROM python:3.11-slim AS model
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock \
 && pip install --no-deps onnx==1.23.2 ml-dtypes==0.6.0 safetensors==0.8.0
COPY safety ./safety
RUN python -m safety.learned_build /opt/safety-model

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-deps -r requirements.lock
COPY coach ./coach
COPY safety ./safety
COPY prompts ./prompts
RUN pip install --no-deps . && useradd --system --uid 10001 coach
COPY --from=model /opt/safety-model /app/safety-model
USER coach
ENV COACH_PROMPTS_DIR=/app/prompts COACH_HOST=0.0.0.0 COACH_SAFETY_MODEL_DIR=/app/safety-model
EXPOSE 8000
CMD ["coach", "serve"]
