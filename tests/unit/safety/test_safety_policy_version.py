"""POLICY_VERSION follows the data: any change to the lexicon data changes it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from safety import POLICY_VERSION, Severity
from safety.lexicon import Lexicon
from safety.scanner import scan_with


def test_version_format() -> None:
    assert re.fullmatch(r"\d{4}\.\d+\.\d+\+[0-9a-f]{10}", POLICY_VERSION)


def test_same_data_same_version(data_copy: Path) -> None:
    assert Lexicon.load(data_copy).policy_version == POLICY_VERSION


def test_changed_data_changes_version_and_behaviour(data_copy: Path) -> None:
    lex = data_copy / "lexicon.yaml"
    text = lex.read_text(encoding="utf-8")
    text = text.replace('      - "{choke_verb} (me|{other_victim})"\n', "", 1)
    # the broad cue signal also catches "throttled me": remove it too
    text = text.replace(
        '      - "(strangl(e|es|ed|ing)|throttl(e|es|ed|ing)) (me|her|him|us|my|{other_victim})"\n', "", 1
    )
    lex.write_text(text, encoding="utf-8")
    changed = Lexicon.load(data_copy)
    assert changed.policy_version != POLICY_VERSION
    assert scan_with(changed, "he throttled me").severity is not Severity.DANGER


def test_resource_change_changes_version(data_copy: Path) -> None:
    res = data_copy / "resources.yaml"
    res.write_text(res.read_text(encoding="utf-8") + "\n# reviewed\n", encoding="utf-8")
    assert Lexicon.load(data_copy).policy_version != POLICY_VERSION
    shutil.rmtree(data_copy)
