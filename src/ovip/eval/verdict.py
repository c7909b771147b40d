"""Reading a judge's verdict ("Score: 8", "Rating: 4") from its reply, on the scale its prompt names.

The OViP judge (Table 9) scores 0-10, MMHal-Bench's judge rates 0-6 (LLaVA-RLHF's rubric). A judge does not
always keep to the prompt's format, and a number read against the wrong scale is worse than no number: a
verdict "8 out of 100" read as an 8 rewards a response the judge found poor. So a reply is read only when

- every "<label>:" in it is followed by the same value (ASCII digits, as the authors' `[0-9]+`; a decimal part
  where the scale allows one), optionally in brackets or markdown emphasis ("Score: [7]", "**Score:** 7");
- the value is within 0..top, with no sign ("Score: -1" is not a 0);
- nothing right after the value makes it a range or one of several values ("7-8", "7 or 8", "7, 8") or a
  percentage ("80%");
- every scale the reply names is the prompt's: "8/10", "8⁄10" (fraction slash U+2044), "8 of 10",
  "8 out of a possible 10", "8 (0-10)", "on a scale of 1 to 10", "a 10-point scale" are fine, "8/100",
  "8 (out of 100)", "8 on a scale of 100", "a 5-point scale" make the reply unreadable.

Forms that also mean other things ("2 out of 3 objects", "3/4", "(1-5)") count as a scale on the verdict's
own line only; "scale of N", "N-point scale" and "out of a possible N" count anywhere in the reply. A
verdict line that also counts objects ("Score: 6, 2 out of 3 objects are right") is therefore unreadable:
a failed judgment, counted, never a guessed score.
"""

from __future__ import annotations

import re

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "twenty": 20, "hundred": 100,
}  # fmt: skip
_N = r"(?:[0-9]+(?:\.[0-9]+)?|" + "|".join(_WORDS) + r")\b"
_SLASHES = "/\u2044\u2215\uff0f"  # solidus, fraction slash, division slash, full-width solidus
_TO = r"\s*(?:-|\u2013|\u2014|~|to)\s*"
_SKIP = r"[\s*_`\]]*"  # closing brackets and markdown emphasis after the value

# Scale mentions, each with an optional bottom and a top. Ambiguous forms are looked for on the verdict's line.
_ON_LINE = [
    re.compile(rf"[{_SLASHES}]\s*(?P<top>{_N})", re.IGNORECASE),
    re.compile(rf"\bout\s+of\s+(?:a\s+|the\s+)?(?P<top>{_N})", re.IGNORECASE),
    re.compile(rf"\(\s*(?P<bottom>{_N}){_TO}(?P<top>{_N})\s*\)", re.IGNORECASE),
]
_ANYWHERE = [
    re.compile(rf"\bscale\s+(?:of|from)\s+(?:(?P<bottom>{_N}){_TO})?(?P<top>{_N})", re.IGNORECASE),
    re.compile(rf"\b(?P<top>{_N})\s*-?\s*points?\s+scale", re.IGNORECASE),
    re.compile(
        rf"\b(?:out\s+)?of\s+a\s+(?:possible|maximum|max|total)(?:\s+of)?\s+(?P<top>{_N})", re.IGNORECASE
    ),
]
_OF_RIGHT_AFTER = re.compile(rf"{_SKIP}\(?\s*of\s+(?P<top>{_N})", re.IGNORECASE)  # "8 of 100", "8 (of 10)"
_ANOTHER_VALUE = re.compile(
    rf"{_SKIP}(?:[-\u2013\u2014~,&+]|to\b|or\b|and\b)\s*[\[*_`]*[0-9]", re.IGNORECASE
)  # "7-8", "7 or 8", "7, 8"
_PERCENT = re.compile(rf"{_SKIP}(?:%|percent)", re.IGNORECASE)
_VALUE = re.compile(r"[\s*_`\[]*(?P<sign>[-+\u2212]?)(?P<value>[0-9]+(?:\.[0-9]+)?)(?!\.?\w)")


def _number(text: str) -> float:
    return float(_WORDS.get(text.lower(), text))


def _names_only(mentions, top: float) -> bool:
    """True when every scale mention is 0..top or 1..top."""
    for m in mentions:
        if _number(m["top"]) != top:
            return False
        if m["bottom"] is not None and _number(m["bottom"]) not in (0, 1):
            return False
    return True


def _mentions(patterns, text: str):
    for pattern in patterns:
        for m in pattern.finditer(text):
            yield {"top": m["top"], "bottom": m.groupdict().get("bottom")}


def names_only_scale(text: str, top: float) -> bool:
    """False when `text` names a scale other than 0..top or 1..top anywhere ("on a scale of 100",
    "a 5-point scale", "out of a possible 100"); the forms that also mean other things are not looked for."""
    return _names_only(_mentions(_ANYWHERE, text), top)


def read_verdict(text: str | None, label: str, top: float, decimals: bool = True) -> float | None:
    """The value of every "<label>: v" verdict in `text` when they agree and keep to the scale 0..`top`, else
    None (see the module docstring for what is read). `label` is matched case-insensitively as a whole word,
    with an optional parenthesis before the colon ("Score (0-10): 7"); `decimals=False` rejects "4.5"."""
    if not text:
        return None
    labels = re.compile(
        rf"(?<![A-Za-z0-9_]){re.escape(label)}[\s*_]*(?:\([^)\n]{{0,40}}\)[\s*_]*)?[:\uff1a]", re.IGNORECASE
    )
    if not names_only_scale(text, top):
        return None
    values = set()
    for found in labels.finditer(text):
        value = _VALUE.match(text, found.end())
        if value is None or value["sign"] or (not decimals and "." in value["value"]):
            return None
        line_end = text.find("\n", value.end())
        line_end = len(text) if line_end < 0 else line_end
        after = text[value.end() : line_end]
        if _ANOTHER_VALUE.match(after) or _PERCENT.match(after):
            return None
        line = text[text.rfind("\n", 0, found.start()) + 1 : line_end]
        mentions = list(_mentions(_ON_LINE, line))
        of = _OF_RIGHT_AFTER.match(after)
        if of is not None:
            mentions.append({"top": of["top"], "bottom": None})
        if not _names_only(mentions, top):
            return None
        values.add(float(value["value"]))
    if len(values) != 1:
        return None
    (score,) = values
    return score if 0 <= score <= top else None
