"""The evidence that a candidate is on the query's story, and how it is combined.

Six pieces of evidence, each a number per candidate (``gather``):

- ``topic``: the cosine of the two embeddings;
- ``words``: the TF-IDF cosine of the two texts (across two languages, where it says nothing,
  the one the embedding cosine predicts: ``rerank.Imputed``);
- ``names``: the names the two share (``names.py``: places, people, organisations, figures);
- ``neighbours' topic``, ``neighbours' words``, ``neighbours' names``: the same, as a mean
  over the query's ``neighbours`` best candidates by the first three (a candidate's own
  similarity not counted; with none left, its own value): an article close to the query's
  nearest ones is more likely on its story than one close to the query alone.

The similarity is their weighted sum (``combine``). The weights are those of the ranking's
knobs (``hand``: ``(1 - w) * topic + w * words + identity_weight * names``, averaged with the
neighbours' with ``neighbour_weight``) plus, with ``combination="learned"``, a learned
correction for each kind of query (body text or headline-length): the index's own, learned
by ``recommend tune`` on its labelled history (``Ranking.evidence``), else the one that ships
with the package (``default_model.json``, learned on the shared news sets by
``benchmarks/combination.py``). An explanation of a listed article is each piece's part of
its similarity (``parts``).

Time and section are not pieces here: they weigh the similarity afterwards as the recency and
category factors (``rerank.weigh``), which ``recommend tune`` searches beside the weights.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SettingsError
from ..settings import EVIDENCE_WIDTH, Ranking

#: The pieces of evidence, in the order of a weight vector.
PIECES = (
    "topic",
    "words",
    "names",
    "neighbours_topic",
    "neighbours_words",
    "neighbours_names",
)
WIDTH = len(PIECES)
assert WIDTH == EVIDENCE_WIDTH
#: Where the packaged correction is (written by benchmarks/combination.py).
DEFAULT_MODEL = Path(__file__).with_name("default_model.json")


@dataclass(frozen=True)
class Model:
    """A learned correction of the hand weights: one for queries with body text (``long``),
    one for headline-length queries (``short``), each ``WIDTH`` numbers in ``PIECES`` order."""

    long: tuple[float, ...] = (0.0,) * WIDTH
    short: tuple[float, ...] = (0.0,) * WIDTH

    def flat(self) -> tuple[float, ...]:
        """As ``Ranking.evidence`` stores it: ``long`` then ``short``."""
        return (*self.long, *self.short)

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float]) -> Model:
        """From ``flat``'s numbers (``2 * WIDTH``)."""
        values = tuple(float(v) for v in values)  # ValueError or TypeError for a non-number
        if len(values) != 2 * WIDTH:
            raise ValueError(f"a model has {2 * WIDTH} weights, got {len(values)}")
        return cls(values[:WIDTH], values[WIDTH:])


@functools.cache
def default_model() -> Model:
    """The correction that ships with the package (none when its file is missing)."""
    try:
        data = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))
        found = Model.of([*data["long"], *data["short"]])
        Ranking(evidence=found.flat())  # the checks of a stored one
    except FileNotFoundError:
        return Model()
    except (ValueError, KeyError, TypeError, SettingsError) as exc:
        raise SettingsError(f"the packaged model {DEFAULT_MODEL} is damaged: {exc}") from None
    return found


def model_of(ranking: Ranking) -> Model:
    """The correction a ranking uses: none by hand, else the index's learned one, else the
    packaged default."""
    if ranking.combination == "hand":
        return Model()
    if ranking.evidence:
        return Model.of(ranking.evidence)
    return default_model()


def hand_weights(ranking: Ranking, short: bool, lexical_share: float = 1.0) -> np.ndarray:
    """The weights of the ranking's knobs (``fusion_weight`` for the TF-IDF share, scaled by
    what a new text's terms can say)."""
    share = (ranking.lexical_weight_short if short else ranking.lexical_weight) * lexical_share
    direct = np.array([1.0 - share, share, ranking.identity_weight])
    boost = ranking.neighbour_weight if ranking.neighbours > 0 else 0.0
    return np.concatenate([direct, boost * direct]) / (1.0 + boost)


def correctable(hand: np.ndarray) -> np.ndarray:
    """Which pieces a correction may change: those the hand weights count. A piece the
    ranking's knobs turn off (``identity_weight=0``, a TF-IDF share of 0, no neighbours)
    stays off, whatever was learned."""
    return np.asarray(hand) > 0


def weights(ranking: Ranking, short: bool, lexical_share: float = 1.0) -> np.ndarray:
    """The weights a query's similarity is combined with: the hand weights plus the learned
    correction for its kind, where ``correctable``, none below 0."""
    return corrected(hand_weights(ranking, short, lexical_share), ranking, short)


def corrected(hand: np.ndarray, ranking: Ranking, short: bool) -> np.ndarray:
    """``weights`` from the ``hand`` weights of the query's kind (``hand_weights``)."""
    model = model_of(ranking)
    correction = np.asarray(model.short if short else model.long, dtype=np.float64)
    return np.where(correctable(hand), np.maximum(hand + correction, 0.0), hand)


def combine(pieces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The similarity of each candidate: its pieces (n x ``WIDTH``) weighted."""
    return np.asarray(pieces, np.float64) @ np.asarray(weights, np.float64)


#: The kinds of evidence an explanation adds up (``by_kind``): each piece with its neighbours'.
KINDS = {
    "topic": ("topic", "neighbours_topic"),
    "words": ("words", "neighbours_words"),
    "names": ("names", "neighbours_names"),
}


def parts(row: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Each piece's part of one candidate's similarity: its value times its weight."""
    contributions = np.asarray(row, np.float64) * np.asarray(weights, np.float64)
    return {name: float(value) for name, value in zip(PIECES, contributions, strict=True)}


def by_kind(found: dict[str, float]) -> dict[str, float]:
    """``parts`` added up by kind (``KINDS``): topic, shared words, shared names."""
    return {kind: sum(found[piece] for piece in pieces) for kind, pieces in KINDS.items()}
