#!/usr/bin/python3
"""Attention alone at DETR's shapes on a GPU, with that machine's PyTorch.

The GPU counterpart of attention_bench (issue 5): batch 1, 8 heads, head
width 32, the same shapes and types. `softmax` runs on PyTorch's fused
scaled-dot-product attention (FlashAttention / memory-efficient kernels,
PyTorch >= 2.0); `softmax_unfused` is matmul, softmax, matmul;
`optimization` is the spec's Woodbury form exactly as the model's
differentiable path computes it (optimization_attention.cc: G factored once
per head, K unrolled steps over all rows at once), which is what the C++
model runs on a GPU; `linear` (elu + 1 features) and `pooling` (mean of the
values) are the reviewers' baselines as the model computes them. Prints time, GFLOP/s (the spec's flop counts: softmax
4*n*m*dh, optimization (4K+4)*n*m*dh per head; linear 2*(n+m)*dh^2 + 2*n*dh;
pooling m*dh), peak extra memory (CUDA
allocator peak during the call) and the same run's sgemm GFLOP/s.

    gpu_attention_bench.py [--device cuda] [--json OUT.json] [--quick]

--quick runs one small shape and K=1 only: a smoke test that runs anywhere
(CTest runs it on the CPU, where memory is not measured).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

HEADS, HEAD_DIM = 8, 32
SHAPES = [  # (site, n, m, self-attention)
    ("encoder.self/400", 400, 400, True),
    ("encoder.self/850", 850, 850, True),
    ("encoder.self/1400", 1400, 1400, True),
    ("decoder.cross/100x850", 100, 850, False),
    ("decoder.self/100", 100, 100, True),
]
ITERATIONS = (1, 3, 5, 10)
LAMBDA, RHO, POWER, EPS = 0.05, 1.0, 5.0, 1e-6


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device, call, min_time):
    """Median seconds per call and peak extra bytes of one call."""
    call()  # warm-up (kernel selection, allocator)
    synchronize(device)
    peak = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated() - base
    times = []
    start_all = time.perf_counter()
    while time.perf_counter() - start_all < min_time or len(times) < 3:
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], peak


def softmax_fused(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # PyTorch >= 2.0
        return F.scaled_dot_product_attention(q, k, v)
    return softmax_unfused(q, k, v)


def softmax_unfused(q, k, v):
    scores = torch.matmul(q, k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return torch.matmul(scores.softmax(-1), v)


def unit_rows(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def optimization(q, d, v, iterations, exclude_self):
    """The spec's method, as optimization_attention.cc's differentiable path."""
    q, d = unit_rows(q), unit_rows(d)
    n, m = q.shape[-2], d.shape[-2]
    allowed = torch.ones(n, m, device=q.device, dtype=q.dtype)
    if exclude_self:
        allowed.fill_diagonal_(0)
    dict_t = d.transpose(-1, -2)
    gram = dict_t @ d + RHO * torch.eye(d.shape[-1], device=d.device, dtype=d.dtype)
    solve_t = torch.cholesky_solve(dict_t, torch.linalg.cholesky(gram))
    t = LAMBDA / RHO

    def threshold(x):
        return x.sign() * (x.abs() - t).relu()

    a = q @ solve_t
    z = threshold(a) * allowed
    u = a - z
    for _ in range(1, iterations):
        w = z - u
        a = w + (q - w @ d) @ solve_t
        z = threshold(a + u) * allowed
        u = u + a - z
    weights = z.relu().pow(POWER)
    weights = weights / (weights.sum(-1, keepdim=True) + EPS)
    return weights @ v


def linear(q, k, v):
    """Kernelised linear attention, as LinearAttention in multihead_attention.cc."""
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    state = phi_k.transpose(-1, -2) @ v
    normaliser = phi_q @ phi_k.sum(-2).unsqueeze(-1)
    return (phi_q @ state) / normaliser.clamp_min(1e-6)


def pooling(n, v):
    return v.mean(-2, keepdim=True).expand(-1, -1, n, -1)


def sgemm_gflops(device, size, min_time):
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds, _ = measure(device, lambda: a @ b, min_time)
    return 2.0 * size ** 3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per row")
    parser.add_argument("--quick", action="store_true", help="one small shape, K=1: a smoke test")
    args = parser.parse_args()
    device = torch.device(args.device)
    shapes = [SHAPES[-1]] if args.quick else SHAPES
    iterations = (1,) if args.quick else ITERATIONS
    min_time = 0.05 if args.quick else args.min_time
    torch.set_grad_enabled(False)
    torch.manual_seed(0)

    sgemm_size = 256 if args.quick else (8192 if device.type == "cuda" else 1024)
    rows = [{"name": f"sgemm/{sgemm_size}", "gflops": sgemm_gflops(device, sgemm_size, min_time)}]
    fused = "fused scaled_dot_product_attention" if hasattr(F, "scaled_dot_product_attention") else "unfused (PyTorch < 2.0)"
    print(f"== torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f"; softmax: {fused}")
    print(f"{rows[0]['name']:<42} {rows[0]['gflops']:9.1f} GFLOP/s")
    for site, n, m, is_self in shapes:
        q = torch.randn(1, HEADS, n, HEAD_DIM, device=device)
        k = q if is_self else torch.randn(1, HEADS, m, HEAD_DIM, device=device)
        v = torch.randn(1, HEADS, m, HEAD_DIM, device=device)
        # flops per call, as a function of (n, m)
        calls = [("softmax", lambda: softmax_fused(q, k, v), 4.0 * n * m * HEAD_DIM),
                 ("softmax_unfused", lambda: softmax_unfused(q, k, v), 4.0 * n * m * HEAD_DIM),
                 ("linear", lambda: linear(q, k, v), 2.0 * (n + m) * HEAD_DIM ** 2 + 2.0 * n * HEAD_DIM),
                 ("pooling", lambda: pooling(n, v), 1.0 * m * HEAD_DIM)]
        for count in iterations:
            calls.append((f"optimization_K{count}",
                          lambda count=count: optimization(q, k, v, count, is_self),
                          (4.0 * count + 4) * n * m * HEAD_DIM))
        for kind, call, flops_per_head in calls:
            seconds, peak = measure(device, call, min_time)
            flops = flops_per_head * HEADS
            row = {"name": f"{kind}/{site}", "ms": seconds * 1e3, "gflops": flops / seconds / 1e9,
                   "peak_extra_MB": peak / 1e6}
            rows.append(row)
            print(f"{row['name']:<42} {row['ms']:9.3f} ms {row['gflops']:9.1f} GFLOP/s {row['peak_extra_MB']:9.2f} MB")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"torch": torch.__version__, "device": str(device), "softmax": fused, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
