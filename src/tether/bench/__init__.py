"""Benchmarks: agent workloads replayed against a tether server in a separate process."""
