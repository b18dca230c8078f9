"""The language of an article: its ``lang`` field when it has one, else detected from its text.

Detection uses py3langid (a maintained re-packaging of langid.py: a small naive-Bayes model
of about 140 languages, no network), loaded on first use. Dead, constructed and pidgin
languages are left out of its choices (``IGNORED``): on English headlines Nigerian Pidgin and
Latin were its commonest mistakes. Codes are ISO 639-1 where one exists, lower case, without
region or script (``az-Latn-AZ`` and ``AZ`` are both ``az``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

#: Text read for detection: the title and the start of the body are enough, and bound the cost.
DETECT_CHARS = 400

#: Languages detection never answers: pidgins of English, dead and constructed languages.
IGNORED = frozenset({"pcm", "la", "grc", "hbo", "sa", "vo", "eo", "zxx"})

#: Codes that name no one language: undetermined, multiple, uncoded, no linguistic content.
UNDETERMINED = frozenset({"und", "mul", "mis", "zxx"})

#: Detection must be at least this sure for an article's language to count as known: English
#: headlines are detected as another language with probability >= 0.5 in 0.06% of
#: uci-news-2014-04.
CONFIDENCE = 0.5

_lock = threading.Lock()
_identifier: Any = None


def normalise(code: str | None) -> str | None:
    """``code``'s primary language subtag in lower case (``en-GB`` -> ``en``), None if empty."""
    if code is None:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or None


def detect(text: str, *, min_confidence: float = 0.0) -> str | None:
    """The most likely language of ``text``; None when it has no letters to go by or when
    the model's probability for its best guess is below ``min_confidence``."""
    text = text[:DETECT_CHARS]
    if not any(ch.isalpha() for ch in text):
        return None
    code, probability = _model().classify(text)
    if probability < min_confidence:
        return None
    return normalise(str(code))


def of(lang: str | None, title: str, body: str = "", *, min_confidence: float = 0.0) -> str | None:
    """An article's language: its own ``lang`` if given (and not a code for "undetermined"
    such as ``und``), else the one detected from its text (None below ``min_confidence``)."""
    given = normalise(lang)
    if given is not None and given not in UNDETERMINED:
        return given
    return detect(f"{title[:DETECT_CHARS]}\n{body[:DETECT_CHARS]}", min_confidence=min_confidence)


def effective(lang: str | None, title: str, body: str = "") -> str | None:
    """The language the index keeps for an article (filters, per-language evaluation, stop
    words): its ``lang`` field, else the detected one when detection is sure
    (``CONFIDENCE``), else None (unknown)."""
    return of(lang, title, body, min_confidence=CONFIDENCE)


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

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages([code for code in identifier.labels if code not in IGNORED])
            _identifier = identifier
        return _identifier
