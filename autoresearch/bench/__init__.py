"""Benchmarks of the search loop against its peers (scripts/bench_search.py) and of the framework's own
overhead (scripts/bench_overhead.py). The shared logic lives here: a call budget enforced at the backend,
the method runners, the workspaces they run in, the tables and the plot."""
