"""Benchmarks run by ``fastadapt bench NAME`` (each module registers itself with ``@register_benchmark``)."""
