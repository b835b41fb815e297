import torch
from torch.profiler import profile, ProfilerActivity
from fastadapt.bench.maml_speed import MAMLSpeedConfig, _Problem
torch.set_num_threads(1)
prob = _Problem(MAMLSpeedConfig(), 4, 0)
import sys
meth = sys.argv[1]
for _ in range(2): prob.step(meth)
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for _ in range(3): prob.step(meth)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=40))  # the README shares
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=30, max_shapes_column_width=70))
