"""Caption style statistics that need no model weights: length, diversity, agreement, failure.

What a pilot must catch before a million-frame run: a provider that writes the same
opening on every frame, refuses or asks for the image it was given, repeats one caption
across unrelated frames, or simply describes frames differently from the others.
Agreement is ROUGE-L F (longest common word subsequence) and word-set Jaccard per frame
between each pair of targets; the LCS is bit-parallel (Hyyrö 2004) on Python integers,
so a 5,000-frame pilot with four targets (six pairs) scores in under two seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
OPENER_WORDS = 4  # an "opening" is the first four words
BOILERPLATE_SHARE = 0.10  # an opening on at least 10 % of a target's captions ...
BOILERPLATE_MIN = 3  # ... and on at least 3 of them is boilerplate

_REFUSAL = re.compile(
    "|".join(
        (
            r"\bi(?:'m| am) sorry\b",
            r"\bsorry, (?:but )?i (?:can|am|'m)",
            r"\bi(?: can't| cannot| can not| won't| am unable to|'m unable to| am not able to|"
            r"'m not able to)(?: \w+){0,3} (?:help|assist|describe|provide|comply|view|see|"
            r"identify|process|analy[sz]e)\b",
            r"\bas an ai\b",
        )
    )
)
_ASKS_FOR_IMAGE = re.compile(
    "|".join(
        (
            r"\bplease (?:provide|upload|share|attach|send|include)\b[^.?!]{0,40}"
            r"\b(?:image|picture|photo|frame)",
            r"\b(?:could|can|would) you (?:please )?(?:share|provide|upload|attach|send)\b"
            r"[^.?!]{0,40}\b(?:image|picture|photo|frame)",
            r"\b(?:don't|do not|can't|cannot) see (?:an?|any|the) (?:image|picture|attachment)",
            r"\bno (?:image|picture) (?:was |is |has been )?(?:attached|provided|included|"
            r"uploaded|shared)",
        )
    )
)


def words(text: str | None) -> list[str]:
    """Lower-case word tokens (apostrophes kept inside words)."""
    return _WORD.findall(text.lower().replace("’", "'")) if text else []


def classify(text: str | None) -> str:
    """'empty', 'refusal', 'asks_for_image' or 'ok': what a caption guard would flag."""
    if text is None or not text.strip():
        return "empty"
    low = text.lower().replace("’", "'")
    if _ASKS_FOR_IMAGE.search(low):
        return "asks_for_image"
    if _REFUSAL.search(low):
        return "refusal"
    return "ok"


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m is not None:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 (β = 1): 2·LCS / (|a| + |b|); 0 when either side is empty."""
    if not a or not b:
        return 0.0
    return 2.0 * lcs_length(a, b) / (len(a) + len(b))


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of a set of captions (0 when there are none)."""
    ids, caption = _token_ids(token_lists)
    return _distinct(ids, caption, n)


def _distinct(ids: np.ndarray, caption: np.ndarray, n: int) -> float:
    """distinct-n on integer word ids: each n-gram is one int64 code, counted by np.unique."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(ids) < n:
        return 0.0
    base = int(ids.max()) + 1
    if base**n >= 2**62:
        raise ValueError(f"{n}-grams over {base} words do not fit one integer code")
    m = len(ids) - n + 1
    same = caption[:m] == caption[n - 1 :]
    codes = np.zeros(m, np.int64)
    for k in range(n):
        codes = codes * base + ids[k : k + m]
    codes = codes[same]
    return float(len(np.unique(codes)) / len(codes)) if len(codes) else 0.0


def _token_ids(token_lists: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(word id per token, caption number per token) over all captions, concatenated."""
    vocab: dict[str, int] = {}
    lists = list(token_lists)
    flat = [vocab.setdefault(w, len(vocab)) for toks in lists for w in toks]
    lengths = np.fromiter((len(t) for t in lists), np.int64, len(lists))
    caption = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    return np.asarray(flat, np.int64), caption


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class StyleStats:
    """One target's captions in numbers (rates are shares of its captions, 0..1)."""

    target: str
    captions: int
    words_mean: float
    words_p95: float
    distinct_1: float
    distinct_2: float
    vocabulary: int
    top_opener: str
    top_opener_share: float
    boilerplate_rate: float
    refusal_rate: float  # refusals + requests for the image + empty captions
    refusals: int
    asks_for_image: int
    empty: int
    identical_share: float  # captions whose exact text also appears on another frame
    truncated_rate: float


def caption_style(
    target: str,
    captions: Mapping[int, str | None],
    truncated: Iterable[int] = (),
) -> StyleStats:
    """Style statistics of one target's captions, keyed by frame."""
    frames = list(captions)
    texts = [captions[f] or "" for f in frames]
    toks = [words(t) for t in texts]
    n = len(texts)
    lengths = np.array([len(t) for t in toks], dtype=np.float64)
    kinds = Counter(classify(t) for t in texts)
    openers = Counter(" ".join(t[:OPENER_WORDS]) for t in toks if len(t) >= OPENER_WORDS)
    top, top_n = openers.most_common(1)[0] if openers else ("", 0)
    floor = max(BOILERPLATE_MIN, BOILERPLATE_SHARE * n)
    boiler = sum(c for c in openers.values() if c >= floor)
    by_text: dict[str, set[int]] = {}
    for f, t in zip(frames, texts, strict=True):
        if t.strip():
            by_text.setdefault(_normal(t), set()).add(f)
    shared = sum(len(fs) for fs in by_text.values() if len(fs) > 1)
    ids, caption = _token_ids(toks)
    cut = len(set(truncated) & set(frames))
    bad = kinds["empty"] + kinds["refusal"] + kinds["asks_for_image"]
    return StyleStats(
        target=target,
        captions=n,
        words_mean=float(lengths.mean()) if n else 0.0,
        words_p95=float(np.percentile(lengths, 95)) if n else 0.0,
        distinct_1=_distinct(ids, caption, 1),
        distinct_2=_distinct(ids, caption, 2),
        vocabulary=int(ids.max()) + 1 if len(ids) else 0,
        top_opener=top,
        top_opener_share=top_n / n if n else 0.0,
        boilerplate_rate=boiler / n if n else 0.0,
        refusal_rate=bad / n if n else 0.0,
        refusals=kinds["refusal"],
        asks_for_image=kinds["asks_for_image"],
        empty=kinds["empty"],
        identical_share=shared / n if n else 0.0,
        truncated_rate=cut / n if n else 0.0,
    )


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    frames: int  # frames both captioned (non-empty)
    rouge_l: float  # mean over those frames
    jaccard: float


@dataclass(frozen=True)
class Agreement:
    pairs: tuple[PairAgreement, ...]
    per_frame: dict[int, float]  # mean ROUGE-L F over the pairs of each frame

    def pair(self, a: str, b: str) -> PairAgreement | None:
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        return None


def agreement(table: Mapping[int, Mapping[str, str | None]], targets: Sequence[str]) -> Agreement:
    """Pairwise agreement per frame, then averaged; a frame where a target has no usable
    caption scores 0 against it in `per_frame` (it is a disagreement worth a look)."""
    toks = {
        f: {t: words(row.get(t)) if classify(row.get(t)) == "ok" else [] for t in targets}
        for f, row in table.items()
    }
    sums = {p: [0, 0.0, 0.0] for p in combinations(targets, 2)}
    per_frame: dict[int, float] = {}
    for f, row in toks.items():
        scores = []
        for a, b in sums:
            ta, tb = row[a], row[b]
            if not ta and not tb:
                continue
            r = rouge_l_f(ta, tb)
            scores.append(r)
            if ta and tb:
                acc = sums[(a, b)]
                acc[0] += 1
                acc[1] += r
                acc[2] += jaccard(ta, tb)
        if scores:
            per_frame[f] = sum(scores) / len(scores)
    pairs = tuple(
        PairAgreement(a, b, int(n), s_r / n if n else 0.0, s_j / n if n else 0.0)
        for (a, b), (n, s_r, s_j) in sums.items()
    )
    return Agreement(pairs, per_frame)


__all__ = [
    "Agreement",
    "PairAgreement",
    "StyleStats",
    "agreement",
    "caption_style",
    "classify",
    "distinct_n",
    "jaccard",
    "lcs_length",
    "rouge_l_f",
    "words",
]
