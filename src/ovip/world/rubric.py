"""Table 9's rubric over claims: what a text asserts about the scene, and how a response's claims compare with
the reference's. The rubric itself (weights, why) is stated in `ovip.world.judge`'s docstring; this module
implements its parts:

    claims_of(task, asked, parsed, text)
        what one text asserts: objects present (with colour, count, size), objects absent, relations, the
        yes/no verdict, "there is nothing", and what it says two incompatible ways. A terse answer is bound
        to the question's object ("green." to "what color is the house?" claims a green house, "yes." to
        "is the star yellow?" a yellow star), so a verbatim copy of a terse reference and a full sentence are
        compared on the same facts; a yes/no answer's evidence is checked against its own verdict.
    compare(task, asked, reference_claims, response_claims) -> Comparison
        coverage of the reference, whether the core answer is right, accuracy errors (about what the question
        asks or not), unverifiable detail.

A count of 1 is the unmarked form: "the boat is blue" does not leave out that there is one boat, and "a boat"
adds no detail to a reference that gives no count; every other count is a claim like a colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovip.world.parse import Mention, Parsed
from ovip.world.scene import opposite
from ovip.world.text import words

ATTRIBUTES = ("color", "count", "size")
# What each question asks about its object(s); an error there is an error "about the thing the question asks".
ASKED_FIELDS = {
    "exist": {"presence"},
    "attribute": {"presence", "color"},
    "color": {"presence", "color"},
    "count": {"presence", "count"},
    "relation": {"presence", "relation"},
}


@dataclass(frozen=True)
class Asked:
    """What a question asks about: its first object, the colour an attribute question names, the pair a
    relation question names (as `relations` writes it)."""

    category: str | None = None
    color: str | None = None
    pair: tuple[str, str] | None = None

    @classmethod
    def of(cls, query: Parsed) -> Asked:
        ms = query.mentions
        if not ms:
            return cls()
        pair = tuple(sorted((ms[0].category, ms[1].category))) if len(ms) > 1 else None
        return cls(ms[0].category, ms[0].color, pair)


@dataclass
class Claims:
    """What one text asserts (module docstring). `conflicts`: (subject, field) said two incompatible ways, the
    subject a category, a relation pair or "verdict"."""

    present: dict[str, Mention] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    relations: set[tuple[str, str, str]] = field(default_factory=set)
    verdict: str | None = None
    nothing: bool = False
    conflicts: set[tuple] = field(default_factory=set)

    def status(self, category: str) -> str | None:
        if category in self.present:
            return "present"
        return "absent" if category in self.absent or self.nothing else None


def relations(parsed: Parsed) -> set[tuple[str, str, str]]:
    """Relation claims with (a, rel, b) and (b, opposite(rel), a) written one way (a <= b)."""
    return {(a, r, b) if a <= b else (b, opposite(r), a) for a, r, b in parsed.category_relations()}


def claims_of(task: str, asked: Asked, parsed: Parsed, text: str) -> Claims:
    """The claims of `text` (`parsed` is its parse), bound to the question's object for a question."""
    out = Claims(
        present=dict(parsed.objects()),
        absent=set(parsed.negated()),
        relations=relations(parsed),
        verdict=parsed.answer,
    )
    out.nothing = not out.present and "nothing" in words(text)
    for m in parsed.mentions:  # two colours / counts / sizes of one category, or present and absent
        if m.negated and m.category in out.present:
            out.conflicts.add((m.category, "presence"))
    for c in out.present:
        said = [m for m in parsed.mentions if m.category == c and not m.negated]
        out.conflicts |= {(c, f) for f in ATTRIBUTES if len({getattr(m, f) for m in said} - {None}) > 1}
    for a, r, b in out.relations:
        if (a, opposite(r), b) in out.relations and r in ("left", "above"):
            out.conflicts.add(((a, b), "relation"))
    if len(set(parsed.answers)) > 1:
        out.conflicts.add(("verdict", "answer"))
    if task != "describe" and asked.category:
        _bind(task, asked, parsed, out)
    return out


def _bind(task: str, asked: Asked, parsed: Parsed, out: Claims) -> None:
    """Bind a terse answer to the asked object and check the answer's evidence against its own verdict."""
    c, said = asked.category, asked.category in out.present or asked.category in out.absent
    m = out.present.get(c)
    if task == "exist":
        if not said and out.verdict == "yes":
            out.present[c] = Mention(c)
        elif not said and out.verdict == "no":
            out.absent.add(c)
        if out.verdict and out.status(c) and (out.status(c) == "present") != (out.verdict == "yes"):
            out.conflicts.add(("verdict", "answer"))
    elif task == "attribute":
        if out.verdict == "yes" and c not in out.absent and (m is None or m.color is None):
            out.present[c] = _with(m or Mention(c), color=asked.color)
        elif out.verdict == "no" and not said:
            out.present[c] = Mention(c)
        m = out.present.get(c)
        said_yes = m is not None and m.color is not None and m.color == asked.color
        if out.verdict and (m is None or m.color is not None) and said_yes != (out.verdict == "yes"):
            out.conflicts.add(("verdict", "answer"))
    elif task in ("color", "count"):
        f, loose = ("color", parsed.loose_colors) if task == "color" else ("count", parsed.loose_counts)
        values = set(loose) | ({getattr(m, f)} if m is not None and getattr(m, f) is not None else set())
        if len(values) > 1:
            out.conflicts.add((c, f))
        if loose and task == "count" and loose[0] == 0 and m is None:
            out.absent.add(c)
        elif loose and c not in out.absent and (m is None or getattr(m, f) is None):
            out.present[c] = _with(m or Mention(c), **{f: loose[0]})
        if task == "count" and c in out.present and out.present[c].count == 0:
            out.present.pop(c)
            out.absent.add(c)


def _with(m: Mention, **kw) -> Mention:
    d = {"category": m.category, "color": m.color, "count": m.count, "size": m.size, **kw}
    return Mention(**d)


@dataclass(frozen=True)
class Comparison:
    """`coverage`: share (0-1) of the reference's claims the response states right (credit per claim);
    `core_ok`: the core answer (verdict, asked colour / count / relation) is the reference's; `errors`:
    (subject, field) the response gets wrong against the reference or says two incompatible ways, split into
    `core_errors` (about what the question asks; every error of a description) and `side_errors`; `extra`:
    unverifiable detail (1 per object, absence or relation the reference does not mention, 0.1 per colour,
    size or count > 1 it adds to an object the reference names)."""

    coverage: float
    core_ok: bool
    core_errors: int
    side_errors: int
    extra: float


def _part(ref_value, value, f: str) -> float:
    if value == ref_value or (f == "count" and ref_value == 1 and value is None):
        return 1.0
    return 0.5 if value is None else 0.0


def compare(task: str, asked: Asked, ref: Claims, got: Claims) -> Comparison:
    credits: list[float] = []
    errors: set[tuple] = set(got.conflicts)
    extra = 0.0
    for c, r in ref.present.items():
        m = got.present.get(c)
        if m is None:
            credits.append(0.0)
            if got.status(c) == "absent":
                errors.add((c, "presence"))
            continue
        stated = [f for f in ATTRIBUTES if getattr(r, f) is not None]
        parts = [_part(getattr(r, f), getattr(m, f), f) for f in stated]
        credits.append(0.4 + 0.6 * sum(parts) / len(parts) if parts else 1.0)
        errors |= {(c, f) for f, p in zip(stated, parts, strict=True) if p == 0.0}
        extra += 0.1 * sum(
            getattr(r, f) is None and getattr(m, f) not in (None, 1 if f == "count" else None)
            for f in ATTRIBUTES
        )
    for c in ref.absent:
        credits.append(float(got.status(c) == "absent"))
        if c in got.present:
            errors.add((c, "presence"))
    if ref.nothing:
        credits.append(float(not got.present))
        errors |= {(c, "presence") for c in got.present}
    for a, r, b in ref.relations:
        credits.append(float((a, r, b) in got.relations))
        if (a, opposite(r), b) in got.relations:
            errors.add(((a, b), "relation"))
    for c in got.present:
        extra += c not in ref.present and ref.status(c) is None
    for c in got.absent:
        extra += ref.status(c) is None
    for a, r, b in got.relations - ref.relations:
        extra += (a, opposite(r), b) not in ref.relations
    if ref.verdict and got.verdict and got.verdict != ref.verdict:
        errors.add(_verdict_key(task, asked))
    core = sum(_is_core(task, asked, e) for e in errors)
    return Comparison(
        coverage=sum(credits) / len(credits) if credits else 1.0,
        core_ok=task == "describe" or _core_ok(task, asked, ref, got),
        core_errors=core,
        side_errors=len(errors) - core,
        extra=extra,
    )


def _verdict_key(task: str, asked: Asked) -> tuple:
    """A wrong yes / no is the same error as the wrong fact it stands for (no double charge)."""
    if task == "exist" and asked.category:
        return (asked.category, "presence")
    if task == "attribute" and asked.category:
        return (asked.category, "color")
    return ("verdict", "answer")


def _is_core(task: str, asked: Asked, error: tuple) -> bool:
    subject, f = error
    if task == "describe" or subject == "verdict":
        return True
    subjects = {asked.category, asked.pair} | (set(asked.pair) if asked.pair else set())
    return subject in subjects and f in ASKED_FIELDS.get(task, set())


def _core_ok(task: str, asked: Asked, ref: Claims, got: Claims) -> bool:
    c = asked.category
    if task == "relation":
        want = {t for t in ref.relations if (t[0], t[2]) == asked.pair} or ref.relations
        return bool(want) and want <= got.relations
    if c is None:
        return False
    if task == "exist":
        verdict = {"present": "yes", "absent": "no"}.get(ref.status(c))
        return verdict is not None and got.status(c) == ref.status(c) and got.verdict in (None, verdict)
    if task == "attribute":
        return _says_yes(ref, c, asked.color) is not None and _says_yes(got, c, asked.color) == _says_yes(
            ref, c, asked.color
        )
    f = "color" if task == "color" else "count"

    def value(x: Claims):
        if x.status(c) == "absent":
            return 0 if f == "count" else "absent"
        m = x.present.get(c)
        return getattr(m, f) if m is not None else None

    return value(ref) is not None and value(got) == value(ref)


def _says_yes(x: Claims, category: str, color: str | None) -> bool | None:
    if x.verdict:
        return x.verdict == "yes"
    if x.status(category) == "absent":
        return False
    m = x.present.get(category)
    return None if m is None or m.color is None else m.color == color
