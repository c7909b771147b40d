"""Scenes of the built-in world: object groups with colour, size and positions .

A scene holds at most one group per category; a group is `count` instances of one category that share
colour and size. Relations (left of, above, ...) and counts are derived from positions, never stored.

Three distributions:
  * `biased`  — the pretraining distribution: co-occurrence priors (B comes with A with probability p,
    and is then usually small, in one of the cells around A) and colour priors (A is usually colour c).
  * `counter` — breaks the priors: at least one anchor A is present, every present anchor's partner B is
    absent, and every colour-prior category takes a non-prior colour.
  * `free`    — uniform categories and colours (used where a split wants no prior either way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovip.config.world import WorldConfig

RELATIONS = ("left", "right", "above", "below")
RELATION_MARGIN = 0.1  # centres closer than this along an axis are not related along it (less than a cell)


@dataclass(frozen=True)
class Group:
    """`count` = len(positions) instances of `category`, each a box of side `scale` (image units) at (x, y)."""

    category: str
    color: str
    size: str
    scale: float
    positions: tuple[tuple[float, float], ...]

    @property
    def count(self) -> int:
        return len(self.positions)

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "color": self.color,
            "size": self.size,
            "scale": self.scale,
            "positions": [list(p) for p in self.positions],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Group:
        return cls(
            d["category"],
            d["color"],
            d["size"],
            float(d["scale"]),
            tuple((float(x), float(y)) for x, y in d["positions"]),
        )


@dataclass(frozen=True)
class Scene:
    groups: tuple[Group, ...]

    def categories(self) -> set[str]:
        return {g.category for g in self.groups}

    def group(self, category: str) -> Group | None:
        return next((g for g in self.groups if g.category == category), None)

    def to_dict(self) -> dict:
        return {"groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(tuple(Group.from_dict(g) for g in d["groups"]))


def relation(a: Group, b: Group) -> set[str]:
    """Relations that hold from single-instance group a to b ("a is left of b", ...), with a margin."""
    (ax, ay), (bx, by) = a.positions[0], b.positions[0]
    out = set()
    if bx - ax > RELATION_MARGIN:
        out.add("left")
    if ax - bx > RELATION_MARGIN:
        out.add("right")
    if by - ay > RELATION_MARGIN:
        out.add("above")
    if ay - by > RELATION_MARGIN:
        out.add("below")
    return out


def opposite(rel: str) -> str:
    return {"left": "right", "right": "left", "above": "below", "below": "above"}[rel]


@dataclass(frozen=True)
class GroupSpec:
    """A group before placement; None fields are drawn at placement time."""

    category: str
    color: str | None = None
    size: str | None = None
    count: int | None = None
    anchor: str | None = None  # a co-occurrence partner sits in a cell next to its anchor's first instance


def _color(cfg: WorldConfig, rng: np.random.Generator, category: str, mode: str) -> str:
    prior = {a: (c, q) for a, c, q in cfg.color_priors}.get(category)
    if prior is None or mode == "free":
        return str(rng.choice(cfg.colors))
    color, q = prior
    if mode == "biased" and rng.random() < q:
        return color
    return str(rng.choice([c for c in cfg.colors if c != color]))


def _count(cfg: WorldConfig, rng: np.random.Generator) -> int:
    return 1 if cfg.max_count == 1 or rng.random() >= cfg.multi_p else int(rng.integers(2, cfg.max_count + 1))


def sample_specs(
    cfg: WorldConfig, rng: np.random.Generator, mode: str, exclude: tuple[str, ...] = ()
) -> list[GroupSpec]:
    """Draw the groups of one scene from the `biased`, `counter` or `free` distribution (module docstring).

    Categories in `exclude` never appear (the preference split holds one co-occurrence pair out this way).
    """
    partner = {a: (b, p) for a, b, p in cfg.co_occurrence if a not in exclude}
    pool = [c for c in cfg.categories if c not in exclude]
    n = int(rng.integers(cfg.min_groups, cfg.max_groups + 1))
    if mode == "counter":
        # an anchor A without its partner B; any other anchor drawn keeps its partner away too
        chosen = [str(rng.choice(list(partner)))]
        for c in map(str, rng.permutation(pool)):
            if len(chosen) == n:
                break
            clash = (
                c in chosen
                or partner.get(c, (None,))[0] in chosen
                or any(partner.get(a, (None,))[0] == c for a in chosen)
            )
            if not clash:
                chosen.append(c)
    else:
        chosen = list(map(str, rng.choice(pool, size=n, replace=False)))
    attached: set[str] = set()
    if mode == "biased":
        for a in list(chosen):
            if a not in partner:
                continue
            b, p = partner[a]
            if rng.random() < p and b not in exclude:
                chosen += [] if b in chosen else [b]
                attached.add(b)
            elif b in chosen:
                chosen.remove(b)
    anchor_of = {b: a for a, (b, _) in partner.items()}
    specs = []
    for c in chosen:
        small = rng.random() < (cfg.partner_small_p if c in attached else cfg.small_p)
        specs.append(
            GroupSpec(
                c,
                _color(cfg, rng, c, mode),
                "small" if small else "large",
                _count(cfg, rng),
                anchor_of[c] if c in attached else None,
            )
        )
    return specs


def place(
    specs: list[GroupSpec],
    cfg: WorldConfig,
    rng: np.random.Generator,
    relations: list[tuple[int, str, int]] = (),
    tries: int = 100,
) -> Scene:
    """Positions for every instance on a `cfg.grid` x `cfg.grid` layout, `relations` (i, rel, j) held.

    Each instance gets its own cell and stays inside it, so with `patch_size = image_size / grid` an object
    never straddles two image tokens (what lets a tiny ViT learn from scratch in minutes). A co-occurrence
    partner sits in a random free cell among the eight around its anchor's first instance, so neither where
    B is nor whether it comes before or after A in a description (reading order) is fixed: to tell whether
    B is there, a model has to look, not check one cell.
    Missing colours / sizes / counts are drawn here; instances beyond the number of cells are dropped.
    """
    g = cfg.grid
    filled = [
        GroupSpec(
            s.category,
            s.color or str(rng.choice(cfg.colors)),
            s.size or ("small" if rng.random() < cfg.small_p else "large"),
            max(1, min(s.count or 1, cfg.max_count)),
            s.anchor,
        )
        for s in specs
    ]
    counts = [s.count for s in filled]
    while sum(counts) > g * g:  # more instances than cells: thin the largest group
        counts[int(np.argmax(counts))] -= 1
    base = {"small": cfg.small_scale, "large": cfg.large_scale}
    # a small partner placed by a co-occurrence prior is smaller still: weak (but present) visual evidence
    sides = [cfg.partner_scale if s.anchor and s.size == "small" else base[s.size] for s in filled]
    scales = [round(side * (1 + 0.1 * cfg.jitter * float(rng.uniform(-1, 1))) / g, 3) for side in sides]
    # anchors whose partner is present are placed first (so that a free cell is left next to them), then the rest
    partner_of = {f.anchor: f.category for f in filled if f.anchor}
    order = sorted(range(len(filled)), key=lambda i: filled[i].category not in partner_of)
    groups: tuple[Group, ...] = ()
    for _ in range(tries):
        free = [int(c) for c in rng.permutation(g * g)]
        reserved: dict[str, int] = {}  # partner category -> its cell
        cells: dict[int, list[int]] = {}
        for i in order:
            s, mine = filled[i], []
            for k in range(counts[i]):
                if k == 0 and s.category in reserved:
                    c = reserved.pop(s.category)
                elif k == 0 and partner_of.get(s.category) is not None:
                    # an anchor whose partner is in the scene: a cell with a free neighbour, the neighbour kept for B
                    c = next((c for c in free if _neighbours(c, g, free)), None)
                    if c is not None:
                        spots = _neighbours(c, g, free)
                        reserved[partner_of[s.category]] = spots[int(rng.integers(len(spots)))]
                        free.remove(reserved[partner_of[s.category]])
                else:
                    c = next(iter(free), None)
                if c is None:
                    break
                if c in free:
                    free.remove(c)
                mine.append(c)
            cells[i] = mine
        groups = tuple(
            Group(
                s.category,
                s.color,
                s.size,
                scales[i],
                tuple(_in_cell(c, g, scales[i], cfg.jitter, rng) for c in cells[i]),
            )
            for i, s in enumerate(filled)
            if cells[i]
        )
        if all(rel in relation(groups[i], groups[j]) for i, rel, j in relations):
            break
    return Scene(groups)


def _neighbours(cell: int, g: int, free: list[int]) -> list[int]:
    """Free cells among the (up to) eight around `cell` on a g x g grid, in a fixed order."""
    row, col = divmod(cell, g)
    return [
        r * g + c
        for r in range(row - 1, row + 2)
        for c in range(col - 1, col + 2)
        if 0 <= r < g and 0 <= c < g and (r, c) != (row, col) and r * g + c in free
    ]


def _in_cell(cell: int, g: int, scale: float, jitter: float, rng: np.random.Generator) -> tuple[float, float]:
    row, col = divmod(cell, g)
    slack = (
        jitter * max(0.0, 1.0 / g - scale) / 2
    )  # how far the centre may move with the box still inside the cell
    x = (col + 0.5) / g + float(rng.uniform(-slack, slack))
    y = (row + 0.5) / g + float(rng.uniform(-slack, slack))
    return round(x, 3), round(y, 3)


def sample_scene(cfg: WorldConfig, seed: int, mode: str, exclude: tuple[str, ...] = ()) -> Scene:
    """One scene from `mode` in {'biased', 'counter', 'free'}, a pure function of (cfg, seed, mode, exclude)."""
    if mode not in ("biased", "counter", "free"):
        raise ValueError(f"mode must be biased, counter or free, got {mode!r}")
    rng = np.random.default_rng(seed)
    return place(sample_specs(cfg, rng, mode, exclude), cfg, rng)
