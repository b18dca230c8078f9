"""The language of an article: its ``lang`` field when it has one, else detected from its text.

Detection uses py3langid (a maintained re-packaging of langid.py: a small naive-Bayes model
of about 140 languages, no network), loaded on first use. Dead, constructed and pidgin
languages are left out of its choices (``IGNORED``): on English headlines Nigerian Pidgin and
Latin were its commonest mistakes.

Every code that enters (an article's ``lang``, a query's, a detected one, a stored one) is
normalised to one code per language (``normalise``): ISO 639-1 where one exists, lower case,
without script or region, whichever form it came in (``en``, ``eng``, ``EN-gb``, ``az-Latn-AZ``,
``rus_Cyrl``, ``iw``, ``Russian``, ``русский``). The tables are langcodes' (ISO 639, the IANA
language subtag registry and CLDR's aliases) and language_data's (CLDR's language names).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache
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

#: The longest ``lang`` value looked up: tags and language names are far shorter, and a longer
#: value (a client may send megabytes) names no language.
MAX_CODE_CHARS = 64

#: Where this engine's code differs from CLDR's choice. Tagalog keeps its ISO 639-1 code ``tl``
#: (CLDR: ``fil``, which has none), as py3langid and stopwordsiso name it; Norwegian Bokmål is
#: Norwegian, ``no`` (a macrolanguage, as ``azj`` is ``az``): py3langid answers ``no`` for it
#: and stopwordsiso's list is ``no``. Norwegian Nynorsk stays ``nn``.
PREFERRED = {"fil": "tl", "nb": "no"}

_lock = threading.Lock()
_identifier: Any = None
_LANGUAGE_SUBTAG = re.compile(r"[a-z]{2,3}")
_NAME_PUNCTUATION = re.compile("[\\s(),'\u2019-]")  # what language_data ignores in a name


def normalise(code: str | None) -> str | None:
    """One code per language for ``code`` in any common form: ISO 639-1, 639-2/B and /T and
    639-3 codes (``eng``, ``ger``, ``deu``; individual languages within a macrolanguage as it,
    ``azj`` -> ``az``, ``cmn`` -> ``zh``), BCP 47 tags with script and region (``az-Latn-AZ``,
    ``sr_Latn_RS``, ``rus_Cyrl``), deprecated codes (``iw`` -> ``he``), in any case, and
    language names in English or in the language (``Russian``, ``русский``).

    A code of none of these forms is kept as before: its primary subtag in lower case (``xx-YY``
    -> ``xx``); ``recognised`` tells them apart. None for None, an empty value, or one that
    cannot be a code or a name (longer than ``MAX_CODE_CHARS``, or holding control characters).
    """
    return _looked_up(code)[0]


def recognised(code: str | None) -> bool:
    """Whether ``normalise`` found ``code`` in langcodes' tables (``und`` included), rather
    than keeping it as given."""
    return _looked_up(code)[1]


def _looked_up(code: str | None) -> tuple[str | None, bool]:
    if code is None:
        return None, False
    text = code.strip()
    if not text or len(text) > MAX_CODE_CHARS or not text.isprintable():
        return None, False
    return _normalised(text)


@lru_cache(maxsize=4096)
def _normalised(text: str) -> tuple[str | None, bool]:
    """(the code of ``text``, whether it was recognised), for a stripped, short, printable one."""
    found = _from_tag(text)
    if found is None:
        found = _from_name(text)
    if found is not None:
        return found, True
    primary = text.replace("_", "-").split("-", 1)[0].strip()
    if primary != text:  # its primary subtag may be a name (中文-Hans)
        return _normalised(primary) if primary else (None, False)
    return text.lower(), False


def _from_tag(text: str) -> str | None:
    """The code of a language tag (or of a POSIX locale such as ``en_US.UTF-8``), if valid.

    Only its language part is looked up: script, region and the rest do not change the code,
    and langcodes keeps every tag it parses, so what it is given must come from a small set
    (3-letter codes and fewer, and the irregular tags of its own table such as ``zh-min-nan``):
    about 11 MB if a client sent every one, however many distinct tags it sends."""
    from langcodes.data_dicts import LANGUAGE_REPLACEMENTS

    subtags = re.split(r"[-_]", re.split(r"[.@]", text, maxsplit=1)[0].lower())
    for count in (3, 2):
        irregular = "-".join(subtags[:count])
        if len(subtags) >= count and irregular in LANGUAGE_REPLACEMENTS:
            return _code(irregular)
    if not _LANGUAGE_SUBTAG.fullmatch(subtags[0]):
        return None
    return _code(subtags[0])


def _from_name(text: str) -> str | None:
    """The code of a language's name (in English or another language), if it is one. Latin
    text of three letters or fewer is not taken for a name (the names that short which are not
    also codes are of small languages, ``E``, ``En``: the likelier meaning is a code mistyped),
    nor is one other letter alone; ``中文`` is."""
    import langcodes

    bare = _NAME_PUNCTUATION.sub("", text)
    if len(bare) < (4 if bare.isascii() else 2):
        return None
    try:
        found = langcodes.find(text)
    # SystemError and UnicodeDecodeError (a ValueError) are what its name trie raised on
    # strings with NUL; normalise does not pass those, but a lookup never fails a request.
    except (LookupError, ValueError, SystemError):
        return None
    return _code(found.language) if found.language else None


def _code(key: str) -> str | None:
    """The code of a language subtag or irregular tag that langcodes holds as valid."""
    from langcodes import Language
    from langcodes.tag_parser import LanguageTagError

    try:
        parsed = Language.get(key, normalize=True)
    except LanguageTagError:
        return None
    if not parsed.is_valid():
        return None
    code = parsed.prefer_macrolanguage().language or "und"
    if not _LANGUAGE_SUBTAG.fullmatch(code):  # private use (x-...)
        return None
    return PREFERRED.get(code, code)


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
