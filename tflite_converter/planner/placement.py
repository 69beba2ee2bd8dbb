"""Placement strategies: a base offset for every item of a layout, and the arena they need.

Conflicts are checked per member buffer, so a group only blocks the bytes its live members
use. Strategies (`strategies`, tried in this order; the smallest arena wins):

- two_ended: items by first step, each at whichever end of a lower-bound-sized arena it can
  touch; optimal for chains (consecutive tensors alternate ends, scratch falls between);
- greedy_by_size: TFLM's GreedyMemoryPlanner rule (`place_greedy`), largest first, each at
  the lowest offset that fits;
- by_start, by_size_x_duration, by_duration: first fit in other orders.

`place_greedy` is the one implementation of TFLM's greedy rule: the planner's strategy and
its no-in-place baseline use it, and so does benchmarks/measure.py's replica of TFLM's plan
(with TFLM's own tie-break, `TieBreak.LATER_TENSOR`).
"""
from __future__ import annotations

import enum
from typing import Callable, Iterable, Iterator, Optional

from tflite_converter.planner.layout import Item, Member

# A placed item: (first step, last step, extent, members, base offset).
Placed = tuple[int, int, int, list[Member], int]
# A placement result: (base offset of every item, arena bytes).
Placement = tuple[list[int], int]


# (input tensor, output tensor) -> the largest output offset - input offset allowed at the
# step where the input dies and the output is born (Layout.overlaps without the op)
Shifts = dict[tuple[int, int], int]


def pair_interval(km: int, rm: int, sm: int, fm: int, lm: int, ko: int, at: int, so: int, fo: int,
                   lo_: int, shifts: Shifts) -> tuple[int, int]:
    """Forbidden base offsets of an item whose member (key km, at rm in the item, sm bytes,
    steps fm..lm) conflicts with a placed member (key ko at absolute offset `at`, so bytes,
    steps fo..lo_): the whole overlap, or less where one is the other's shifted output."""
    if lo_ == fm:
        d = shifts.get((ko, km))  # the placed buffer is the input, the new one its output
        if d is not None:
            return at + d - rm, at + so - rm
    if lm == fo:
        d = shifts.get((km, ko))  # the new buffer is the input of the placed one
        if d is not None:
            return at - rm - sm, at - d - rm
    return at - rm - sm, at + so - rm


def _shifts_for(item: Item, shifts: Optional[Shifts], keys: frozenset[int]) -> Optional[Shifts]:
    """`shifts` when one of the item's buffers is in a shifted pair (`keys`: every buffer
    that is), else None: the item then takes _forbidden's plain path."""
    if shifts and any(m[4] in keys for m in item[3]):
        return shifts
    return None


def _shifted_keys(shifts: Optional[Shifts]) -> frozenset[int]:
    return frozenset(k for pair in shifts for k in pair) if shifts else frozenset()


def _forbidden(item: Item, placed: Iterable[Placed], shifts: Optional[Shifts] = None) -> list[tuple[int, int]]:
    """Open intervals (lo, hi) of group base offsets that would overlap a live buffer
    (`shifts`: pass only where `_shifts_for` gives them, so unshifted items stay fast)."""
    f0, l0, extent, members = item
    if len(members) == 1 and not shifts:
        # a lone buffer (offset 0 in its item, live for the whole item): only the other
        # item's members need their lifetimes checked
        out = []
        for fo_, lo_i, other_extent, other_members, base in placed:
            if lo_i < f0 or fo_ > l0:
                continue
            if len(other_members) == 1:
                out.append((base - extent, base + other_extent))
                continue
            for (ro, so, fo, lo_, _) in other_members:
                if so and fo <= l0 and f0 <= lo_ and extent:
                    out.append((base + ro - extent, base + ro + so))
        return out
    out = []
    for fo_, lo_i, _, other_members, base in placed:
        if lo_i < f0 or fo_ > l0:
            continue
        for (ro, so, fo, lo_, ko) in other_members:
            if not so:
                continue
            for (rm, sm, fm, lm, km) in members:
                if sm and fo <= lm and fm <= lo_:
                    if shifts and (lo_ == fm or lm == fo):
                        out.append(pair_interval(km, rm, sm, fm, lm, ko, base + ro, so, fo, lo_, shifts))
                    else:
                        out.append((base + ro - rm - sm, base + ro + so - rm))
    return out


def lowest_free_base(intervals: list[tuple[int, int]]) -> int:
    """The lowest base >= 0 inside none of the open intervals (lo, hi)."""
    b = 0
    for lo, hi in sorted(intervals):
        if lo >= b:
            break
        if hi > b:
            b = hi
    return b


def place_first_fit(items: list[Item], idx: list[int], sweep: bool, shifts: Optional[Shifts] = None) -> Placement:
    """Each item in `idx` order at the lowest offset that fits. `sweep`: idx is sorted by
    first step, so items that ended before the current start can be forgotten."""
    bases = [0] * len(items)
    placed: list[Placed] = []
    arena = 0
    step = -1
    keys = _shifted_keys(shifts)
    for i in idx:
        it = items[i]
        if sweep and it[0] != step:
            step = it[0]
            placed = [pb for pb in placed if pb[1] >= step]
        b = lowest_free_base(_forbidden(it, placed, _shifts_for(it, shifts, keys)))
        bases[i] = b
        placed.append((*it, b))
        if b + it[2] > arena:
            arena = b + it[2]
    return bases, arena


def _place_two_ended(items: list[Item], idx: list[int], cap: int, shifts: Optional[Shifts] = None) -> Placement:
    """Items by first step; each goes to whichever end of a `cap`-byte arena it can touch
    (bottom first), else the lowest fit. On a chain consecutive tensors alternate ends and
    scratch falls in the gap, which reaches the lower bound exactly."""
    bases = [0] * len(items)
    placed: list[Placed] = []
    arena = 0
    step = -1
    keys = _shifted_keys(shifts)
    for i in idx:
        it = items[i]
        f0, _, extent, _ = it
        if f0 != step:  # forget items that ended before this step (none end within a step)
            placed = [pb for pb in placed if pb[1] >= f0]
            step = f0
        iv = _forbidden(it, placed, _shifts_for(it, shifts, keys))
        b = lowest_free_base(iv)
        if b != 0 and extent <= cap:
            # the top end is free iff no forbidden interval contains it
            top = cap - extent
            for lo, hi in iv:
                if lo < top < hi:
                    break
            else:
                b = top
        bases[i] = b
        placed.append((*it, b))
        if b + extent > arena:
            arena = b + extent
    return bases, arena


class TieBreak(enum.Enum):
    """Which of two equally large items TFLM's greedy rule places first."""

    EARLIER_START = "earlier_start"  # the one live first, then the earlier item (this planner)
    # the larger key (tensor index) first: TFLM sorts its buffers by size with a reverse
    # sort, which puts the later of two equal tensors first
    LATER_TENSOR = "later_tensor"


def greedy_order(items: list[Item], tie_break: TieBreak) -> list[int]:
    """TFLM's greedy order: largest first, equal extents as `tie_break` says."""
    n = len(items)
    if tie_break is TieBreak.EARLIER_START:
        return sorted(range(n), key=lambda i: (-items[i][2], items[i][0], i))
    return sorted(range(n), key=lambda i: (-items[i][2], -items[i][3][0][4], i))


def place_greedy(items: list[Item], tie_break: TieBreak = TieBreak.EARLIER_START,
                 shifts: Optional[Shifts] = None) -> Placement:
    """TFLM's GreedyMemoryPlanner: items largest first (`greedy_order`), each at the lowest
    offset that overlaps no buffer live at the same time (`shifts`: except as they allow)."""
    return place_first_fit(items, greedy_order(items, tie_break), False, shifts)


def strategies(items: list[Item], lower_bound: int,
               shifts: Optional[Shifts] = None) -> Iterator[tuple[str, Callable[[], Placement]]]:
    """(name, run) of every strategy, in the order they are tried."""
    n = len(items)
    by_start = sorted(range(n), key=lambda i: (items[i][0], -items[i][2], i))
    yield "two_ended", lambda: _place_two_ended(items, by_start, lower_bound, shifts)
    yield "greedy_by_size", lambda: place_greedy(items, shifts=shifts)
    yield "by_start", lambda: place_first_fit(items, by_start, True, shifts)
    yield "by_size_x_duration", lambda: place_first_fit(
        items,
        sorted(range(n), key=lambda i: (-items[i][2] * (items[i][1] - items[i][0] + 1), i)),
        False,
        shifts,
    )
    yield "by_duration", lambda: place_first_fit(
        items,
        sorted(range(n), key=lambda i: (items[i][0] - items[i][1], -items[i][2], i)),
        False,
        shifts,
    )


def best_placement(items: list[Item], lower_bound: int,
                   shifts: Optional[Shifts] = None) -> tuple[list[int], int, str]:
    """The strategies in turn until one reaches `lower_bound`: (bases, arena, name) of the
    smallest arena (the first on ties)."""
    best: Optional[tuple[list[int], int, str]] = None
    for name, run in strategies(items, lower_bound, shifts):
        bases, arena = run()
        if best is None or arena < best[1]:
            best = (bases, arena, name)
        if arena <= lower_bound:
            break
    assert best is not None
    return best
