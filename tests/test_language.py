"""Language codes and detection (recommender.language)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender import language

#: Every common form of a language code, and what it becomes.
FORMS = [
    # ISO 639-1, any case, with spaces around
    ("en", "en"),
    ("EN", "en"),
    (" ru ", "ru"),
    # ISO 639-2/T and /B, ISO 639-3
    ("eng", "en"),
    ("rus", "ru"),
    ("aze", "az"),
    ("deu", "de"),
    ("ger", "de"),
    ("fra", "fr"),
    ("fre", "fr"),
    ("tur", "tr"),
    ("ENG", "en"),
    ("tat", "tt"),  # a code before a name: langcodes.find("tat") is Tat (ttt)
    # ISO 639-3 individual languages within a macrolanguage: the macrolanguage
    ("azj", "az"),
    ("cmn", "zh"),
    ("arb", "ar"),
    ("pes", "fa"),
    ("zsm", "ms"),
    ("ydd", "yi"),
    # BCP 47 tags with script and region, NLLB/fastText's underscores, POSIX locales
    ("az-Latn-AZ", "az"),
    ("AZ", "az"),
    ("en_GB", "en"),
    ("en-GB", "en"),
    ("TR-tr", "tr"),
    ("sr_Latn_RS", "sr"),
    ("rus_Cyrl", "ru"),
    ("azj_Latn", "az"),
    ("zh-Hant-TW", "zh"),
    ("en_US.UTF-8", "en"),
    ("zh-yue", "yue"),
    ("zh-min-nan", "nan"),
    ("i-klingon", "tlh"),
    # deprecated codes
    ("iw", "he"),
    ("in", "id"),
    ("mo", "ro"),
    ("ji", "yi"),
    ("jw", "jv"),
    ("sh", "sr"),
    # where the engine departs from CLDR (PREFERRED): Tagalog and Norwegian Bokmål
    ("tl", "tl"),
    ("fil", "tl"),
    ("tgl", "tl"),
    ("nb", "no"),
    ("nob", "no"),
    ("no", "no"),
    ("nn", "nn"),
    # names in English and in the language
    ("Russian", "ru"),
    ("russian", "ru"),
    ("Azerbaijani", "az"),
    ("Azerbaijani (Latin)", "az"),
    ("azərbaycan", "az"),
    ("Slovene", "sl"),
    ("Slovenščina", "sl"),
    ("русский", "ru"),
    ("Türkçe", "tr"),
    ("中文", "zh"),
    ("Filipino", "tl"),
    ("Norwegian Bokmål", "no"),
    ("Serbo-Croatian", "sr"),
    # "undetermined" and its kin stay themselves (``of`` takes them for unknown)
    ("und", "und"),
    ("mul", "mul"),
    ("mis", "mis"),
    ("zxx", "zxx"),
    ("Undetermined", "und"),
    # not a code: kept as before, its primary subtag in lower case
    ("xx", "xx"),
    ("XX-YY", "xx"),
    ("foo", "foo"),
    ("null", "null"),
    ("e", "e"),
    ("123", "123"),
    ("x-klingon", "x"),
    # empty, huge, or holding control characters: no language (detected instead)
    ("", None),
    ("   ", None),
    ("-en", None),
    (None, None),
    ("\x00en", None),
    ("en\n", "en"),  # stripped first
    ("e\nn", None),
    ("e\u2028n", None),
    ("\ud800", None),
    ("x" * 65, None),
    ("en-" + "x" * 10_000_000, None),
]


@pytest.mark.parametrize(("code", "expected"), FORMS)
def test_normalise_gives_one_code_for_every_form(code: str | None, expected: str | None) -> None:
    assert language.normalise(code) == expected


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("eng", True),
        ("Russian", True),
        ("und", True),
        ("xx", False),
        ("foo-bar", False),
        ("", False),
        (None, False),
        ("x" * 65, False),
    ],
)
def test_recognised_tells_codes_from_values_kept_as_given(code: str | None, known: bool) -> None:
    assert language.recognised(code) is known


def test_a_value_of_the_longest_length_is_looked_up() -> None:
    padded = "Azerbaijani" + " " * 60
    assert language.normalise(padded) == "az"  # stripped first
    assert language.normalise("x" * language.MAX_CODE_CHARS) == "x" * language.MAX_CODE_CHARS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_normalise_is_idempotent(code: str) -> None:
    once = language.normalise(code)
    assert language.normalise(once) == once
    if once is not None:
        assert once == once.lower() and once == once.strip()


def test_every_language_detection_or_stop_words_name_is_its_own_code() -> None:
    """What py3langid answers and what stopwordsiso has lists for are normalised codes, so
    detected languages and stored ones meet, and stop words are found under their code."""
    import stopwordsiso

    for code in sorted(stopwordsiso.langs()):
        assert language.normalise(code) == code
    labels = language._model().labels
    assert {language.normalise(code) for code in labels} >= {"en", "az", "ru", "tr", "tl", "no"}


def test_detect_answers_normalised_codes() -> None:
    assert language.detect("Ang mga tao ay nagtipon sa plaza upang ipagdiwang ang pista") == "tl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Strong earthquake jolts northern Valdoria before dawn", "en"),
        ("Bakıda güclü zəlzələ baş verib, evlər dağılıb", "az"),
        ("В Москве прошёл сильный дождь, затоплены улицы", "ru"),
        ("İstanbul'da deprem korkusu: binalar boşaltıldı", "tr"),
    ],
)
def test_detect_names_the_language_of_a_headline(text: str, expected: str) -> None:
    assert language.detect(text) == expected


def test_text_without_letters_has_no_language() -> None:
    assert language.detect("2026-09-02 12:00 +++ 42") is None
    assert language.detect("") is None


def test_a_given_lang_wins_over_detection() -> None:
    assert language.of("ru", "Strong earthquake jolts northern Valdoria") == "ru"
    assert language.of(None, "Strong earthquake jolts northern Valdoria") == "en"


def test_share_counts_unknown_as_other() -> None:
    assert language.share(["en", "en", None, "ru"], "en") == 0.5
    assert language.share([], "en") == 0.0


def test_undetermined_codes_fall_back_to_detection() -> None:
    assert language.of("und", "В Москве прошёл сильный дождь, затоплены улицы") == "ru"
    assert language.effective("mul", "Bakıda güclü zəlzələ baş verib, evlər dağılıb") == "az"


def test_effective_language_is_unknown_when_detection_is_unsure() -> None:
    assert language.effective(None, "2026-09-02 12:00 +++ 42") is None
    # Two words give detection little to go by: below CONFIDENCE it is not trusted.
    unsure = "ok ok"
    assert language.detect(unsure) is not None
    assert language.detect(unsure, min_confidence=language.CONFIDENCE) is None
    assert language.effective(None, unsure) is None
    assert language.effective("TR-tr", unsure) == "tr"  # a given lang is never second-guessed


def test_a_given_lang_in_any_form_is_its_code() -> None:
    assert language.of("eng", "В Москве прошёл сильный дождь") == "en"
    assert language.effective("Azerbaijani", "Strong earthquake jolts northern Valdoria") == "az"
    assert language.of("Undetermined", "Strong earthquake jolts northern Valdoria") == "en"
    huge = "x" * 10_000_000
    assert language.of(huge, "Strong earthquake jolts northern Valdoria") == "en"


def test_detection_reads_no_more_than_detect_chars_of_a_long_title(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[int] = []
    real = language.detect

    def detect(text: str, **options: float) -> str | None:
        read.append(len(text))
        return real(text, **options)

    monkeypatch.setattr(language, "detect", detect)
    title = "Strong earthquake jolts northern Valdoria " * 250_000  # 10 MB
    assert language.of(None, title, "and its body " * 1000) == "en"
    assert read == [2 * language.DETECT_CHARS + 1]
