"""Scratch grants: loop tiling into the room placement left free.

An op whose kernel runs faster with more scratch (`opspec.preferred_scratch_bytes`, e.g.
CONV_2D's wider im2col pixel block) gets, after placement, that scratch where it fits in a
free gap of the arena at its step. The arena never grows and every other offset
stays as placed, so the arena is exactly the minimum-scratch plan's.
"""
from __future__ import annotations

import bisect

from tflite_converter.planner.layout import Layout
from tflite_converter.planner.lifetimes import round_up


def grant_scratch(layout: Layout, bases: list[int], arena: int) -> dict[int, tuple[int, int]]:
    """Op position -> (offset, bytes) of the scratch granted beyond the minimum: for each op
    with a preferred size, that size where the widest free gap holds it, where the gaps are the
    arena's bytes no other buffer uses at the op's step (its minimum buffer's own bytes are
    free to it). The buffer grows in place when its gap is the widest, else moves to the
    widest gap's start. Nothing else moves and the arena does not grow."""
    preferred = layout.preferred
    if not preferred:
        return {}
    scratch = layout.scratch
    steps = {scratch[p][0]: p for p in preferred}  # one op per step
    own = {-p - 1 for p in preferred}
    # (lo, hi) of every other buffer live at one of those steps
    busy: dict[int, list[tuple[int, int]]] = {s: [] for s in steps}
    offset_of: dict[int, int] = {}
    step_list = sorted(steps)
    for (f0, l0, _, members), base in zip(layout.items, bases):
        i = bisect.bisect_left(step_list, f0)
        if i == len(step_list) or step_list[i] > l0:  # live at none of those steps
            continue
        hit = step_list[i:bisect.bisect_right(step_list, l0)]
        for rel, sz, f, e, key in members:
            if key in own:
                offset_of[-key - 1] = base + rel
            elif sz:
                lo = base + rel
                for s in hit:
                    if f <= s <= e:
                        busy[s].append((lo, lo + sz))
    grants: dict[int, tuple[int, int]] = {}
    for s, p in steps.items():
        off = offset_of[p]
        best_lo, best_size, cursor = off, 0, 0
        for lo, hi in sorted(busy[s]) + [(arena, arena)]:
            # the gap [cursor, lo); the one holding the minimum buffer wins ties (no move)
            size = lo - cursor
            if size > best_size or (size == best_size and cursor <= off < lo):
                best_lo, best_size = cursor, size
            if hi > cursor:
                cursor = hi
        # all or nothing: every kernel variant wants its whole preferred buffer, so a part
        # of it would only be reported, never used
        raw = preferred[p]
        if best_size >= round_up(raw, layout.alignment) and raw > layout.scratch_raw[p]:
            in_gap = best_lo <= off and off + round_up(raw, layout.alignment) <= best_lo + best_size
            grants[p] = (off if in_gap else best_lo, raw)
    return grants
