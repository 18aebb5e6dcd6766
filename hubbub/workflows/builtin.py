"""hubbub's own workflows: deterministic, local, no network.

``summarize`` digests a text the way an agent's pre-processing would —
normalise and split it, count words and rank keywords, then pick the
sentences that carry the most keywords — in three stages of two steps
each, pausing ``pause_ms`` after each step (to watch a run move, or to
cancel one mid-way).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from hubbub.workflows.declaration import Stage, Step, WorkflowRun, workflow

__all__ = ["SummarizeInput", "summarize"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
#: Words too common to be keywords (English).
_COMMON = """a about after all also an and any are as at be because been but by can could did do
does for from had has have he her his how i if in into is it its just like may more most my no
not of on one only or other our out over she so some such than that the their them then there
these they this those to up us was we were what when where which while who will with would you
your"""
_STOPWORDS = frozenset(_COMMON.split())


class SummarizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, description="The text to summarise.")
    sentences: int = Field(3, ge=1, le=20, description="Sentences in the summary, at most.")
    keywords: int = Field(5, ge=1, le=50, description="Keywords to report, at most.")
    pause_ms: int = Field(0, ge=0, le=10_000, description="Pause after each step.")


SUMMARIZE_STAGES = (
    Stage(
        "prepare",
        "Prepare",
        "Make the text regular and cut it into sentences.",
        (
            Step("normalize", "Normalise", "Collapse whitespace."),
            Step("split", "Split", "Cut the text into sentences."),
        ),
    ),
    Stage(
        "analyze",
        "Analyse",
        "Measure the text.",
        (
            Step("count", "Count", "Count sentences and words."),
            Step("keywords", "Rank keywords", "Rank the words that are not stopwords."),
        ),
    ),
    Stage(
        "compose",
        "Compose",
        "Write the summary.",
        (
            Step("select", "Select sentences", "Pick the sentences richest in keywords."),
            Step("assemble", "Assemble", "Put them back in their original order."),
        ),
    ),
)


@workflow(
    "summarize",
    SummarizeInput,
    title="Summarise a text",
    stages=SUMMARIZE_STAGES,
    resources={"num_cpus": 0.1},
)
async def summarize(run: WorkflowRun, input: SummarizeInput) -> dict[str, object]:
    """An extractive summary of a text with its keywords and counts."""
    await _enter(run, "prepare", "normalize", input.pause_ms)
    text = " ".join(input.text.split())
    await _enter(run, "prepare", "split", input.pause_ms)
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    await _enter(run, "analyze", "count", input.pause_ms)
    words = [w.lower() for w in _WORD.findall(text)]
    await _enter(run, "analyze", "keywords", input.pause_ms)
    counts = Counter(w for w in words if w not in _STOPWORDS and len(w) > 2)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: input.keywords]
    await _enter(run, "compose", "select", input.pause_ms)
    scores = {word: n for word, n in ranked}
    chosen = _richest(sentences, scores, input.sentences)
    await _enter(run, "compose", "assemble", input.pause_ms)
    summary = " ".join(sentences[i] for i in sorted(chosen))
    run.context.log(f"kept {len(chosen)} of {len(sentences)} sentences")
    return {
        "summary": summary,
        "keywords": [word for word, _ in ranked],
        "sentences": len(sentences),
        "words": len(words),
    }


async def _enter(run: WorkflowRun, stage: str, step: str, pause_ms: int) -> None:
    """Enter the step, then pause; stop here if the run was cancelled."""
    run.context.raise_if_cancelled()
    run.enter(stage, step)
    await asyncio.sleep(pause_ms / 1000)


def _richest(sentences: list[str], scores: dict[str, int], limit: int) -> list[int]:
    """Indexes of the ``limit`` sentences with the highest keyword score (earlier first on ties)."""

    def score(index: int) -> int:
        return sum(scores.get(w.lower(), 0) for w in _WORD.findall(sentences[index]))

    return sorted(range(len(sentences)), key=lambda i: (-score(i), i))[:limit]
