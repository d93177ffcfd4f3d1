"""The process-wide compiled lexicon and the public scan functions."""

from __future__ import annotations

from safety.lexicon import Lexicon
from safety.scanner import scan_with
from safety.verdict import ScanContext, Verdict

LEXICON = Lexicon.load()
POLICY_VERSION: str = LEXICON.policy_version


def scan(text: str, context: ScanContext | None = None) -> Verdict:
    """Scan one message (or, with ``source="reply"``, one model reply)."""
    return scan_with(LEXICON, text, context)


def scan_reply(text: str, after_disclosure: bool = False) -> Verdict:
    """Scan a model reply: message signals plus the reply checks."""
    return scan_with(LEXICON, text, ScanContext(source="reply", after_disclosure=after_disclosure))
