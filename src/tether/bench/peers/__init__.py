"""Peer servers that the benchmark compares tether with."""
