"""Session 5: compare the screening runs (session5/screen/*.json) with the earlier seed-1 MDP run.

Prints, per run, the training reward per trial (mean of the last <= 10 iterations) reached by a given number of
training CPU seconds, the final entropy and the 500-trial test rows. Run from the repo root:
``.venv/bin/python benchmarks/rl2/session5/compare_screens.py``.
"""

import glob
import json

ref = json.load(open("benchmarks/rl2/results/mdp-n10-s1.json"))
files = [("earlier run: t256-h64-lam90-lr3e-3 annealed over 150 it (results/mdp-n10-s1.json)", ref)] + [
    (f.split("/")[-1][:-5], json.load(open(f))) for f in sorted(glob.glob("benchmarks/rl2/session5/screen/*.json"))
]
for name, d in files:
    c = d["curve"]

    def at(s: float) -> float | None:
        pts = [x for x in c if x["cpu_s"] <= s][-10:]
        return round(sum(x["reward_per_trial"] for x in pts) / len(pts), 1) if pts else None

    rows = {r["method"]: (round(r["mean"], 1), round(r["se"], 1), r["n"]) for r in d["rows"]}
    print(name, "| iters", len(c), "| train cpu_s", d["train_cpu_s"], "| wall_s", d["train_wall_s"],
          "| @60", at(60), "@120", at(120), "@180", at(180), "@240", at(240), "@300", at(300),
          "| final entropy", round(c[-1]["entropy"], 2), "| test", rows, "| load_end", d["loadavg_end"])
