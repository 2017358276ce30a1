"""Deterministic clustering of short texts (notes, judge reasons), shared by ``axial`` and ``reasons``.

TF-IDF on words and on character n-grams (robust to typos and word forms in
short notes), reduced with a seeded truncated SVD when large, then Ward
agglomerative clustering; the number of groups is the one with the best
silhouette within bounds. Same input, same output, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Clustering", "cluster_texts"]


@dataclass(frozen=True)
class Clustering:
    """Groups of texts: a label per text (0..k-1, largest group first)."""

    labels: tuple[int, ...]
    k: int
    silhouette: float | None
    #: per group, its most characteristic words
    terms: tuple[tuple[str, ...], ...]
    #: per group, the position of the text nearest its centre
    medoids: tuple[int, ...]


def _features(texts: Sequence[str], seed: int) -> tuple[Any, Any, list[str]]:
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    words = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True, min_df=1, token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z_]+\b")
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2 if len(texts) > 50 else 1)
    try:
        w = words.fit_transform(texts)
        vocab = list(words.get_feature_names_out())
    except ValueError:  # only stop words
        w, vocab = None, []
    c = chars.fit_transform(texts)
    x = normalize(hstack([m for m in (w, c) if m is not None]).tocsr())
    dims = min(64, x.shape[0] - 1, x.shape[1] - 1)
    if dims >= 2 and (x.shape[0] > 200 or x.shape[1] > 2000):
        from sklearn.decomposition import TruncatedSVD

        x = TruncatedSVD(n_components=dims, random_state=seed, algorithm="randomized", n_iter=3).fit_transform(x)
        x = normalize(x)
    else:
        x = x.toarray()
    return np.asarray(x, dtype=np.float64), w, vocab


def cluster_texts(texts: Sequence[str], *, k_min: int = 2, k_max: int = 12, seed: int = 0, k: int | None = None) -> Clustering:
    """Group ``texts``; ``k`` fixes the number of groups, else the best silhouette in ``[k_min, k_max]``.

    Texts equal after normalising case and spaces are clustered once (notes repeat
    a lot) and share their group.
    """
    keys = [" ".join(t.lower().split()) for t in texts]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    if len(first) < len(texts):
        uniq = list(first)
        sub = _cluster(uniq, k_min=k_min, k_max=k_max, seed=seed, k=k)
        index = {key: j for j, key in enumerate(uniq)}
        raw = [sub.labels[index[key]] for key in keys]
        return _relabel(texts, raw, sub, [first[uniq[m]] for m in sub.medoids])
    return _cluster(list(texts), k_min=k_min, k_max=k_max, seed=seed, k=k)


def _relabel(texts: Sequence[str], raw: list[int], sub: Clustering, medoids: list[int]) -> Clustering:
    """The clustering of unique texts spread back over every text (groups re-ordered by size)."""
    sizes = [0] * sub.k
    for lab in raw:
        sizes[lab] += 1
    firsts: dict[int, int] = {}
    for i, lab in enumerate(raw):
        firsts.setdefault(lab, i)
    order = sorted(range(sub.k), key=lambda g: (-sizes[g], firsts[g]))
    new = {g: i for i, g in enumerate(order)}
    return Clustering(
        tuple(new[lab] for lab in raw), sub.k, sub.silhouette,
        tuple(sub.terms[g] for g in order), tuple(medoids[g] for g in order),
    )


def _cluster(texts: Sequence[str], *, k_min: int, k_max: int, seed: int, k: int | None) -> Clustering:

    n = len(texts)
    if n == 0:
        return Clustering((), 0, None, (), ())
    if n < 3:
        labels = [0] * n
        return _finish(texts, labels, None, *(_features(texts, seed) if any(t.strip() for t in texts) else (None, None, [])))
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score

    x, w, vocab = _features(texts, seed)
    tree = linkage(x, method="ward")
    best: tuple[float, list[int]] | None = None
    upper = min(k_max, n - 1)
    candidates = [k] if k is not None else list(range(max(2, k_min), upper + 1))
    for kk in candidates:
        labels = fcluster(tree, t=kk, criterion="maxclust").tolist()
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(x, labels, metric="euclidean", sample_size=min(n, 2000), random_state=seed))
        if best is None or score > best[0] + 1e-12:
            best = (score, labels)
    if best is None:
        return _finish(texts, [0] * n, None, x, w, vocab)
    return _finish(texts, best[1], best[0], x, w, vocab)


def _finish(texts: Sequence[str], raw: list[int], score: float | None, x: Any, w: Any, vocab: list[str]) -> Clustering:
    import numpy as np

    # relabel: largest group first, ties by first member, so ids do not depend on scipy's numbering
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(raw):
        groups.setdefault(lab, []).append(i)
    order = sorted(groups.values(), key=lambda m: (-len(m), m[0]))
    labels = [0] * len(raw)
    for new, members in enumerate(order):
        for i in members:
            labels[i] = new
    terms: list[tuple[str, ...]] = []
    medoids: list[int] = []
    for members in order:
        if w is not None and vocab:
            weights = np.asarray(w[members].mean(axis=0)).ravel()
            top = [vocab[j] for j in sorted(range(len(vocab)), key=lambda j: (-weights[j], vocab[j]))[:5] if weights[j] > 0]
            terms.append(tuple(top))
        else:
            terms.append(())
        if x is not None:
            sub = x[members]
            centre = sub.mean(axis=0)
            dist = ((sub - centre) ** 2).sum(axis=1)
            medoids.append(members[int(np.argmin(dist))])
        else:
            medoids.append(members[0])
    return Clustering(tuple(labels), len(order), score, tuple(terms), tuple(medoids))
