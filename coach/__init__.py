"""Coach: a conversation coach for couples."""

from __future__ import annotations

__version__ = "0.1.0"
