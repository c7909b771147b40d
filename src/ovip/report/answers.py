"""What a world model answers: a sample of the per-item records `ovip eval world` writes beside summary.json.

Each world benchmark's OUTPUT/<split>.jsonl (`ovip.world.bench.evaluate_world_items`) holds every item's
query, answer, reference and what its metrics counted. The report shows `n` items of each benchmark, drawn
with a fixed seed from the items every evaluation answered, so that with two evaluations (before and after
training) the same questions sit side by side: the query and the reference once, then per evaluation the
answer and what was counted (hallucinated objects, the yes/no verdict, the judge's rating, a cut or
ungrammatical answer).
"""

from __future__ import annotations

import random
from pathlib import Path

from ovip.report.data import Table, fmt, read_jsonl


def counted(split: str, item: dict) -> str:
    """One line saying what the split's metrics counted for `item` (fields of `ovip.world.bench.ITEM_FIELDS`)."""
    parts = []
    if split in ("amber_gen", "objecthal"):
        hallucinated = item.get("hallucinated") or []
        parts.append(
            "hallucinated: " + ", ".join(map(str, hallucinated)) if hallucinated else "no hallucination"
        )
    elif split == "amber_dis":
        if item.get("invalid"):
            parts.append("neither yes nor no")
        else:
            verdict = "right" if item.get("correct") else f"wrong (truth: {item.get('label')})"
            parts.append(verdict + (", a prior-baiting question" if item.get("bait") else ""))
    elif split in ("mmhal", "llava_bench") and item.get("judge_failed"):
        parts.append("judge failed")
    elif split == "mmhal":
        rating = f"rating {item.get('rating')} of 6"
        parts.append(rating + (", with hallucination" if item.get("hallucinating") else ""))
    elif split == "llava_bench":
        parts.append(f"judge {fmt(item.get('judge_score'))}, reference {fmt(item.get('reference_score'))}")
    elif split == "general":
        parts.append("right" if item.get("correct") else "wrong")
    if item.get("cut"):
        parts.append("cut at max_new_tokens")
    if item.get("parses") is False:
        parts.append("not world grammar")
    if item.get("contradiction"):
        parts.append("contradiction")
    if item.get("repeated_mentions"):
        parts.append(f"{item['repeated_mentions']} repeated mentions")
    return "; ".join(parts)


def answer_tables(found: list[tuple[Path, dict, str]], n: int = 4, seed: int = 0) -> list[Table]:
    """One table per world benchmark over the evaluations in `found` ((summary.json, record, label), as
    `ovip.report.results.evaluations` orders them); none when no summary names its item files."""
    splits = list(
        dict.fromkeys(s for _, r, _ in found if isinstance(r.get("items"), dict) for s in r["items"])
    )
    tables = []
    for split in splits:
        columns, read, notes, sources = [], [], [], []
        for path, record, label in found:
            name = (record.get("items") or {}).get(split)
            if not isinstance(name, str):
                continue
            file = path.parent / name
            records, bad = read_jsonl(file)
            if not file.is_file():
                notes.append(f"{file} is missing")
            elif bad:
                notes.append(f"{file}: {bad} unreadable lines skipped")
            sources.append(str(file))
            columns.append(label)
            read.append({str(r.get("id")): r for r in records})
        if not read:
            continue
        common = [i for i in read[0] if all(i in items for items in read[1:])]
        picked = set(random.Random(seed).sample(common, min(n, len(common))))
        rows = []
        for i in (i for i in common if i in picked):
            first = read[0][i]
            row = [i, str(first.get("query", "")), str(first.get("reference", ""))]
            for items in read:
                row += [str(items[i].get("answer", "")), counted(split, items[i])]
            rows.append(row)
        same = ", the same items in each evaluation" if len(read) > 1 else ""
        tables.append(
            Table(
                f"ovip eval world: {split} answers ({len(rows)} of {len(common)}{same})",
                ["id", "query", "reference", *(f"{c}: {x}" for c in columns for x in ("answer", "counted"))],
                rows,
                ", ".join(sources),
                "; ".join(notes),
                kind="answers",
            )
        )
    return tables
