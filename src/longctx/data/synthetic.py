"""Deterministic synthetic multi-document QA about fictional entities (the built-in data).

The questions are about a small invented world, so a model cannot answer them from memory and
must read the context. ``random.Random(seed)`` builds the world and then draws the questions;
nothing else is random, so the same ``(n, seed, n_distractors)`` always gives the same examples.

World:
    * towns (region, river, first record, population), people (birth town, birth year,
      profession, employer) and companies (town and year of founding, founder, product);
    * names come from syllables and no name is a substring of another name or of a template
      word, so an exact-name check tells which documents mention an entity;
    * names come in look-alike pairs (one vowel changed: "Vask" / "Vesk", or the same company
      stem with another suffix) and first names are shared, so readers must match names exactly.

Every entity has one short Wikipedia-like paragraph that states its facts plainly. Questions
alternate between 1-hop (one gold paragraph about the subject) and 2-hop (the subject's
paragraph names a bridge entity whose paragraph holds the answer; two gold paragraphs).
Answers are 1-3 words. Distractors never mention the subject or the bridge by exact name, so
they cannot support or contradict the answer; half of them are the entities whose names look
most like the subject's or bridge's (same kind first), the rest are drawn at random.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_jsonl, register_reader

_ONSETS = ["b", "br", "d", "dr", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "th", "v", "z"]
_VOWELS = "aeiou"
_CODAS = ["", "", "", "n", "r", "l", "s", "k"]
_SUFFIXES = ["Works", "Mills", "Foundry", "Trading", "Brothers", "Workshops"]
_PRODUCTS = [
    "copper kettles",
    "glass lanterns",
    "wool blankets",
    "clock springs",
    "leather saddles",
    "paper fans",
    "tin whistles",
    "oak barrels",
    "brass hinges",
    "silk ribbons",
    "clay pipes",
    "rope ladders",
    "iron stoves",
    "canvas tents",
    "wax candles",
    "cork floats",
]
_PROFESSIONS = [
    "clockmaker",
    "cartographer",
    "glassblower",
    "bookbinder",
    "beekeeper",
    "stonemason",
    "engraver",
    "archivist",
    "chandler",
    "weaver",
    "apothecary",
    "surveyor",
    "cooper",
    "tanner",
    "luthier",
    "boatbuilder",
]
_TOWN_KINDS = ["market town", "river town", "hill town", "small town", "harbour town"]
_TOWN_FILLERS = [
    "Its covered market is held every Thursday and draws traders and farmers from the nearby "
    "villages.",
    "An old stone bridge near the centre is the most photographed spot in the whole area.",
    "Local guidebooks praise its narrow lanes, painted shutters and quiet squares shaded by "
    "lime trees.",
    "A small museum in the former customs house displays tools and furniture used by the "
    "earliest settlers.",
    "The surrounding fields are mostly given over to barley, flax and apple orchards.",
]
_PERSON_FILLERS = [
    "{S} trained as an apprentice for several years before working independently.",
    "Colleagues describe {o} as patient, careful and quietly ambitious.",
    "In {p} spare time {s} collects old maps and tends a small vegetable garden.",
    "{S} has given occasional talks about {p} craft at schools and public libraries.",
    "Friends say {s} rarely takes a holiday and prefers long walks in the hills.",
]
_COMPANY_FILLERS = [
    "The firm employs a few hundred people across two workshops and a small office.",
    "Its goods are sold mainly through regional merchants, catalogues and seasonal fairs.",
    "The company has remained privately owned since its early days.",
    "Its original workshop is still in use as a storehouse.",
    "The business expanded steadily during its first decades of trading.",
]
_PRONOUNS = {"he": ("he", "him", "his"), "she": ("she", "her", "her")}
_RESERVED = sorted(
    set(
        re.findall(
            r"[a-z]+",
            " ".join(
                _SUFFIXES
                + _PRODUCTS
                + _PROFESSIONS
                + _TOWN_KINDS
                + _TOWN_FILLERS
                + _PERSON_FILLERS
                + _COMPANY_FILLERS
                + [
                    "region river flows through inhabitants recorded company founded"
                    " works born where career makes today banks older buildings"
                ]
            ).lower(),
        )
    )
)

# question type -> (subject kind, fact, template)
_ONE_HOP = {
    "birth_town": ("person", "town", "In which town was {} born?"),
    "birth_year": ("person", "year", "In what year was {} born?"),
    "profession": ("person", "profession", "What is the profession of {}?"),
    "employer": ("person", "employer", "Which company does {} work for?"),
    "product": ("company", "product", "What does {} make?"),
    "company_town": ("company", "town", "In which town was {} founded?"),
    "founder": ("company", "founder", "Who founded {}?"),
    "river": ("town", "river", "Which river flows through {}?"),
    "region": ("town", "region", "In which region is {} located?"),
}
# question type -> (subject kind, bridge fact, fact of the bridge, template)
_TWO_HOP = {
    "founder_birth_year": (
        "company",
        "founder",
        "year",
        "In what year was the founder of {} born?",
    ),
    "founder_birth_town": (
        "company",
        "founder",
        "town",
        "In which town was the founder of {} born?",
    ),
    "birth_town_river": (
        "person",
        "town",
        "river",
        "Which river flows through the town where {} was born?",
    ),
    "birth_town_region": (
        "person",
        "town",
        "region",
        "In which region is the town where {} was born?",
    ),
    "employer_product": (
        "person",
        "employer",
        "product",
        "What does the company that {} works for make?",
    ),
    "company_town_river": (
        "company",
        "town",
        "river",
        "Which river flows through the town where {} was founded?",
    ),
}


@dataclass
class _Entity:
    """One invented town, person or company with its facts and its paragraph."""

    kind: str
    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    text: str = ""


class _Names:
    """Invents unique names: none is a substring of another name or of a template word."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: list[str] = []

    def _take(self, word: str) -> bool:
        w = word.lower()
        if len(w) < 4 or any(w in r for r in _RESERVED):
            return False
        if any(w in u or u in w for u in self.used):
            return False
        self.used.append(w)
        return True

    def fresh(self, syllables: tuple[int, int] = (2, 3)) -> str:
        """A new syllable-built name."""
        while True:
            parts = [
                self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
                for _ in range(self.rng.randint(*syllables))
            ]
            word = ("".join(parts) + self.rng.choice(_CODAS)).capitalize()
            if self._take(word):
                return word

    def variant(self, word: str) -> str:
        """A look-alike of ``word`` with one vowel changed (a fresh name if none is free)."""
        spots = [i for i, c in enumerate(word) if c.lower() in _VOWELS]
        self.rng.shuffle(spots)
        for i in spots:
            for v in self.rng.sample(_VOWELS, len(_VOWELS)):
                v = v.upper() if i == 0 else v
                cand = word[:i] + v + word[i + 1 :]
                if cand != word and self._take(cand):
                    return cand
        return self.fresh()

    def paired(self, count: int) -> list[str]:
        """``count`` names in look-alike pairs."""
        out: list[str] = []
        while len(out) < count:
            out.append(self.fresh())
            out.append(self.variant(out[-1]))
        return out[:count]


def _article(word: str) -> str:
    return "an" if word[0] in _VOWELS else "a"


def _build_world(rng: random.Random, n_people: int) -> dict[str, _Entity]:
    """Invent the towns, people and companies, with their paragraphs, keyed by name."""
    n_companies, n_towns = max(8, n_people // 2), max(8, n_people // 3)
    names = _Names(rng)
    regions = [names.fresh() for _ in range(max(3, n_towns // 4))]
    rivers = [names.fresh() + " River" for _ in range(max(3, n_towns // 3))]
    firsts = [names.fresh((2, 2)) for _ in range(max(4, n_people // 4))]
    towns = [
        _Entity(
            "town",
            t,
            {
                "kind": rng.choice(_TOWN_KINDS),
                "region": rng.choice(regions),
                "river": rng.choice(rivers),
                "year": rng.randint(1100, 1700),
                "pop": rng.randint(20, 400) * 100,
            },
        )
        for t in names.paired(n_towns)
    ]
    people = [
        _Entity(
            "person",
            f"{rng.choice(firsts)} {surname}",
            {
                "pronoun": rng.choice(sorted(_PRONOUNS)),
                "town": rng.choice(towns).name,
                "year": rng.randint(1850, 1960),
                "profession": rng.choice(_PROFESSIONS),
            },
        )
        for surname in names.paired(n_people)
    ]
    company_names: list[str] = []
    while len(company_names) < n_companies:
        stem, (s1, s2) = names.fresh(), rng.sample(_SUFFIXES, 2)
        twin = f"{stem} {s2}" if rng.random() < 0.5 else f"{names.variant(stem)} {s1}"
        company_names += [f"{stem} {s1}", twin]
    companies = []
    for name in company_names[:n_companies]:
        founder = rng.choice(people)
        companies.append(
            _Entity(
                "company",
                name,
                {
                    "town": rng.choice(towns).name,
                    "founder": founder.name,
                    "product": rng.choice(_PRODUCTS),
                    "year": founder.facts["year"] + rng.randint(25, 55),
                },
            )
        )
    for person in people:
        person.facts["employer"] = rng.choice(companies).name
    for e in towns:
        f = e.facts
        e.text = (
            f"{e.name} is a {f['kind']} in the {f['region']} region. The {f['river']} flows "
            f"through {e.name}, and most of its older buildings stand along the banks. It "
            f"was first recorded in {f['year']} and today has about {f['pop']:,} "
            f"inhabitants. " + " ".join(rng.sample(_TOWN_FILLERS, 2))
        )
    for e in people:
        f = e.facts
        s, o, p = _PRONOUNS[f["pronoun"]]
        fill = [t.format(S=s.capitalize(), s=s, o=o, p=p) for t in rng.sample(_PERSON_FILLERS, 3)]
        e.text = (
            f"{e.name} is {_article(f['profession'])} {f['profession']} who was born in "
            f"{f['town']} in {f['year']}. {s.capitalize()} works for {f['employer']}, where "
            f"{s} has spent most of {p} career. " + " ".join(fill)
        )
    for e in companies:
        f = e.facts
        e.text = (
            f"{e.name} is a company that makes {f['product']}. It was founded in "
            f"{f['town']} in {f['year']} by {f['founder']}. "
            + " ".join(rng.sample(_COMPANY_FILLERS, 3))
        )
    return {e.name: e for e in towns + people + companies}


def _distractors(
    rng: random.Random, world: dict[str, _Entity], gold: list[_Entity], k: int
) -> list[_Entity]:
    """``k`` entities that never name a gold entity: half look-alikes, half random."""
    keys = [g.name for g in gold]
    pool = [e for e in world.values() if e.name not in keys and not any(n in e.text for n in keys)]
    if len(pool) < k:
        raise ValueError(f"only {len(pool)} distractors available, {k} requested")

    def likeness(e: _Entity) -> float:
        same_kind = 0.5 if e.kind == gold[0].kind else 0.0
        return same_kind + max(SequenceMatcher(None, n, e.name).ratio() for n in keys)

    ranked = sorted(pool, key=likeness, reverse=True)
    look_alikes = ranked[: k // 2]
    return look_alikes + rng.sample(ranked[k // 2 :], k - len(look_alikes))


def generate_synthetic(n: int = 50, seed: int = 0, n_distractors: int = 40) -> list[Example]:
    """Generate deterministic synthetic multi-document QA examples about fictional entities.

    Args:
        n: Number of examples; even positions are 1-hop questions, odd positions 2-hop.
        seed: Seed of the world and of the questions.
        n_distractors: Non-gold documents per example.

    Returns:
        Examples with ``task="synthetic"``, ids ``synth-<seed>-<i>``, documents ``d0``, ``d1``,
        ... in a shuffled order, and ``meta`` holding ``hops``, ``question_type``, ``subject``
        and (2-hop only) ``bridge``.

    Raises:
        ValueError: When ``n`` or ``n_distractors`` is negative.
    """
    if n < 0 or n_distractors < 0:
        raise ValueError(f"n and n_distractors must be >= 0, got {n} and {n_distractors}")
    rng = random.Random(seed)
    world = _build_world(rng, max(30, n_distractors + 10, n // 2))
    by_kind: dict[str, list[_Entity]] = {"town": [], "person": [], "company": []}
    for e in world.values():
        by_kind[e.kind].append(e)
    examples: list[Example] = []
    asked: set[tuple[str, str]] = set()
    while len(examples) < n:
        hops = 1 + len(examples) % 2
        table: dict[str, tuple[str, ...]] = _ONE_HOP if hops == 1 else _TWO_HOP
        qtype = rng.choice(sorted(table))
        spec = table[qtype]
        subject = rng.choice(by_kind[spec[0]])
        if (qtype, subject.name) in asked:
            continue
        asked.add((qtype, subject.name))
        meta: dict[str, Any] = {"hops": hops, "question_type": qtype, "subject": subject.name}
        gold = [subject]
        if hops == 2:
            gold.append(world[subject.facts[spec[1]]])
            meta["bridge"] = gold[1].name
        answer = str(gold[-1].facts[spec[-2]])
        answers = [answer] + ([answer.removesuffix(" River")] if answer.endswith(" River") else [])
        picked = [(e, True) for e in gold]
        picked += [(e, False) for e in _distractors(rng, world, gold, n_distractors)]
        rng.shuffle(picked)
        docs = [Document(f"d{k}", e.name, e.text, g) for k, (e, g) in enumerate(picked)]
        examples.append(
            Example(
                id=f"synth-{seed}-{len(examples)}",
                question=spec[-1].format(subject.name),
                answers=answers,
                documents=docs,
                task="synthetic",
                meta=meta,
            )
        )
    return examples


def write_jsonl(examples: list[Example], path: str | Path) -> None:
    """Write one ``Example.to_dict()`` JSON object per line (creating parent folders)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")


@register_reader("synthetic")
def read_synthetic(path: str | Path, **options: Any) -> list[Example]:
    """Read examples written by :func:`write_jsonl`.

    Args:
        path: A ``.jsonl`` (or ``.jsonl.gz``) file.
        **options: None are accepted.

    Raises:
        TypeError: When an option is given.
        DataError: A line is not JSON or a field is missing or of the wrong type (names the
            file, the line and the field).
    """
    if options:
        raise TypeError(f"read_synthetic takes no options, got {sorted(options)}")
    examples = []
    for loc, record in iter_jsonl(path):
        for key, kind in (("id", str), ("question", str), ("answers", list), ("documents", list)):
            require(record, key, kind, path, loc)
        for key, kind in (("task", str), ("meta", dict)):
            if key in record:
                require(record, key, kind, path, loc)
        for i, answer in enumerate(record["answers"]):
            if not isinstance(answer, str):
                raise DataError(
                    path, loc, f"answers[{i}]", f"expected a string, got {type(answer).__name__}"
                )
        for i, doc in enumerate(record["documents"]):
            for key, kind in (("id", str), ("title", str), ("text", str), ("is_gold", bool)):
                require(doc, key, kind, path, loc, prefix=f"documents[{i}]")
            if set(doc) - {"id", "title", "text", "is_gold"}:
                raise DataError(
                    path,
                    loc,
                    f"documents[{i}]",
                    f"unexpected keys {sorted(set(doc) - {'id', 'title', 'text', 'is_gold'})}",
                )
        examples.append(Example.from_dict(record))
    return examples
