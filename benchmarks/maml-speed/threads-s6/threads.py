# Exploratory: 2 torch threads allowed. higher (intra-op 2 threads) vs fastadapt loop (intra-op 2 threads)
# vs fastadapt split over 2 Python threads (1 intra-op thread each, per-chunk autograd.grad, grads summed).
# Usage: .venv/bin/python benchmarks/maml-speed/threads-s6/threads.py META_BATCH REPEATS  (output-B32.txt: "32 3")
import sys, time, statistics, threading
import torch
from fastadapt.bench.maml_speed import MAMLSpeedConfig, _Problem, _ce
from fastadapt.ops import functional as F
B = int(sys.argv[1]); reps = int(sys.argv[2])
prob = _Problem(MAMLSpeedConfig(), B, 0)
m = prob.fast
names = [n for n, _ in m.named_parameters()]
import copy
replicas = [copy.deepcopy(m), copy.deepcopy(m)]  # functional_call swaps module attributes: one module per thread
def chunk_grads(lo, hi, out, idx):
    p = F.params_of(m)
    r = replicas[idx]
    adapted = F.adapt(r, p, prob.sx[lo:hi], prob.sy[lo:hi], _ce, 1, 0.4, mode="loop")
    logits = F.forward_batched(r, adapted, prob.qx[lo:hi], mode="loop")
    loss = _ce(logits.flatten(0, 1), prob.qy[lo:hi].flatten()) * (hi - lo) / B
    out[idx] = torch.autograd.grad(loss, [p[n] for n in names])
def step_threads():
    torch.set_num_threads(1)
    out = [None, None]
    h = B // 2
    ts = [threading.Thread(target=chunk_grads, args=(0, h, out, 0)), threading.Thread(target=chunk_grads, args=(h, B, out, 1))]
    for t in ts: t.start()
    for t in ts: t.join()
    prob.opt_fast.zero_grad(set_to_none=True)
    for (n, q), a, b in zip(m.named_parameters(), out[0], out[1]):
        q.grad = a + b
    prob.opt_fast.step()
def intra(fn):
    def run():
        torch.set_num_threads(2); fn()
    return run
def one_thread(fn):
    def run():
        torch.set_num_threads(1); fn()
    return run
jobs = {"higher_2t": intra(lambda: prob.step("higher")), "fastadapt_2t_intra": intra(lambda: prob.step("fastadapt")),
        "fastadapt_2_task_threads": step_threads, "higher_1t": one_thread(lambda: prob.step("higher")),
        "fastadapt_1t": one_thread(lambda: prob.step("fastadapt"))}
# correctness: task-thread grads == single-call grads (float32, loose)
prob.step("fastadapt"); torch.set_num_threads(1)
p0 = [q.detach().clone() for q in m.parameters()]
prob.grad_fastadapt(); g_ref = [q.grad.clone() for q in m.parameters()]
out = [None, None]; chunk_grads(0, B // 2, out, 0); chunk_grads(B // 2, B, out, 1)
err = max(float((a + b - g).abs().max() / (g.abs().max() + 1e-12)) for a, b, g in zip(out[0], out[1], g_ref))
print("chunked grads vs one call: max rel err %.2e" % err)
for f in jobs.values(): f()
ts = {k: [] for k in jobs}
for r in range(reps):
    for k, f in jobs.items():
        t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t0)
med = {k: statistics.median(v) for k, v in ts.items()}
print("B", B, {k: round(1 / v, 4) for k, v in med.items()}, "it/s")
print("vs higher_2t:", {k: round(med["higher_2t"] / v, 2) for k, v in med.items()})
