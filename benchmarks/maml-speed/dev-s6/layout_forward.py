import time, torch
from fastadapt.bench.maml_speed import MAMLSpeedConfig, _Problem, _ce
from fastadapt.ops import functional as F
torch.set_num_threads(1)
cfg = MAMLSpeedConfig()
prob = _Problem(cfg, 8, 0)
m = prob.fast
p = F.params_of(m)
l = _ce(torch.func.functional_call(m, p, (prob.sx[0],)), prob.sy[0])
gs = torch.autograd.grad(l, list(p.values()), create_graph=True)
newd = {k: (v - 0.4*g).detach() for (k,v),g in zip(p.items(), gs)}
x = prob.qx[0]
w0 = "body.body.0.weight"
v1 = dict(newd); v1[w0] = newd[w0].clone(memory_format=torch.contiguous_format)
v2 = dict(newd); v2[w0] = torch.empty_strided(p[w0].shape, p[w0].stride()).copy_(newd[w0])
v3 = dict(p); v3[w0] = newd[w0]
fns = {"params": p, "newd": newd, "newd_w0_contig": v1, "newd_w0_paramstride": v2, "params_w0_new": v3}
best = {k: [] for k in fns}
for r in range(30):
    for k, d in fns.items():
        t0 = time.perf_counter(); torch.func.functional_call(m, d, (x,)); best[k].append(time.perf_counter()-t0)
import statistics
print({k: (round(min(v)*1000,1), round(statistics.median(v)*1000,1)) for k,v in best.items()})
