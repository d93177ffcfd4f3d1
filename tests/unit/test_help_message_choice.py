"""Which counselor-approved help message a disclosure gets.

The message follows the categories of the signals that make the disclosure (risk or
above), and those name who did it: a partner's burn on the writer's arm is abuse, not
self-harm; a writer who saw someone else hit a friend, or who is threatened with a false
accusation, is not the one harming. Before 2026-12-05 each of these got the self-harm or
the author-of-harm message, and a partner's threat to drive the family off a cliff the
self-harm message (safety/data/README.md, "Which help message").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.catalog import load_catalog
from coach.helpmessages import choose_template
from safety import scan

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "prompts")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("He hits me and I feel worthless.", "help.risk"),
        ("he burned my arm with a cigarette", "help.risk"),
        ("I saw her husband shove her into the car on Sunday", "help.risk"),
        ("i heard him hitting her through the wall last night", "help.risk"),
        ("she'll tell the police I hit her, which I never did", "help.risk"),
        ("I've been cutting my arms again", "help.risk.self_harm"),
        ("been burning my arm with a lighter", "help.risk.self_harm"),
        ("I slapped my girlfriend last night and I feel sick about it.", "help.author_of_harm"),
        ("I saw red and hit him", "help.author_of_harm"),
        ("She says I hit her and it's true, I'm ashamed", "help.author_of_harm"),
        ("I want to kill myself tonight, I have the pills ready.", "help.danger.self_harm"),
        (
            "My husband said he'd drive us all off a cliff, the kids too, if I ever tried to leave.",
            "help.danger",
        ),
        (
            "He laid his hunting knife on the pillow next to me and said goodnight like it was nothing",
            "help.danger",
        ),
        ("she said she'll drive the car into the river with the kids in it if i leave her", "help.danger"),
        ("He told me to go kill myself and part of me thinks he's right.", "help.danger.self_harm"),
        ("I put a tracking app on my wife's phone without telling her", "help.author_of_harm"),
        ("i smacked our 4yo way harder than i meant to and it left a handprint", "help.author_of_harm"),
    ],
)
def test_the_help_message_fits_who_did_what(text: str, message: str) -> None:
    verdict = scan(text)
    assert verdict.is_disclosure
    assert choose_template(CATALOG, verdict).id == message
