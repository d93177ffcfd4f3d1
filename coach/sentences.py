"""Split streamed text into sentences, so each can be safety-checked before it is shown."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … (with closing quotes/brackets) followed by whitespace or
# by the end of what has arrived so far (so a sentence is released as soon as its last
# token is in, not when the next one comes), or at a line break.
_END = re.compile(r"""[.!?…]+["')\]]*(?:\s+|$)|\n+""")


class SentenceBuffer:
    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the sentences it completed (with trailing space)."""
        self._pending += delta
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._pending):
            out.append(self._pending[start : match.end()])
            start = match.end()
        self._pending = self._pending[start:]
        return out

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest
