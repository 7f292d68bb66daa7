"""The n-body workload's GPU kernel (Triton): each program integrates BLOCK independent
three-body systems for `n_steps` velocity-Verlet steps with the whole state in registers,
so the device's floating-point units, not its memory, set the pace. One source for fp32
and fp64: the dtype of the state decides. Imported only where Triton and a GPU exist
(or under TRITON_INTERPRET=1 on the CPU, for checking).

State layout (structure of arrays, N systems): S[k * N + i], k = 0..8 the positions
(body b, axis c at k = 3b + c), k = 9..17 the velocities; P = [dt, eps^2] in the state's
dtype (a Python float would reach the kernel as fp32).
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl


@triton.jit
def _pair(xi, yi, zi, xj, yj, zj, eps2):
    dx = xj - xi
    dy = yj - yi
    dz = zj - zi
    r2 = dx * dx + dy * dy + dz * dz + eps2
    inv = 1.0 / tl.sqrt(r2)
    inv3 = inv * inv * inv
    return dx * inv3, dy * inv3, dz * inv3


@triton.jit
def _accel(x0, y0, z0, x1, y1, z1, x2, y2, z2, eps2):
    fx01, fy01, fz01 = _pair(x0, y0, z0, x1, y1, z1, eps2)
    fx02, fy02, fz02 = _pair(x0, y0, z0, x2, y2, z2, eps2)
    fx12, fy12, fz12 = _pair(x1, y1, z1, x2, y2, z2, eps2)
    return (
        fx01 + fx02,
        fy01 + fy02,
        fz01 + fz02,
        fx12 - fx01,
        fy12 - fy01,
        fz12 - fz01,
        -(fx02 + fx12),
        -(fy02 + fy12),
        -(fz02 + fz12),
    )


@triton.jit
def kdk_kernel(S, P, N, n_steps, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    dt = tl.load(P)
    eps2 = tl.load(P + 1)
    half = dt * 0.5
    x0 = tl.load(S + 0 * N + offs, mask=m, other=0.0)
    y0 = tl.load(S + 1 * N + offs, mask=m, other=0.0)
    z0 = tl.load(S + 2 * N + offs, mask=m, other=0.0)
    x1 = tl.load(S + 3 * N + offs, mask=m, other=0.0)
    y1 = tl.load(S + 4 * N + offs, mask=m, other=0.0)
    z1 = tl.load(S + 5 * N + offs, mask=m, other=0.0)
    x2 = tl.load(S + 6 * N + offs, mask=m, other=0.0)
    y2 = tl.load(S + 7 * N + offs, mask=m, other=0.0)
    z2 = tl.load(S + 8 * N + offs, mask=m, other=0.0)
    u0 = tl.load(S + 9 * N + offs, mask=m, other=0.0)
    v0 = tl.load(S + 10 * N + offs, mask=m, other=0.0)
    w0 = tl.load(S + 11 * N + offs, mask=m, other=0.0)
    u1 = tl.load(S + 12 * N + offs, mask=m, other=0.0)
    v1 = tl.load(S + 13 * N + offs, mask=m, other=0.0)
    w1 = tl.load(S + 14 * N + offs, mask=m, other=0.0)
    u2 = tl.load(S + 15 * N + offs, mask=m, other=0.0)
    v2 = tl.load(S + 16 * N + offs, mask=m, other=0.0)
    w2 = tl.load(S + 17 * N + offs, mask=m, other=0.0)
    ax0, ay0, az0, ax1, ay1, az1, ax2, ay2, az2 = _accel(x0, y0, z0, x1, y1, z1, x2, y2, z2, eps2)
    for _ in tl.range(0, n_steps):
        # kick (half step), drift (full step), new accelerations, kick (half step)
        u0 += half * ax0
        v0 += half * ay0
        w0 += half * az0
        u1 += half * ax1
        v1 += half * ay1
        w1 += half * az1
        u2 += half * ax2
        v2 += half * ay2
        w2 += half * az2
        x0 += dt * u0
        y0 += dt * v0
        z0 += dt * w0
        x1 += dt * u1
        y1 += dt * v1
        z1 += dt * w1
        x2 += dt * u2
        y2 += dt * v2
        z2 += dt * w2
        ax0, ay0, az0, ax1, ay1, az1, ax2, ay2, az2 = _accel(
            x0, y0, z0, x1, y1, z1, x2, y2, z2, eps2
        )
        u0 += half * ax0
        v0 += half * ay0
        w0 += half * az0
        u1 += half * ax1
        v1 += half * ay1
        w1 += half * az1
        u2 += half * ax2
        v2 += half * ay2
        w2 += half * az2
    tl.store(S + 0 * N + offs, x0, mask=m)
    tl.store(S + 1 * N + offs, y0, mask=m)
    tl.store(S + 2 * N + offs, z0, mask=m)
    tl.store(S + 3 * N + offs, x1, mask=m)
    tl.store(S + 4 * N + offs, y1, mask=m)
    tl.store(S + 5 * N + offs, z1, mask=m)
    tl.store(S + 6 * N + offs, x2, mask=m)
    tl.store(S + 7 * N + offs, y2, mask=m)
    tl.store(S + 8 * N + offs, z2, mask=m)
    tl.store(S + 9 * N + offs, u0, mask=m)
    tl.store(S + 10 * N + offs, v0, mask=m)
    tl.store(S + 11 * N + offs, w0, mask=m)
    tl.store(S + 12 * N + offs, u1, mask=m)
    tl.store(S + 13 * N + offs, v1, mask=m)
    tl.store(S + 14 * N + offs, w1, mask=m)
    tl.store(S + 15 * N + offs, u2, mask=m)
    tl.store(S + 16 * N + offs, v2, mask=m)
    tl.store(S + 17 * N + offs, w2, mask=m)


def integrate(state: Any, params: Any, n_steps: int, block: int = 128) -> None:
    """Advance `state` (18, N), contiguous, in place by `n_steps` steps."""
    n = state.shape[1]
    grid = (triton.cdiv(n, block),)
    kdk_kernel[grid](state, params, n, n_steps, BLOCK=block)
