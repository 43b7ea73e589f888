"""objmount benchmarks: each scenario measured against a baseline in the same run."""
