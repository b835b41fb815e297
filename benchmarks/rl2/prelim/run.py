import sys, time, json, torch
sys.path.insert(0, "/tmp/rl2proto")
torch.set_num_threads(int(__import__("os").environ.get("NT", "1")))
from fastadapt.tasks.rl.bandit import BanditDistribution as StubBanditDist
from fastadapt.algos.metarl.rl2 import RL2, RL2Config, RL2EvalConfig
kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
iters = kw.pop("iters", 100); arms = kw.pop("arms", 5); pulls = kw.pop("pulls", 10); budget = kw.pop("budget", 1e9)
ev = kw.pop("eval", 20000)
cfg = RL2Config(**kw)
L = RL2(cfg, StubBanditDist(arms, pulls), 0)
t0 = time.time()
for i in range(iters):
    m = L.train_step(i)
    if i % int(__import__("os").environ.get("PE", "10")) == 0 or i == iters - 1:
        print(i, f"{time.time()-t0:.1f}s", {k: round(v, 4) for k, v in m.items()}, flush=True)
    if time.time() - t0 > budget: break
tt = time.time() - t0
for g in (False, True):
    r = L.evaluate(RL2EvalConfig(trials=ev, greedy=g), 1)[0]
    print("train_s", round(tt,1), "cpu_s", round(__import__("time").process_time(),1), "greedy", g, round(r.mean, 4), round(r.se, 4), flush=True)
