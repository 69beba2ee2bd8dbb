"""The planner's SRAM figures of an MCUNet network, worked out from its NetworkSpec.

Stage 1 of TinyNAS profiles tens of thousands of candidates; building each one's Graph and
running the general planner (``tflite_converter.planner.plan_memory``) manages about a
thousand a second. Every network of :class:`mcunet_tf.network.NetworkSpec` is the same kind of
graph -- a chain (stem conv, MBConv blocks, optional feature mix, MEAN, FULLY_CONNECTED) whose
only branch is the identity shortcut of a block -- so what the planner does with it can be
followed step by step without the Graph:

1. **Layout** (the planner's ``build_layout``). Lifetimes follow the chain; a block input
   with a shortcut lives until its ADD. The planner's in-place rules come out the same on every
   such graph: the ADD always writes over its block input (it dies there, nothing else of its
   group is still needed, no extra scratch), so a run of residual blocks is one buffer; the
   depthwise conv writes over its input when that input dies there (always after an expansion,
   never when a shortcut still needs it) and the bytes saved exceed the extra channel buffer
   -- the one test that depends on shapes, made as the planner makes it. Every group member
   sits at offset 0 of its group, and consecutive members of one size (a residual run, a
   stride-1 depthwise output over its expansion) are kept as one buffer: the same bytes over
   one unbroken lifetime conflict with everything exactly as the planner's separate members
   do. Kernel scratch comes from ``opspec``'s shape-level functions, the ones the planner's
   per-op rules are written with.
2. **Lower bound**: the bytes live at each step, per block from its shapes alone (cached).
3. **Placement**. Without overlap the planner tries its ``two_ended`` strategy first and stops
   there when it reaches the lower bound. That strategy is replayed here on the same buffers,
   in the same order, with the same tie-breaks. If it reaches the bound, the bound is the
   arena (no placement can be smaller and the planner keeps the first strategy that reaches
   it). With overlap (the default) the bound is the overlap bound and the strategy that
   reaches it on these chains is ``greedy_by_size``: replayed from per-part constraint tables
   (``_Part``: the stem, each MBConv block of given shapes, the tail, each laid out once and
   cached), so a candidate costs one sort and one pass over its items. Where the replay misses
   its bound :func:`chain_memory` returns None and the caller runs the full planner, whose
   other strategies and no-in-place fallback decide.

It lives in ``nas`` because it reads a NetworkSpec, which the converter must not import (the
dependencies point nas -> tflite_converter). tests/test_fast_oracle.py checks it against the
full planner on hundreds of candidates and the published networks; a change to the planner's
in-place rules, to ``two_ended`` or to ``place_greedy`` must be made here too, and that test
says so when missed.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

from mcunet_tf.network import NetworkSpec
from tflite_converter.conv2d_spec import conv2d_min_scratch_bytes, conv2d_schedules
from tflite_converter.depthwise_spec import depthwise_min_scratch_bytes, is_single_channel_image
from tflite_converter.ir import same_pads
from tflite_converter.planner.placement import lowest_free_base, pair_interval
from tflite_converter.planner.plan import overlap_union_bytes
from tflite_converter.write_order import aligned_shift, conv_output_shift

# A buffer of the replay: [rounded bytes, first step, last step, key]; a list, because the
# last step of a block's output is only known once its readers have been laid out. The key
# names the buffer in the overlap shifts {(input key, output key): d}.
# An item to place: (step, extent, members), every member at offset 0, as in the planner.


def _round(n: int, a: int) -> int:
    return -(-n // a) * a


def _conv_scratch(kernel: int, cin: int, in_elems: int, out_elems: int, a: int) -> int:
    # a 1x1 convolution has no SAME padding at any stride (the last window ends inside the
    # input), which is what makes it pointwise for the kernel
    return _round(conv2d_min_scratch_bytes(kernel, kernel, cin, kernel == 1, in_elems, out_elems), a)


def _shift(h: int, cin: int, ho: int, cout: int, k: int, stride: int, out_bytes: int, a: int) -> Optional[int]:
    """The planner's overlap shift of a square convolution whose input dies at it
    (layout._decide_overlaps: conv2d_shift made aligned by write_order.aligned_shift), None
    where the output could not share an aligned block with its input."""
    pad = same_pads(h, k, stride, 1, ho)[0]
    d = conv_output_shift(h, h, cin, ho, ho, cout, stride, stride, pad, pad, conv2d_schedules(k == 1, cin))
    return aligned_shift(d, a, out_bytes)


def _union(n_in: int, n_out: int, d: Optional[int]) -> int:
    """Bytes an input and its output take together at best (d None: no overlap)."""
    return n_in + n_out if d is None else min(n_in + n_out, overlap_union_bytes(n_in, n_out, d))


@functools.lru_cache(maxsize=1 << 16)
def _block(h: int, cin: int, mid: int, cout: int, k: int, stride: int, expand: bool, residual: bool,
           a: int, overlap: bool) -> tuple[Any, ...]:
    """One MBConv block on an h x h input: (input, expansion, depthwise and projection output
    bytes, expansion / depthwise / projection scratch bytes, depthwise in place, the most
    bytes live at one of its steps, output size, the same peak with the overlaps used to the
    full, the expansion's and the projection's shifts or None), all rounded to `a`."""
    ho = -(-h // stride)
    sx = _round(h * h * cin, a)
    se = _round(h * h * mid, a) if expand else 0
    sd = _round(ho * ho * mid, a)
    sp = _round(ho * ho * cout, a)
    ke = _conv_scratch(1, cin, h * h * cin, h * h * mid, a) if expand else 0
    kp = _conv_scratch(1, mid, ho * ho * mid, ho * ho * cout, a)
    single = is_single_channel_image((1, h, h, mid))
    raw_out = depthwise_min_scratch_bytes(False, single, ho, ho, k, k, stride, stride)
    st = se if expand else sx  # the depthwise input
    inplace = False
    if expand or not residual:  # the input dies at the depthwise conv
        raw_in = depthwise_min_scratch_bytes(True, single, ho, ho, k, k, stride, stride)
        # the planner's test: worth it only if the bytes saved exceed the extra scratch
        inplace = min(st, sd) > _round(raw_in, a) - _round(raw_out, a)
        kd = _round(raw_in if inplace else raw_out, a)
    else:
        kd = _round(raw_out, a)
    shortcut = sx if residual else 0  # the block input, alive until the ADD
    at_d = (max(st, sd) if inplace else st + sd) + kd + (shortcut if expand else 0)
    at_add = sx + sp if residual else 0
    # the expansion writes over the block input where it dies there (no shortcut); the
    # projection always over the depthwise output
    de = _shift(h, cin, h, mid, 1, 1, se, a) if overlap and expand and not residual else None
    dp = _shift(ho, mid, ho, cout, 1, 1, sp, a) if overlap else None
    peak = max(at_d, sd + sp + kp + shortcut, at_add)
    peak_ov = max(at_d, _union(sd, sp, dp) + kp + shortcut, at_add)
    if expand:
        peak = max(peak, sx + se + ke)
        peak_ov = max(peak_ov, _union(sx, se, de) + ke)
    return sx, se, sd, sp, ke, kd, kp, inplace, peak, ho, peak_ov, de, dp


def _put(seq: list, step: int, tensor: Optional[tuple], scratch: int) -> None:
    """Append the items starting at `step` in the planner's order: larger extent first, the
    tensor (listed before all scratch in the planner's items) on ties."""
    if tensor is None:
        if scratch:
            seq.append((step, scratch, [[scratch, step, step, -1]]))
    elif scratch > tensor[0]:
        seq.append((step, scratch, [[scratch, step, step, -1]]))
        seq.append((step, *tensor))
    else:
        seq.append((step, *tensor))
        if scratch:
            seq.append((step, scratch, [[scratch, step, step, -1]]))


class _Buffers:
    """Makes the replay's buffers, each with its own key, and records the overlap shifts."""

    def __init__(self) -> None:
        self.n = 0
        self.shifts: dict[tuple[int, int], int] = {}

    def new(self, size: int, first: int, last: int) -> list:
        self.n += 1
        return [size, first, last, self.n]

    def shift(self, src: list, dst: list, d: Optional[int]) -> None:
        if d is not None:
            self.shifts[(src[3], dst[3])] = d


def _stem_part(seq: list, bufs: _Buffers, r: int, cin: int, c: int, kernel: int, stride: int, a: int,
               overlap: bool) -> tuple[list, list, int, int, int]:
    """The stem's items at step 0: (its output buffer, that buffer's group, output size, the
    lower bound and the overlap bound at step 0)."""
    h = -(-r // stride)
    si, s0 = _round(r * r * cin, a), _round(h * h * c, a)
    k0 = _conv_scratch(kernel, cin, r * r * cin, h * h * c, a)
    # the stem writes over the graph input, which dies at it (plan_memory's overwrite_inputs)
    d0 = _shift(r, cin, h, c, kernel, stride, s0, a) if overlap else None
    image = bufs.new(si, 0, 0)
    x = bufs.new(s0, 0, 0)  # the current activation's buffer; readers set its last step
    bufs.shift(image, x, d0)
    x_item = [x]  # the members of its group (a depthwise output may join)
    first = [(si, [image]), (s0, x_item)]
    if k0:
        first.append((k0, [[k0, 0, 0, -1]]))
    first.sort(key=lambda it: -it[0])  # stable: input, stem output, scratch on ties
    seq.extend((0, ext, members) for ext, members in first)
    return x, x_item, h, si + s0 + k0, _union(si, s0, d0) + k0


def _block_part(seq: list, bufs: _Buffers, x: list, x_item: list, s: int, h: int, cin: int, mid: int,
                cout: int, k: int, stride: int, expand: bool, residual: bool, a: int,
                overlap: bool) -> Optional[tuple[list, list, int, int, int, int]]:
    """One MBConv block's items from step `s` on, reading the buffer `x` (of group `x_item`):
    (the output buffer, its group, the next step, output size, the block's peak without and
    with the overlaps), None for a shape the replay does not model."""
    sx, se, sd, sp, ke, kd, kp, inplace, peak, ho, peak_ov, de, dp = _block(
        h, cin, mid, cout, k, stride, expand, residual, a, overlap)
    x[2] = s  # read by the expansion or the depthwise conv
    if expand:
        t = bufs.new(se, s, s + 1)
        bufs.shift(x, t, de)
        t_item = [t]
        _put(seq, s, (se, t_item), ke)
        s += 1
    else:
        t, t_item = x, x_item
    # t: the depthwise input
    if inplace:  # written over its input, which joins nothing after this
        if sd > t[0]:  # a member wider than the group it joins: not modelled (a depthwise
            return None  # output is never larger than its input)
        if sd == t[0]:
            t[2] = s + 1  # same bytes, one buffer from its producer to the projection
            d = t
        else:
            d = bufs.new(sd, s, s + 1)
            t_item.append(d)
        _put(seq, s, None, kd)
    else:
        d = bufs.new(sd, s, s + 1)
        _put(seq, s, (sd, [d]), kd)
    s += 1
    p = bufs.new(sp, s, s)
    bufs.shift(d, p, dp)
    p_item = [p]
    _put(seq, s, (sp, p_item), kp)
    s += 1
    if residual:
        # the ADD writes over the block input: the sum continues that buffer
        p[2] = x[2] = s
        return x, x_item, s + 1, ho, peak, peak_ov
    return p, p_item, s, ho, peak, peak_ov


def _tail_part(seq: list, bufs: _Buffers, x: list, s: int, h: int, c: int, fm: Optional[tuple[int, int, int]],
               num_classes: int, a: int, overlap: bool) -> tuple[int, int]:
    """The optional feature mix `fm` (out channels, kernel, stride), MEAN and the classifier
    from step `s` on, reading `x` (c channels, h x h): (lower bound, overlap bound) there."""
    lb = ob = 0
    if fm is not None:
        cf, kernel, stride = fm
        x[2] = s
        ho = -(-h // stride)
        sf = _round(ho * ho * cf, a)
        kf = _conv_scratch(kernel, c, h * h * c, ho * ho * cf, a)
        df = _shift(h, c, ho, cf, kernel, stride, sf, a) if overlap else None
        lb, ob = x[0] + sf + kf, _union(x[0], sf, df) + kf
        f = bufs.new(sf, s, s)
        bufs.shift(x, f, df)
        _put(seq, s, (sf, [f]), kf)  # no depthwise conv follows: nothing joins it
        s += 1
        x, c = f, cf
    x[2] = s  # MEAN
    sm = _round(c, a)
    sy = _round(num_classes, a)
    lb, ob = max(lb, x[0] + sm, sm + sy), max(ob, x[0] + sm, sm + sy)
    seq.append((s, sm, [bufs.new(sm, s, s + 1)]))
    seq.append((s + 1, sy, [bufs.new(sy, s + 1, s + 1)]))  # the graph output lives to the end
    return lb, ob


def _feature_mix(spec: NetworkSpec) -> Optional[tuple[int, int, int]]:
    fm = spec.feature_mix
    return None if fm is None else (fm.out_channels, fm.kernel, fm.stride)


def _layout(spec: NetworkSpec, a: int, overlap: bool = False) -> Optional[tuple[list, int, int, dict]]:
    """The items to place in the planner's order, (step, extent, members), the lower bound,
    the overlap bound (the lower bound with every shift used to the full; the lower bound
    itself without `overlap`) and the shifts; None for a shape the replay does not model."""
    stem = spec.first_conv
    seq: list = []
    bufs = _Buffers()
    x, x_item, h, lb, ob = _stem_part(seq, bufs, spec.resolution, spec.in_channels, stem.out_channels,
                                      stem.kernel, stem.stride, a, overlap)
    s = 1
    for b in spec.blocks:
        part = _block_part(seq, bufs, x, x_item, s, h, b.in_channels, b.mid_channels, b.out_channels,
                           b.kernel_size, b.stride, b.has_expansion, b.residual, a, overlap)
        if part is None:
            return None
        x, x_item, s, h, peak, peak_ov = part
        lb, ob = max(lb, peak), max(ob, peak_ov)
    tail_lb, tail_ob = _tail_part(seq, bufs, x, s, h, spec.last_block_channels, _feature_mix(spec),
                                  spec.num_classes, a, overlap)
    return seq, max(lb, tail_lb), max(ob, tail_ob), bufs.shifts


# The greedy replay (the planner's place_greedy with the overlap shifts) on a chain, where
# each buffer only meets the few of its own steps. What an item meets does not depend on
# where anything is placed: every forbidden interval is (base of the other item + c1,
# base of the other item + c2), with c1, c2 from placement.pair_interval at base 0 (its
# intervals move with the base). So each part of the network (stem, one MBConv block of
# given shapes, tail) is laid out once, in isolation, reading an input buffer of its own
# ("the input", slot 0), and its items' constraints are kept: a `_Part`. A network is its
# parts' constraints put end to end, and the replay only places: items largest first (ties:
# the earlier item, which is the planner's "earlier first step, then earlier item"), each at
# the lowest base clear of the constraints of the items placed before it.


class _Part(NamedTuple):
    """A part's items as the greedy replay needs them. Items are named by slot: 0 is the
    input's group (placed by the part before), slot i + 1 the part's item i. An item whose
    earlier neighbours are all such items of the part (and neither the input nor the output,
    which the parts beside it also constrain) is placed the same in every network: *static*,
    placed here once (`bases`). The others are placed per network (`dynamic`)."""

    bases: tuple[int, ...]  # per slot, the static items' bases (0 elsewhere)
    # per dynamic item in item order: (slot, extent, its constraints from the items placed
    # before it: (slot, c1, c2), forbidden bases (base of that slot + c1, + c2), open)
    dynamic: tuple[tuple[int, int, tuple[tuple[int, int, int], ...]], ...]
    # the items placed after the input whose earlier neighbours are static, the input or
    # such items (not the output): their bases follow from the input's, so they are placed
    # as soon as it is, from `placed` (the input's base -> ((slot, base), ...), their top)
    follow: tuple[tuple[int, int, tuple[tuple[int, int, int], ...]], ...]
    placed: dict[int, tuple[tuple[tuple[int, int], ...], int]]
    in_cons: tuple[tuple[int, int, int], ...]  # the input group's, from the part's items before it
    out: int  # position in `dynamic` of the output's group, -1: the input's group goes on
    static_top: int  # the highest byte a static item takes
    lower_bound: int  # the most bytes live at one of its steps
    overlap_bound: int  # the same with the overlaps used to the full
    size: int  # the output's height and width
    shifted: bool  # whether it has an overlap shift


def _part(seq: list, bufs: _Buffers, in_item: Optional[list], out: Optional[list], lb: int, ob: int,
          size: int) -> _Part:
    """The _Part of `seq`, the items of a part laid out on their own, reading the input group
    `in_item` (listed before them all) and giving the output group `out`."""
    shifts = bufs.shifts
    items = [(i + 1, ext, members) for i, (_, ext, members) in enumerate(seq)]
    if in_item is not None:
        items.insert(0, (0, in_item[0][0], in_item))
    # the greedy order, and every member pair whose lifetimes meet: a constraint on the later
    order = sorted(items, key=lambda it: (-it[1], it[0]))
    cons: dict[int, list[tuple[int, int, int]]] = {it[0]: [] for it in items}
    for n, (j, _, placed) in enumerate(order):
        for i, _, members in order[n + 1:]:
            for so, fo, lo_, ko in placed:
                for sm, fm, lm, km in members:
                    if fo <= lm and fm <= lo_:
                        cons[i].append((j, *pair_interval(km, 0, sm, fm, lm, ko, 0, so, fo, lo_, shifts)))
    out_slot = 0 if out is None or out is in_item else next(i for i, _, m in items if m is out)
    bases = [0] * (len(seq) + 1)
    static = set()
    top = 0
    for i, ext, _ in order:
        if i and i != out_slot and all(j in static for j, _, _ in cons[i]):
            static.add(i)
            c = cons[i]
            bases[i] = b = lowest_free_base([(bases[j] + c1, bases[j] + c2) for j, c1, c2 in c]) if c else 0
            top = max(top, b + ext)
    known = static | {0}
    follow = []
    for i, ext, _ in order:
        if i and i != out_slot and i not in static and all(j in known for j, _, _ in cons[i]):
            known.add(i)
            follow.append((i, ext, tuple(cons[i])))
    dynamic = tuple((i, ext, tuple(cons[i])) for i, ext, _ in items if i and i not in known)
    out_pos = next((k for k, d in enumerate(dynamic) if d[0] == out_slot), -1) if out_slot else -1
    return _Part(tuple(bases), dynamic, tuple(follow), {}, tuple(cons[0]) if in_item is not None else (), out_pos,
                 top, lb, ob, size, bool(shifts))


def _place_follow(part: _Part, pb: list[int]) -> int:
    """Place `part`'s follow items, its input placed in pb[0]; the highest byte they take."""
    res = part.placed.get(pb[0])
    if res is None:
        top = 0
        done = []
        for slot, ext, cons in part.follow:
            b = lowest_free_base([(pb[j] + c1, pb[j] + c2) for j, c1, c2 in cons]) if cons else 0
            pb[slot] = b
            done.append((slot, b))
            top = max(top, b + ext)
        if len(part.placed) >= 256:  # a few input bases recur; bounded all the same
            part.placed.clear()
        part.placed[pb[0]] = res = (tuple(done), top)
        return top
    for slot, b in res[0]:
        pb[slot] = b
    return res[1]


@functools.lru_cache(maxsize=1 << 10)
def _stem(r: int, cin: int, c: int, kernel: int, stride: int, a: int) -> _Part:
    seq: list = []
    bufs = _Buffers()
    _, x_item, h, lb, ob = _stem_part(seq, bufs, r, cin, c, kernel, stride, a, True)
    return _part(seq, bufs, None, x_item, lb, ob, h)


@functools.lru_cache(maxsize=1 << 14)  # a few KiB each; a search meets a few hundred per space
def _block_constraints(h: int, cin: int, mid: int, cout: int, k: int, stride: int, expand: bool,
                       residual: bool, a: int) -> Optional[_Part]:
    seq: list = []
    bufs = _Buffers()
    x = bufs.new(_round(h * h * cin, a), -1, -1)  # the input, made before the block
    x_item = [x]
    part = _block_part(seq, bufs, x, x_item, 0, h, cin, mid, cout, k, stride, expand, residual, a, True)
    if part is None:
        return None
    _, out, _, ho, peak, peak_ov = part
    return _part(seq, bufs, x_item, out, peak, peak_ov, ho)


@functools.lru_cache(maxsize=1 << 12)
def _tail(h: int, c: int, fm: Optional[tuple[int, int, int]], num_classes: int, a: int) -> _Part:
    seq: list = []
    bufs = _Buffers()
    x = bufs.new(_round(h * h * c, a), -1, -1)
    lb, ob = _tail_part(seq, bufs, x, 0, h, c, fm, num_classes, a, True)
    return _part(seq, bufs, [x], None, lb, ob, 0)


def _parts(spec: NetworkSpec, a: int) -> Optional[list[_Part]]:
    """The network's parts with the overlap shifts, None for a shape the replay does not model."""
    stem = spec.first_conv
    part = _stem(spec.resolution, spec.in_channels, stem.out_channels, stem.kernel, stem.stride, a)
    parts = [part]
    h = part.size
    for b in spec.blocks:
        block = _block_constraints(h, b.in_channels, b.mid_channels, b.out_channels, b.kernel_size, b.stride,
                                   b.has_expansion, b.residual, a)
        if block is None:
            return None
        parts.append(block)
        h = block.size
    parts.append(_tail(h, spec.last_block_channels, _feature_mix(spec), spec.num_classes, a))
    return parts


def _greedy_fits(parts: list[_Part], cap: int) -> bool:
    """Whether the planner's ``place_greedy`` with the overlap shifts keeps every item of the
    network made of `parts` inside `cap` bytes (see _Part)."""
    if any(part.static_top > cap for part in parts):
        return False
    entries: list[tuple[int, int, tuple[tuple[int, int, int], ...]]] = []
    slots: list[list[int]] = []  # per entry, the bases of its part
    # per entry of a group other parts read: (their bases, the part)
    readers: dict[int, list[tuple[list[int], _Part]]] = {}
    x = -1  # the entry of the current input's group
    for part in parts:
        pb = list(part.bases)
        if x >= 0:
            readers.setdefault(x, []).append((pb, part))
        if part.out >= 0:
            x = len(entries) + part.out
        entries.extend(part.dynamic)
        slots.extend([pb] * len(part.dynamic))
    read: list[Optional[list[tuple[list[int], _Part]]]] = [None] * len(entries)
    for k, r in readers.items():
        read[k] = r
    bits = len(entries).bit_length()
    mask = (1 << bits) - 1
    for key in sorted([(-e[1] << bits) | k for k, e in enumerate(entries)]):
        k = key & mask
        slot, ext, cons = entries[k]
        pb = slots[k]
        ivs = [(pb[j] + c1, pb[j] + c2) for j, c1, c2 in cons]
        later = read[k]
        if later:
            for pq, reader in later:
                ivs.extend([(pq[j] + c1, pq[j] + c2) for j, c1, c2 in reader.in_cons])
        b = lowest_free_base(ivs) if ivs else 0
        if b + ext > cap:
            return False
        pb[slot] = b
        if later:
            for pq, reader in later:
                pq[0] = b  # the input's slot of the parts that read it
                if reader.follow and _place_follow(reader, pq) > cap:
                    return False
    return True


def _two_ended_fits(seq: list, cap: int) -> bool:
    """Whether the planner's ``_place_two_ended`` keeps every item of `seq` inside `cap`
    bytes: each item at the lowest base clear of the live buffers whose lifetimes meet its
    members', moved to the top end (cap - extent) when it is not at 0 and the top is clear."""
    live: list[tuple[int, int, int, int]] = []  # (lo, hi, first, last) of placed buffers
    step = -1
    for s, ext, members in seq:
        if s != step:
            step = s
            live = [buf for buf in live if buf[3] >= s]
        # forbidden open intervals of the base: (lo - size, hi) for a conflicting member of
        # that size; with every member at offset 0 the largest conflicting one covers the rest
        ivs = []
        if len(members) == 1:
            _, f, last, _ = members[0]
            for lo, hi, bf, _ in live:
                if bf <= last:  # buffers in `live` are alive at s <= f
                    ivs.append((lo - ext, hi))
        else:
            for lo, hi, bf, bl in live:
                m = 0
                for sz, f, last, _ in members:
                    if f <= bl and bf <= last and sz > m:
                        m = sz
                if m:
                    ivs.append((lo - m, hi))
        b = 0
        if ivs:
            ivs.sort()
            for lo, hi in ivs:
                if lo >= b:
                    break
                if hi > b:
                    b = hi
            if b and ext <= cap:
                top = cap - ext
                for lo, hi in ivs:
                    if lo < top < hi:
                        break
                else:
                    b = top
        if b + ext > cap:
            return False
        for sz, f, last, _ in members:
            live.append((b, b + sz, f, last))
    return True


def chain_memory(spec: NetworkSpec, alignment: int = 4, overlap: bool = True) -> Optional[tuple[int, int]]:
    """(arena bytes, lower bound bytes) of ``plan_memory(network_to_graph(spec),
    overlap=overlap)``, or None when the replayed strategy misses its bound (then only the
    full planner knows the arena).

    Without overlap the planner's first strategy, two_ended, is replayed against the lower
    bound. With overlap the planner places with the shifts against the overlap bound
    (plan._place), and no placement can go below that bound: if its greedy_by_size strategy
    reaches it, the arena is the bound whatever the strategies before it gave."""
    if overlap:
        parts = _parts(spec, alignment)
        if parts is None:
            return None
        if any(part.shifted for part in parts):
            lb = max(part.lower_bound for part in parts)
            ob = max(part.overlap_bound for part in parts)
            return (ob, lb) if _greedy_fits(parts, ob) else None
    laid = _layout(spec, alignment, overlap)
    if laid is None:
        return None
    seq, lb, _, _ = laid
    if not _two_ended_fits(seq, lb):
        return None
    return lb, lb
