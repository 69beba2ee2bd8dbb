"""Live bytes per step: the lower bound no placement of a layout's items can beat.

At each step, the bytes of the buffers live then, counting the shared bytes of a group once
(an alias, an in-place output over its input, a concatenation's slices).
"""
from __future__ import annotations

from tflite_converter.planner.layout import Item, Layout


def live_bytes(layout: Layout) -> list[int]:
    """The bytes live at each step of `layout`'s schedule."""
    return live_bytes_of(layout.items, layout.n_steps)


def live_bytes_of(items: list[Item], n_steps: int) -> list[int]:
    """The bytes `items` hold at each of `n_steps` steps."""
    n = n_steps
    diff = [0] * (max(n, 1) + 1)
    for f0, l0, extent, members in items:
        if len(members) == 1:
            if extent:
                diff[f0] += extent
                diff[l0 + 1] -= extent
            continue
        if len(members) == 2:
            # both members counted in full, minus their common bytes while both are live
            (o1, s1, f1, l1, _), (o2, s2, f2, l2, _) = members
            for sz, f, e in ((s1, f1, l1), (s2, f2, l2)):
                diff[f] += sz
                diff[e + 1] -= sz
            a, b = (f1 if f1 > f2 else f2), (l1 if l1 < l2 else l2) + 1
            common = (o1 + s1 if o1 + s1 < o2 + s2 else o2 + s2) - (o1 if o1 > o2 else o2)
            if a < b and common > 0:
                diff[a] -= common
                diff[b] += common
            continue
        # the union of the live members' bytes only changes where a member starts or ends:
        # compute it once per segment between those steps
        cuts = sorted({m[2] for m in members}.union([m[3] + 1 for m in members]))
        a = cuts[0]
        for b in cuts[1:]:
            spans = [(o, o + sz) for (o, sz, f, e, _) in members if f <= a <= e and sz]
            if len(spans) == 1:
                total = spans[0][1] - spans[0][0]
            else:
                spans.sort()
                total = 0
                end = -1
                for lo, hi in spans:
                    if hi <= end:
                        continue
                    total += hi - (lo if lo > end else end)
                    end = hi
            diff[a] += total
            diff[b] -= total
            a = b
    live = []
    acc = 0
    for s in range(n):
        acc += diff[s]
        live.append(acc)
    return live
