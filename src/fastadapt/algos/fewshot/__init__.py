"""Few-shot classification/regression meta-learners. :mod:`fastadapt.algos.fewshot.common` holds the shared
learner base and meta-test protocol (its docstring states the subclass contract)."""
