"""The learned stage's encoder is the published MiniLM with trained layers (round twenty on)
in place (safety/learned_build.py): the build applies them, records what it applied, and
a stage whose encoder was built from other weights refuses to load rather than scoring
every message wrongly. Needs `make model`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safety.learned import (
    BACK_FILE,
    DATA_DIR,
    DEFAULT_MODEL_DIR,
    ENCODER_FILE,
    FRONT_FILE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    LearnedStage,
    LearnedStageUnavailable,
    LinearHeads,
    sha256_file,
)
from safety.learned_build import LAYER_KEYS, BuildError, apply_layers, is_built, trained_layers


def _model_dir_with(tmp_path: Path, manifest: dict[str, object] | None) -> Path:
    for name in (ENCODER_FILE, FRONT_FILE, BACK_FILE, TOKENIZER_FILE):
        if (DEFAULT_MODEL_DIR / name).is_file():
            (tmp_path / name).symlink_to(DEFAULT_MODEL_DIR / name)
    if manifest is not None:
        (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


def test_the_built_encoder_records_the_trained_layers_it_was_built_with() -> None:
    layers = trained_layers()
    assert layers is not None and layers.is_file()
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["layers"] == layers.name
    assert manifest["layers_sha256"] == sha256_file(layers)
    assert is_built(DEFAULT_MODEL_DIR)


def test_an_encoder_built_from_other_weights_is_refused(tmp_path: Path) -> None:
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    stale = _model_dir_with(tmp_path, {**manifest, "layers": None, "layers_sha256": None})
    with pytest.raises(LearnedStageUnavailable, match=r"not built with layers\.npz"):
        LearnedStage.load(stale)
    assert not is_built(stale)  # so `make model` / learned_build rebuilds it


def test_an_encoder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LearnedStageUnavailable, match=MANIFEST_FILE):
        LearnedStage.load(_model_dir_with(tmp_path, None))


def _published_like(n: int = 2) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    emb = {"eg": np.ones(4, np.float32), "eb": np.zeros(4, np.float32), "word": np.ones((3, 4), np.float32)}
    layers = [{k: np.zeros((4, 4), np.float32) for k in LAYER_KEYS} for _ in range(n)]
    return emb, layers


def test_apply_layers_puts_the_trained_arrays_in_place_as_float32(tmp_path: Path) -> None:
    emb, layers = _published_like()
    trained = {f"l{i}_{k}": np.full((4, 4), i + 1, np.float16) for i in range(2) for k in LAYER_KEYS}
    np.savez(tmp_path / "layers.npz", eg=np.full(4, 2, np.float16), eb=np.full(4, 3, np.float16), **trained)
    new_emb, new_layers = apply_layers(emb, layers, tmp_path / "layers.npz")
    assert new_emb["word"] is emb["word"]  # the word embeddings stay as published
    assert new_emb["eg"].dtype == np.float32 and (new_emb["eg"] == 2).all() and (new_emb["eb"] == 3).all()
    for i, layer in enumerate(new_layers):
        assert all(layer[k].dtype == np.float32 and (layer[k] == i + 1).all() for k in LAYER_KEYS)


def test_apply_layers_refuses_arrays_of_another_shape(tmp_path: Path) -> None:
    emb, layers = _published_like()
    trained = {f"l{i}_{k}": np.zeros((4, 5), np.float16) for i in range(2) for k in LAYER_KEYS}
    np.savez(tmp_path / "layers.npz", eg=np.ones(4, np.float16), eb=np.ones(4, np.float16), **trained)
    with pytest.raises(BuildError, match="shape"):
        apply_layers(emb, layers, tmp_path / "layers.npz")


def test_a_file_with_fewer_layers_gives_an_encoder_of_that_depth(tmp_path: Path) -> None:
    emb, layers = _published_like(n=6)
    trained = {f"l{i}_{k}": np.full((4, 4), 7, np.float16) for i in range(3) for k in LAYER_KEYS}
    np.savez(tmp_path / "layers.npz", eg=np.ones(4, np.float16), eb=np.ones(4, np.float16), **trained)
    _, new_layers = apply_layers(emb, layers, tmp_path / "layers.npz")
    assert len(new_layers) == 3  # the published layers past the file's are dropped, not kept untrained
    assert all((layer[k] == 7).all() for layer in new_layers for k in LAYER_KEYS)


def test_apply_layers_refuses_more_layers_than_the_published_encoder(tmp_path: Path) -> None:
    emb, layers = _published_like(n=2)
    trained = {f"l{i}_{k}": np.zeros((4, 4), np.float16) for i in range(3) for k in LAYER_KEYS}
    np.savez(tmp_path / "layers.npz", eg=np.ones(4, np.float16), eb=np.ones(4, np.float16), **trained)
    with pytest.raises(BuildError, match="3 layers"):
        apply_layers(emb, layers, tmp_path / "layers.npz")


def test_linear_heads_refuse_a_file_that_is_not_a_pos_danger_pair(tmp_path: Path) -> None:
    np.savez(tmp_path / "head.npz", w=np.zeros((384, 3), np.float32), b=np.zeros(3, np.float32))
    with pytest.raises(LearnedStageUnavailable, match="pos/danger"):
        LinearHeads.load(tmp_path / "head.npz")
    assert (DATA_DIR / "head.npz").is_file()
