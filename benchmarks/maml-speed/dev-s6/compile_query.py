import time, torch, statistics, sys
from fastadapt.bench.maml_speed import MAMLSpeedConfig, _Problem, _ce
from fastadapt.ops import functional as F
torch.set_num_threads(1)
B = int(sys.argv[1]) if len(sys.argv) > 1 else 4
prob = _Problem(MAMLSpeedConfig(), B, 0)
m = prob.fast
def qloss(params, x, y):
    return _ce(torch.func.functional_call(m, params, (x,)), y)
cq = torch.compile(qloss, dynamic=False)
def step_compiled():
    p = F.params_of(m)
    adapted = F.adapt(m, p, prob.sx, prob.sy, _ce, 1, 0.4, mode="loop")
    total = 0
    for i in range(B):
        pi = F._module_layout(m, {k: v[i] for k, v in adapted.items()})
        total = total + cq(pi, prob.qx[i], prob.qy[i])
    prob.opt_fast.zero_grad(set_to_none=True)
    (total / B).backward()
    prob.opt_fast.step()
t0 = time.perf_counter(); step_compiled(); print("first (compile) %.1f s" % (time.perf_counter() - t0))
jobs = {"eager": lambda: prob.step("fastadapt"), "compiled": step_compiled, "higher": lambda: prob.step("higher")}
for f in jobs.values(): f()
ts = {k: [] for k in jobs}
for r in range(7):
    for k, f in jobs.items():
        t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter()-t0)
med = {k: statistics.median(v) for k, v in ts.items()}
print(B, {k: round(v, 3) for k, v in med.items()}, "higher/eager %.2f higher/compiled %.2f" % (med["higher"]/med["eager"], med["higher"]/med["compiled"]))
