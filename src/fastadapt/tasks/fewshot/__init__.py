"""Few-shot supervised task families: the N-way K-shot episode sampler, Omniglot (official zip/folder
formats and the one-shot classification runs), scikit-learn's digits, and sinusoid regression."""
