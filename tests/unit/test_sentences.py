from __future__ import annotations

from coach.sentences import SentenceBuffer


def test_sentences_are_released_only_when_complete() -> None:
    buf = SentenceBuffer()
    assert buf.feed("That sounds") == []
    assert buf.feed(" hard. What") == ["That sounds hard. "]
    assert buf.feed(" helped?") == ["What helped?"]  # released with its last token
    assert buf.feed("\nOk") == ["\n"]
    assert buf.feed("") == []
    assert buf.flush() == "Ok"
    assert buf.flush() == ""


def test_decimals_and_abbreviations_without_space_do_not_split() -> None:
    buf = SentenceBuffer()
    assert buf.feed("It costs 3.50 now") == []
    assert buf.feed('. "Really!" Yes. ') == ["It costs 3.50 now. ", '"Really!" ', "Yes. "]
