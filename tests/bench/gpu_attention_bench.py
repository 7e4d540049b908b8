#!/usr/bin/python3
"""Attention alone at DETR's shapes on a GPU, with that machine's PyTorch.

The GPU counterpart of attention_bench (issue 5): batch 1, 8 heads, head
width 32, the same shapes. On a GPU every tensor is bf16 (--dtype), because
FlashAttention runs only in fp16/bf16: `softmax` is PyTorch's
scaled_dot_product_attention restricted to its flash kernel, so that a row
either ran FlashAttention or fails; where this PyTorch or device has no flash
kernel the bench says why and runs the memory-efficient one, then the math
one, naming the kernel in every row (`softmax_kernel`). `softmax_unfused` is
matmul, softmax, matmul;
`optimization` is the spec's Woodbury form exactly as the model's
differentiable path computes it (optimization_attention.cc: G factored once
per head, K unrolled steps over all rows at once), which is what the C++
model runs on a GPU; `linear` (elu + 1 features) and `pooling` (mean of the
values) are the reviewers' baselines as the model computes them. Prints time, GFLOP/s (the spec's flop counts: softmax
4*n*m*dh, optimization (4K+4)*n*m*dh per head; linear 2*(n+m)*dh^2 + 2*n*dh;
pooling m*dh), peak extra memory (CUDA
allocator peak during the call) and the same run's sgemm GFLOP/s.

    gpu_attention_bench.py [--device cuda] [--dtype bf16|fp16|fp32] [--out results/gpu_attention.jsonl] [--quick]

Each run appends one record (rows, PyTorch, device, dtype, the softmax
kernel, commit, date, machine, command) to --out.

--quick runs one small shape and K=1 only: a smoke test that runs anywhere
(CTest runs it on the CPU, where memory is not measured).
"""
import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
from records import provenance, write_record  # noqa: E402

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


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def sdpa_only(kernel):
    """A context that lets scaled_dot_product_attention use `kernel` alone (flash, efficient, math)."""
    try:  # PyTorch >= 2.3
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                   "math": SDPBackend.MATH}[kernel]
        return sdpa_kernel(backend)
    except ImportError:  # PyTorch 2.0 - 2.2
        return torch.backends.cuda.sdp_kernel(enable_flash=kernel == "flash",
                                              enable_mem_efficient=kernel == "efficient",
                                              enable_math=kernel == "math")


def softmax_kernel(device, q, k, v):
    """The fastest SDPA kernel that runs these tensors, and why faster ones did not: (kernel, notes)."""
    if not hasattr(F, "scaled_dot_product_attention"):
        return "unfused", [f"PyTorch {torch.__version__} has no scaled_dot_product_attention"]
    if device.type != "cuda":
        return "default", ["not a CUDA device: PyTorch picks its CPU kernel"]
    notes = []
    for kernel in ("flash", "efficient", "math"):
        try:
            with sdpa_only(kernel):
                F.scaled_dot_product_attention(q, k, v)
            synchronize(device)
            return kernel, notes
        except RuntimeError as e:
            notes.append(f"{kernel} did not run: {str(e).splitlines()[0][:200]}")
    raise SystemExit("no scaled_dot_product_attention kernel ran: " + "; ".join(notes))


def softmax_fused(kernel, q, k, v):
    if kernel == "unfused":
        return softmax_unfused(q, k, v)
    with sdpa_only(kernel) if kernel != "default" else contextlib.nullcontext():
        return F.scaled_dot_product_attention(q, k, v)


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
    # The head-width Cholesky solve once per head in float32 (no bf16/fp16
    # Cholesky); every n x m product runs in the tensors' own precision.
    gram = dict_t.float() @ d.float() + RHO * torch.eye(d.shape[-1], device=d.device)
    solve_t = torch.cholesky_solve(dict_t.float(), torch.linalg.cholesky(gram)).to(q.dtype)
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


def gemm_gflops(device, dtype, size, min_time):
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds, _ = measure(device, lambda: a @ b, min_time)
    return 2.0 * size ** 3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="bf16 on a GPU, fp32 on the CPU unless given")
    parser.add_argument("--out", default="", help="append the run's record here (JSON Lines)")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per row")
    parser.add_argument("--quick", action="store_true", help="one small shape, K=1: a smoke test")
    args = parser.parse_args()
    device = torch.device(args.device)
    shapes = [SHAPES[-1]] if args.quick else SHAPES
    iterations = (1,) if args.quick else ITERATIONS
    min_time = 0.05 if args.quick else args.min_time
    torch.set_grad_enabled(False)
    torch.manual_seed(0)

    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    sgemm_size = 256 if args.quick else (8192 if device.type == "cuda" else 1024)
    rows = [{"name": f"gemm/{sgemm_size}", "gflops": gemm_gflops(device, dtype, sgemm_size, min_time)}]
    print(f"== torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "") + f", {dtype}")
    print(f"{rows[0]['name']:<42} {rows[0]['gflops']:9.1f} GFLOP/s")
    kernels = {}
    for site, n, m, is_self in shapes:
        q = torch.randn(1, HEADS, n, HEAD_DIM, device=device, dtype=dtype)
        k = q if is_self else torch.randn(1, HEADS, m, HEAD_DIM, device=device, dtype=dtype)
        v = torch.randn(1, HEADS, m, HEAD_DIM, device=device, dtype=dtype)
        kernel, notes = softmax_kernel(device, q, k, v)
        kernels[site] = kernel
        print(f"-- {site}: softmax on SDPA kernel '{kernel}'" + "".join(f"\n   {note}" for note in notes))
        # flops per call, as a function of (n, m)
        calls = [("softmax", lambda: softmax_fused(kernel, q, k, v), 4.0 * n * m * HEAD_DIM),
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
            if kind == "softmax":
                row["softmax_kernel"] = kernel
            rows.append(row)
            print(f"{row['name']:<42} {row['ms']:9.3f} ms {row['gflops']:9.1f} GFLOP/s {row['peak_extra_MB']:9.2f} MB")
    if device.type == "cuda" and dtype != torch.float32 and "flash" not in kernels.values():
        print("!! FlashAttention ran for no shape: the softmax rows are not the reviewers' FlashAttention", flush=True)
    record = {"torch": torch.__version__, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "softmax_kernels": kernels, "rows": rows}
    record.update(provenance(sys.argv))
    if args.out:
        write_record(record, args.out)


if __name__ == "__main__":
    main()
