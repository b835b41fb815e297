import time, torch, statistics, sys
from fastadapt.bench.maml_speed import MAMLSpeedConfig, _Problem
torch.set_num_threads(1)
B = int(sys.argv[1]) if len(sys.argv) > 1 else 4
prob = _Problem(MAMLSpeedConfig(), B, 0)
conv1 = prob.fast.body.body[0]
print(type(conv1))
state = {"on": False}
def hook(mod, inp, out):
    return out.contiguous(memory_format=torch.channels_last) if state["on"] else out
conv1.register_forward_hook(hook)
# check formats
fmts = []
hs = [m.register_forward_hook(lambda m, i, o: fmts.append((type(m).__name__, o.is_contiguous(memory_format=torch.channels_last) and not o.is_contiguous()))) for m in prob.fast.body.body]
prob.fast(prob.qx[0]); print("off", fmts); fmts.clear()
state["on"] = True; prob.fast(prob.qx[0]); print("on", fmts); state["on"] = False
for h in hs: h.remove()
def run(on):
    state["on"] = on; prob.step("fastadapt")
jobs = {"cl1_off": lambda: run(False), "cl1_on": lambda: run(True), "higher": lambda: prob.step("higher")}
for f in jobs.values(): f()
ts = {k: [] for k in jobs}
for r in range(7):
    for k, f in jobs.items():
        t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter()-t0)
med = {k: statistics.median(v) for k, v in ts.items()}
print(B, {k: round(v, 3) for k, v in med.items()}, "higher/off %.2f higher/on %.2f" % (med["higher"]/med["cl1_off"], med["higher"]/med["cl1_on"]))
