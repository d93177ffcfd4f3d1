"""Settings, .env.example and compose.yaml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
import yaml

from coach.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    assert set(env_example()) == {var for var, _ in ENV_VARS.values()}
    assert set(ENV_VARS) == set(Settings.__struct_fields__)


def test_env_example_values_are_the_defaults() -> None:
    from_file = Settings.from_env(env_example())
    assert from_file.prompts_dir == Path("prompts")  # the same folder, named from the checkout
    assert msgspec.structs.replace(from_file, prompts_dir=Settings().prompts_dir) == Settings()


def test_folders_from_the_environment_are_read_as_paths() -> None:
    """The Dockerfile names both folders in the environment: the image's coach must start."""
    env_line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if "COACH_PROMPTS_DIR" in line
    )
    env = dict(pair.split("=", 1) for pair in env_line.removeprefix("ENV ").split())
    s = Settings.from_env(env)
    assert s.prompts_dir == Path("/app/prompts")
    assert s.safety_model_dir == Path("/app/safety-model")


def test_settings_read_the_environment() -> None:
    s = Settings.from_env(
        {
            "COACH_REDIS_URL": "redis://r:6379/0",
            "OPENAI_API_KEY": "sk-x",
            "COACH_TURN_DEADLINE": "12.5",
            "COACH_WIDGET_ORIGINS": "https://a.example/, https://b.example",
            "COACH_ALLOW_DRAFT_TEMPLATES": "yes",
        }
    )
    assert s.redis_url == "redis://r:6379/0" and s.model_configured
    assert s.turn_deadline == 12.5
    assert s.widget_origins == ("https://a.example", "https://b.example")
    assert s.allow_draft_templates is True
    with pytest.raises(ValueError, match="port"):
        Settings.from_env({"COACH_PORT": "eighty"})


def test_the_safety_classifier_is_off_unless_switched_on() -> None:
    assert Settings().safety_classifier is False
    on = Settings.from_env({"COACH_SAFETY_CLASSIFIER": "on", "COACH_SAFETY_CLASSIFIER_TIMEOUT": "1.5"})
    assert on.safety_classifier is True and on.safety_classifier_timeout == 1.5
    assert Settings.from_env({"COACH_SAFETY_CLASSIFIER": "false"}).safety_classifier is False


def test_compose_file_is_valid() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"app", "redis", "model"} <= set(services)
    assert services["app"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["app"] and "healthcheck" in services["redis"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["model"]["profiles"] == ["local-model"]
    for var in re.findall(r"\b(COACH_[A-Z_]+|OPENAI_API_KEY)\b", (ROOT / "compose.yaml").read_text()):
        assert var in {v for v, _ in ENV_VARS.values()}, var
    for volume in services["redis"]["volumes"]:
        assert volume.split(":")[0] in compose["volumes"]


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "requirements.lock" in text
