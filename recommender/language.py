"""The language of an article: its ``lang`` field when it has one, else detected from its text.

Detection uses py3langid (a maintained re-packaging of langid.py: 97 languages, a small
naive-Bayes model, no network), loaded on first use. Codes are ISO 639-1 where one exists,
lower case, without region or script (``az-Latn-AZ`` and ``AZ`` are both ``az``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

#: Text read for detection: the title and the start of the body are enough, and bound the cost.
DETECT_CHARS = 400

_lock = threading.Lock()
_identifier: Any = None


def normalise(code: str | None) -> str | None:
    """``code``'s primary language subtag in lower case (``en-GB`` -> ``en``), None if empty."""
    if code is None:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or None


def detect(text: str) -> str | None:
    """The most likely language of ``text``, or None when it has no letters to go by."""
    text = text[:DETECT_CHARS]
    if not any(ch.isalpha() for ch in text):
        return None
    code, _score = _model().classify(text)
    return normalise(str(code))


def of(lang: str | None, title: str, body: str = "") -> str | None:
    """An article's language: its own ``lang`` if given, else the one detected from its text."""
    given = normalise(lang)
    if given is not None:
        return given
    return detect(f"{title}\n{body[:DETECT_CHARS]}")


def share(languages: Iterable[str | None], code: str) -> float:
    """The share of ``languages`` (None counted as not ``code``) that are ``code``; 0 if none."""
    seen = hits = 0
    for language in languages:
        seen += 1
        hits += language == code
    return hits / seen if seen else 0.0


def _model() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        return _identifier
