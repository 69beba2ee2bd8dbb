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
3. **Placement**: the planner tries its ``two_ended`` strategy first and stops there when it
   reaches the lower bound. That strategy is replayed here on the same buffers, in the same
   order, with the same tie-breaks. If it reaches the bound, the bound is the arena (no
   placement can be smaller and the planner keeps the first strategy that reaches it);
   if not, :func:`chain_memory` returns None and the caller runs the full planner, whose other
   strategies and no-in-place fallback decide.

It lives in ``nas`` because it reads a NetworkSpec, which the converter must not import (the
dependencies point nas -> tflite_converter). tests/test_fast_oracle.py checks it against the
full planner on hundreds of candidates and the published networks; a change to the planner's
in-place rules or to ``two_ended`` must be made here too, and that test says so when missed.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

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


def _layout(spec: NetworkSpec, a: int, overlap: bool = False) -> Optional[tuple[list, int, int, dict]]:
    """The items to place in the planner's order, (step, extent, members), the lower bound,
    the overlap bound (the lower bound with every shift used to the full; the lower bound
    itself without `overlap`) and the shifts; None for a shape the replay does not model."""
    r, cin = spec.resolution, spec.in_channels
    stem = spec.first_conv
    h = -(-r // stem.stride)
    c = stem.out_channels
    si, s0 = _round(r * r * cin, a), _round(h * h * c, a)
    k0 = _conv_scratch(stem.kernel, cin, r * r * cin, h * h * c, a)
    # the stem writes over the graph input, which dies at it (plan_memory's overwrite_inputs)
    d0 = _shift(r, cin, h, c, stem.kernel, stem.stride, s0, a) if overlap else None
    lb, ob = si + s0 + k0, _union(si, s0, d0) + k0
    bufs = _Buffers()
    image = bufs.new(si, 0, 0)
    x = bufs.new(s0, 0, 0)  # the current activation's buffer; readers set its last step
    bufs.shift(image, x, d0)
    x_item = [x]  # the members of its group (a depthwise output may join)
    first = [(si, [image]), (s0, x_item)]
    if k0:
        first.append((k0, [[k0, 0, 0, -1]]))
    first.sort(key=lambda it: -it[0])  # stable: input, stem output, scratch on ties
    seq: list = [(0, ext, members) for ext, members in first]
    s = 1
    for b in spec.blocks:
        sx, se, sd, sp, ke, kd, kp, inplace, peak, ho, peak_ov, de, dp = _block(
            h, b.in_channels, b.mid_channels, b.out_channels, b.kernel_size, b.stride,
            b.has_expansion, b.residual, a, overlap)
        lb, ob = max(lb, peak), max(ob, peak_ov)
        x[2] = s  # read by the expansion or the depthwise conv
        if b.has_expansion:
            e = bufs.new(se, s, s + 1)
            bufs.shift(x, e, de)
            e_item = [e]
            _put(seq, s, (se, e_item), ke)
            s += 1
            if inplace:
                if sd > se:  # a member wider than the group it joins: not modelled (a
                    return None  # depthwise output is never larger than its input)
                if sd == se:
                    e[2] = s + 1  # same bytes, one buffer from expansion to projection
                    d = e
                else:
                    d = bufs.new(sd, s, s + 1)
                    e_item.append(d)
                _put(seq, s, None, kd)
            else:
                d = bufs.new(sd, s, s + 1)
                _put(seq, s, (sd, [d]), kd)
        elif inplace:  # written over the block input, which joins nothing after this
            if sd > sx:  # as above
                return None
            if sd == sx:
                x[2] = s + 1
                d = x
            else:
                d = bufs.new(sd, s, s + 1)
                x_item.append(d)
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
        if b.residual:
            # the ADD writes over the block input: the sum continues that buffer
            p[2] = x[2] = s
            s += 1
        else:
            x, x_item = p, p_item
        h = ho
    c = spec.last_block_channels
    fm = spec.feature_mix
    if fm is not None:
        x[2] = s
        ho = -(-h // fm.stride)
        sf = _round(ho * ho * fm.out_channels, a)
        kf = _conv_scratch(fm.kernel, c, h * h * c, ho * ho * fm.out_channels, a)
        df = _shift(h, c, ho, fm.out_channels, fm.kernel, fm.stride, sf, a) if overlap else None
        lb, ob = max(lb, x[0] + sf + kf), max(ob, _union(x[0], sf, df) + kf)
        f = bufs.new(sf, s, s)
        bufs.shift(x, f, df)
        _put(seq, s, (sf, [f]), kf)  # no depthwise conv follows: nothing joins it
        s += 1
        x, h, c = f, ho, fm.out_channels
    x[2] = s  # MEAN
    sm = _round(c, a)
    sy = _round(spec.num_classes, a)
    lb, ob = max(lb, x[0] + sm, sm + sy), max(ob, x[0] + sm, sm + sy)
    seq.append((s, sm, [bufs.new(sm, s, s + 1)]))
    seq.append((s + 1, sy, [bufs.new(sy, s + 1, s + 1)]))  # the graph output lives to the end
    return seq, lb, ob, bufs.shifts


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


def _greedy_fits(seq: list, shifts: dict[tuple[int, int], int], cap: int) -> bool:
    """Whether the planner's ``place_greedy`` with these overlap shifts keeps every item of
    `seq` inside `cap` bytes: items largest first (ties: earlier first step, then earlier
    item), each at the lowest base clear of the placed buffers whose lifetimes meet its
    members' -- clear except as a shift allows where one is the other's input dying as it is
    born (placement.pair_interval, the planner's own rule). Placed buffers are kept per step they live, so an item
    meets only the few buffers of its own steps (each once: at its first step or the item's)."""
    order = sorted(range(len(seq)), key=lambda i: (-seq[i][1], seq[i][0], i))
    by_step: list[list[tuple[int, int, int, int, int]]] = [[] for _ in range(seq[-1][0] + 2)]
    for i in order:
        step, ext, members = seq[i]
        ivs = []
        for t in range(step, max(m[2] for m in members) + 1):
            for lo, hi, bf, bl, bk in by_step[t]:
                if t != step and bf != t:
                    continue
                for sz, f, last, key in members:
                    if bf > last or f > bl:
                        continue
                    if bl == f or last == bf:  # one may be the other's shifted output
                        ivs.append(pair_interval(key, 0, sz, f, last, bk, lo, hi - lo, bf, bl, shifts))
                    else:
                        ivs.append((lo - sz, hi))
        b = lowest_free_base(ivs) if ivs else 0
        if b + ext > cap:
            return False
        for sz, f, last, key in members:
            buf = (b, b + sz, f, last, key)
            for t in range(f, last + 1):
                by_step[t].append(buf)
    return True


def chain_memory(spec: NetworkSpec, alignment: int = 4, overlap: bool = True) -> Optional[tuple[int, int]]:
    """(arena bytes, lower bound bytes) of ``plan_memory(network_to_graph(spec),
    overlap=overlap)``, or None when the replayed strategy misses its bound (then only the
    full planner knows the arena).

    Without overlap the planner's first strategy, two_ended, is replayed against the lower
    bound. With overlap the planner places with the shifts against the overlap bound
    (plan._place), and no placement can go below that bound: if its greedy_by_size strategy
    reaches it, the arena is the bound whatever the strategies before it gave."""
    laid = _layout(spec, alignment, overlap)
    if laid is None:
        return None
    seq, lb, ob, shifts = laid
    if shifts:
        return (ob, lb) if _greedy_fits(seq, shifts, ob) else None
    if not _two_ended_fits(seq, lb):
        return None
    return lb, lb
