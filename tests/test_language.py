"""Language codes and detection (recommender.language)."""

import pytest

from recommender import language


@pytest.mark.parametrize(
    ("code", "expected"),
    [("az-Latn-AZ", "az"), ("AZ", "az"), ("en_GB", "en"), (" ru ", "ru"), ("", None), (None, None)],
)
def test_normalise_keeps_the_primary_subtag(code: str | None, expected: str | None) -> None:
    assert language.normalise(code) == expected


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
