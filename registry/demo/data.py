"""The demo's users: the same everyday sentences, three private labeling rules.

Each sentence says who felt what about which thing, and when: "Grandma loved the curry
yesterday." Alice files sentences by topic (food or not), Bob by sentiment, Carol by
time (a plan or a memory). One shared model cannot serve all three: the same sentence
gets three different labels, which is what per-user adapters are for.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

SUBJECTS = ["I", "My sister", "We", "Tom", "The team", "Our neighbour", "Grandma", "My boss"]
# (past, future, positive?)
FEELINGS = [
    ("loved", "will love", True),
    ("enjoyed", "will enjoy", True),
    ("praised", "will adore", True),
    ("liked", "will like", True),
    ("hated", "will hate", False),
    ("complained about", "will complain about", False),
    ("regretted", "will dread", False),
    ("disliked", "will dislike", False),
]
FOOD = ["pasta", "curry", "sushi", "pancakes", "soup", "tacos", "salad", "cheesecake"]
OTHER = ["concert", "train ride", "meeting", "museum", "movie", "hike", "exam", "laptop"]
PAST = ["yesterday", "last week", "on Sunday morning"]
FUTURE = ["tomorrow", "next week", "on Friday evening"]


@dataclass(frozen=True)
class Sentence:
    text: str
    food: bool
    positive: bool
    future: bool


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    question: str
    rule: Callable[[Sentence], str]
    labels: tuple[str, str]


USERS = [
    DemoUser(
        "alice", "is it about food?", lambda s: "food" if s.food else "other", ("food", "other")
    ),
    DemoUser(
        "bob",
        "does the writer like it?",
        lambda s: "like" if s.positive else "dislike",
        ("like", "dislike"),
    ),
    DemoUser(
        "carol", "a plan or a memory?", lambda s: "plan" if s.future else "done", ("plan", "done")
    ),
]


def sentence(rng: random.Random) -> Sentence:
    past, future_form, positive = rng.choice(FEELINGS)
    food, future = rng.random() < 0.5, rng.random() < 0.5
    thing = rng.choice(FOOD if food else OTHER)
    when = rng.choice(FUTURE if future else PAST)
    verb = future_form if future else past
    return Sentence(f"{rng.choice(SUBJECTS)} {verb} the {thing} {when}.", food, positive, future)


def user_data(user: DemoUser, train_rows: int, eval_rows: int) -> tuple[list[dict], list[dict]]:
    """The user's own labeled sentences, and held-out ones never trained on."""
    rng = random.Random(f"demo-{user.user_id}")
    seen: set[str] = set()
    rows: list[dict] = []
    while len(rows) < train_rows + eval_rows:
        s = sentence(rng)
        if s.text not in seen:  # held-out means unseen, not a repeat
            seen.add(s.text)
            rows.append({"text": s.text, "label": user.rule(s), "sentence": s})
    return rows[:train_rows], rows[train_rows:]


def shuffled_labels(rows: list[dict], seed: int = 1) -> list[dict]:
    """The same sentences with their labels shuffled among them: a bad export."""
    labels = [row["label"] for row in rows]
    random.Random(seed).shuffle(labels)
    return [{**row, "label": label} for row, label in zip(rows, labels, strict=True)]


def jsonl(rows: list[dict]) -> bytes:
    import json

    return "\n".join(json.dumps({"text": r["text"], "label": r["label"]}) for r in rows).encode()
