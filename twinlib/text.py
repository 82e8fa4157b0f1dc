"""Plain text for what people read in a terminal, a log or a browser without emoji fonts."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["plain_text"]

_SYMBOL_CATEGORIES = frozenset({"So", "Sk", "Cs", "Co"})
_SPACES = re.compile(r"\s{2,}")


def plain_text(text):
    """``text`` without pictographs (emoji, dingbats, their variation selectors and joiners):
    API messages are plain text that every terminal, log and font shows. ``°``, ``σ``, ``→``
    and other letters and math stay."""
    if not text or text.isascii():
        return text
    kept = []
    for ch in text:
        cp = ord(ch)
        if (unicodedata.category(ch) in _SYMBOL_CATEGORIES and ch not in "°©®") or \
                0xFE00 <= cp <= 0xFE0F or cp in (0x200D, 0x20E3) or 0x1F3FB <= cp <= 0x1F3FF:
            continue
        kept.append(ch)
    return _SPACES.sub(" ", "".join(kept)).strip()
