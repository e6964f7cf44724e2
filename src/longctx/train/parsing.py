"""Parsers of model outputs in the training target formats, shared by rewards and evaluation.

Every parser is total: it never raises on malformed text and returns an empty result (or
``None`` for :func:`parse_answer`) when the expected structure is missing. The answer line is
the text after the *last* ``"The answer is:"`` (matched case-insensitively); the citation,
quote and content parsers only look at the part of the output *before* that line, so an answer
that happens to contain ``"DOC 3"`` or quotation marks is not counted as a citation or a quote.
"""

from __future__ import annotations

import re

ANSWER_PREFIX = "The answer is:"

_ANSWER = re.compile(re.escape(ANSWER_PREFIX), re.IGNORECASE)
# "[DOC 3]", "[DOC 3, 7]", "[DOC 3 and DOC 7]", "[Doc 3; 7]" (a list inside one bracket) or a
# bare "DOC 3" / "DOC #3" (a single number, so "DOC 3, 1990" does not cite document 1990).
_CITATION = re.compile(
    r"\[\s*DOCS?\s*#?\s*(?P<list>\d+(?:\s*(?:,|;|&|and)\s*(?:DOCS?\s*#?\s*)?\d+)*)\s*\]"
    r"|\bDOCS?\s*#?\s*(?P<one>\d+)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+")
_QUOTE = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”")
_BLOCK = re.compile(r"^[ \t]*\[\s*DOC\s*(\d+)\s*\][ \t]*", re.IGNORECASE | re.MULTILINE)
_TITLE = re.compile(r"^\(Title:[^)\n]*\)\s*", re.IGNORECASE)


def split_answer(text: str) -> tuple[str, str | None]:
    """Split an output at its last answer line.

    Args:
        text: A model output.

    Returns:
        ``(body, answer_line)``: the text before the last ``"The answer is:"`` and the rest of
        that line (unstripped), or ``(text, None)`` when there is no answer line.
    """
    matches = list(_ANSWER.finditer(text or ""))
    if not matches:
        return text or "", None
    last = matches[-1]
    return text[: last.start()], text[last.end() :].split("\n", 1)[0]


def parse_answer(text: str) -> str | None:
    """The answer after the last ``"The answer is:"``, up to the end of its line.

    Surrounding whitespace and trailing periods are removed
    (``"The answer is: Paris."`` -> ``"Paris"``).

    Args:
        text: A model output.

    Returns:
        The answer (possibly ``""`` when the line is empty), or ``None`` without an answer line.
    """
    _, line = split_answer(text)
    if line is None:
        return None
    return line.strip().rstrip(".").strip()


def _citations(text: str) -> list[tuple[int, int]]:
    """``(position, doc_id)`` of each cited document number, in textual order."""
    found: list[tuple[int, int]] = []
    for match in _CITATION.finditer(text):
        if match.group("list") is not None:
            start = match.start("list")
            found += [(start + n.start(), int(n.group())) for n in _NUMBER.finditer(match["list"])]
        else:
            found.append((match.start("one"), int(match.group("one"))))
    return found


def parse_cited_ids(text: str) -> list[int]:
    """Document numbers cited as ``[DOC i]``, ``[DOC i, j]`` or ``DOC i``, de-duplicated in order.

    Only the part before the last answer line is read when there is one.

    Args:
        text: A model output.

    Returns:
        The cited ``[DOC i]`` numbers in order of first mention.
    """
    body, _ = split_answer(text)
    seen: dict[int, None] = {}
    for _, doc_id in _citations(body):
        seen.setdefault(doc_id, None)
    return list(seen)


def parse_quotes(text: str) -> list[tuple[int | None, str]]:
    """Quoted spans (``"..."`` or ``“...”``, on one line) with the document they are attributed to.

    A quote is attributed to the last document number cited before it on the same line
    (``[DOC 3] "..."`` -> 3, ``[DOC 3, 7] "..."`` -> 7), or ``None`` when the line cites none
    before it. Only the part before the last answer line is read; blank quotes are skipped.

    Args:
        text: A model output.

    Returns:
        ``(doc_id or None, quote)`` pairs in order, quotes stripped of surrounding whitespace.
    """
    body, _ = split_answer(text)
    quotes: list[tuple[int | None, str]] = []
    for line in body.splitlines():
        cites = _citations(line)
        for match in _QUOTE.finditer(line):
            quote = (match.group(1) or match.group(2) or "").strip()
            if not quote:
                continue
            before = [doc_id for pos, doc_id in cites if pos < match.start()]
            quotes.append((before[-1] if before else None, quote))
    return quotes


def parse_content_blocks(text: str) -> dict[int, str]:
    """The text of each block that starts a line with ``[DOC i]``, up to the next block.

    A block ends at the next line-initial ``[DOC j]`` tag or at the last answer line; a leading
    ``(Title: ...)`` is dropped so that a reproduced rendering compares with the bare text. When
    a document number has several blocks, the first one is kept.

    Args:
        text: A model output.

    Returns:
        ``{doc_id: block text}`` (stripped), in order of appearance.
    """
    body, _ = split_answer(text)
    tags = list(_BLOCK.finditer(body))
    blocks: dict[int, str] = {}
    for k, tag in enumerate(tags):
        end = tags[k + 1].start() if k + 1 < len(tags) else len(body)
        content = _TITLE.sub("", body[tag.end() : end].strip()).strip()
        blocks.setdefault(int(tag.group(1)), content)
    return blocks
