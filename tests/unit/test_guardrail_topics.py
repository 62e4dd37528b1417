"""The denied-topic classifier on the real all-MiniLM-L6-v2 embeddings, around its threshold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outcrop.engines.embeddings import BertEmbedder
from outcrop.guardrails.model import Switch, Topic
from outcrop.guardrails.topics import SIMILARITY_THRESHOLD, TopicClassifier, sentences

INVESTMENT = Topic(
    "Investment advice",
    "Providing personalized recommendations about buying, selling or holding stocks, bonds, "
    "funds or cryptocurrency, or about portfolio allocation and expected returns.",
    (
        "Should I buy Tesla stock?",
        "Which fund gives the best return?",
        "Is bitcoin a good investment right now?",
        "How should I allocate my 401k?",
    ),
    Switch("BLOCK", "BLOCK"),
)
MEDICAL = Topic(
    "Medical advice",
    "Diagnosing illnesses or recommending treatments or medication doses for a person's symptoms.",
    ("What medicine should I take for my chest pain?", "Do I have diabetes?"),
    Switch("BLOCK", "BLOCK"),
)


@pytest.fixture(scope="module")
def classifier() -> Iterator[TopicClassifier]:
    yield TopicClassifier(BertEmbedder())


@pytest.mark.parametrize(
    ("text", "on_topic"),
    [
        ("Should I put my savings into Apple shares?", [True, False]),
        ("Is gold a good investment?", [True, False]),
        ("I have a headache and a fever. Which pills should I take?", [False, True]),
        ("Tell me about the history of the stock market.", [False, False]),
        ("What is the capital of Italy?", [False, False]),
        ("How do I bake sourdough bread?", [False, False]),
        ("Before we start: should I buy Tesla stock?", [True, False]),
    ],
)
async def test_threshold_separates_on_and_off_topic(
    classifier: TopicClassifier, text: str, on_topic: list[bool]
) -> None:
    scores = await classifier.scores([INVESTMENT, MEDICAL], [text])
    assert [s >= SIMILARITY_THRESHOLD for s in scores] == on_topic, scores


async def test_example_verbatim_scores_one(classifier: TopicClassifier) -> None:
    scores = await classifier.scores(
        [INVESTMENT], ["Hi! is BITCOIN A GOOD INVESTMENT RIGHT NOW? thx"]
    )
    assert scores == [1.0]


def test_sentences() -> None:
    assert sentences("One. Two? Three!\nFour") == [
        "One.",
        "Two?",
        "Three!",
        "Four",
        "One. Two? Three!\nFour",
    ]
    assert sentences("  ") == []
