#!/bin/sh
for s in 1 2; do sh benchmarks/pearl/session5/run.sh rank1 pearl-navigation2d $s; done
