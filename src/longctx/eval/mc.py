"""Multiple-choice answer extraction that survives real model output.

:func:`extract_choice` runs a cascade and stops at the first step that gives one letter:

1. Letter patterns, most reliable first: "the answer is (B)", "correct answer: B", "(B)",
   "B." / "B)" / "B:" at the start, "option B", "**B**", a line holding only a letter. The
   "answer is" / "answer:" patterns take their *last* occurrence (models restate or correct
   themselves); the weaker patterns are skipped when they name conflicting letters. A bare "A" or
   "I" that reads as an English word ("A good answer...", "the answer is a bit unclear") is not a
   letter.
2. Option text: the output contains exactly one option's normalised text (nested texts resolve to
   the longest), else the best fuzzy match of the whole output, when it clears a threshold and a
   margin over the runner-up.
3. ``None``: unparsed. It scores 0 and :func:`summarise_choices` reports how often it happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rapidfuzz import fuzz

from longctx.eval.scoring import normalize_answer

FUZZY_THRESHOLD = 85.0
FUZZY_MARGIN = 5.0

_OPEN = r"\**[\(\[]?\**"
_CLOSE = r"\**[\)\]]?\**"
# (template, take the last match, require every match to agree); {L} is the letter group.
_PATTERNS: list[tuple[str, bool, bool]] = [
    (
        r"\b(?:answer|choice|option)\s*(?:is|would\s+be|should\s+be|=)\s*:?\s*"
        r"(?:option\s+|choice\s+)?" + _OPEN + "{L}" + _CLOSE + r"(?!\w)",
        True,
        False,
    ),
    (
        r"\b(?:answer|choice|option)\s*\**\s*[:：\-–—]\s*\**\s*(?:option\s+|choice\s+)?"
        + _OPEN
        + "{L}"
        + _CLOSE
        + r"(?!\w)",
        True,
        False,
    ),
    (r"\(\s*{L}\s*\)", False, True),
    (r"\A\s*" + _OPEN + "{L}" + r"\**\s*(?:[.):\]]|\Z)", False, False),
    (r"\b(?:option|choice)\s+" + _OPEN + "{L}" + _CLOSE + r"(?!\w)", False, True),
    (r"\*\*\s*[\(\[]?{L}[\)\].:]?\s*\*\*", False, True),
    (r"^[ \t]*" + _OPEN + "{L}" + _CLOSE + r"[.:]?[ \t]*$", False, True),
]
_WORD_AFTER = re.compile(r"\s+[a-z]")
_SENTENCE_START = re.compile(r"(?:\A|[.!?:]\s+|\n\s*)\**\Z")
_NAMED = re.compile(r"\b(?:option|choice|letter)\s+\Z", re.IGNORECASE)


def _reads_as_word(text: str, match: re.Match[str]) -> bool:
    """True when a bare "a"/"A"/"I" is the article or pronoun, not an option letter."""
    letter = match.group("L")
    start, end = match.span("L")
    if letter.upper() not in {"A", "I"}:
        return False
    bracketed = text[start - 1 : start] in "([*" and start > 0
    if bracketed or not _WORD_AFTER.match(text, end) or _NAMED.search(text[:start]):
        return False
    if letter in {"a", "i"}:
        return True  # "answer is a bit", lower-case letters followed by a word
    return bool(_SENTENCE_START.search(text[:start]))  # "A good answer", "I think"


def _letter_patterns(letters: list[str]) -> list[tuple[re.Pattern[str], bool, bool]]:
    group = "(?P<L>[" + "".join(re.escape(x) for x in letters) + "])"
    flags = re.IGNORECASE | re.MULTILINE
    return [
        (re.compile(t.replace("{L}", group), flags), last, agree) for t, last, agree in _PATTERNS
    ]


def _by_letter(text: str, letters: list[str]) -> str | None:
    for pattern, take_last, must_agree in _letter_patterns(letters):
        found = [
            m.group("L").upper() for m in pattern.finditer(text) if not _reads_as_word(text, m)
        ]
        if not found:
            continue
        if must_agree and len(set(found)) > 1:
            continue
        return found[-1] if take_last else found[0]
    return None


def _by_text(text: str, options: Mapping[str, str]) -> str | None:
    output = normalize_answer(text)
    if not output:
        return None
    norm = {k: normalize_answer(v) for k, v in options.items()}
    norm = {k: v for k, v in norm.items() if v}
    hits = [k for k, v in norm.items() if f" {v} " in f" {output} "]
    if hits:
        longest = max(hits, key=lambda k: len(norm[k]))
        if all(norm[k] in norm[longest] for k in hits):
            return longest
        return None  # several unrelated options named: do not guess
    scores = sorted(((fuzz.ratio(output, v), k) for k, v in norm.items()), reverse=True)
    if not scores or scores[0][0] < FUZZY_THRESHOLD:
        return None
    if len(scores) > 1 and scores[0][0] - scores[1][0] < FUZZY_MARGIN:
        return None
    return scores[0][1]


def extract_choice(output: str, options: Mapping[str, str]) -> str | None:
    """Find the option letter a model chose.

    Args:
        output: The model's raw answer.
        options: Letter to option text, e.g. ``{"A": "Paris", "B": "Lyon"}`` (any letters).

    Returns:
        The chosen option key as spelled in ``options``, or ``None`` when the answer cannot be
        parsed.
    """
    if not output or not output.strip():
        return None
    keys = {k.strip().upper(): k for k in options}
    letters = [k for k in keys if len(k) == 1 and k.isalpha()]
    if letters:
        letter = _by_letter(output, letters)
        if letter is not None:
            return keys[letter]
    return _by_text(output, options)


def score_choice(pred: str | None, gold: str) -> float:
    """1.0 when the predicted letter equals the gold letter (case-insensitive); unparsed is 0."""
    if pred is None:
        return 0.0
    return float(pred.strip().upper() == gold.strip().upper())


def _pair(record: Any) -> tuple[str | None, str]:
    if isinstance(record, Mapping):
        pred = record.get("pred", record.get("prediction"))
        return pred, str(record.get("gold", record.get("answer")))
    pred, gold = record
    return pred, str(gold)


def summarise_choices(records: Iterable[Any]) -> dict[str, float | int]:
    """Accuracy over multiple-choice records, with the unparsed answers counted as wrong.

    Args:
        records: Mappings with ``pred`` (letter or ``None``) and ``gold`` keys
            (``prediction``/``answer`` also accepted), or ``(pred, gold)`` pairs.

    Returns:
        ``n``, ``correct``, ``accuracy``, ``unparsed``, ``unparsed_rate`` and
        ``accuracy_parsed`` (accuracy over the parsed answers only; 0.0 when there are none).
    """
    pairs = [_pair(r) for r in records]
    n = len(pairs)
    correct = sum(score_choice(p, g) for p, g in pairs)
    unparsed = sum(p is None for p, _ in pairs)
    parsed = n - unparsed
    return {
        "n": n,
        "correct": int(correct),
        "accuracy": correct / n if n else 0.0,
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else 0.0,
        "accuracy_parsed": correct / parsed if parsed else 0.0,
    }
