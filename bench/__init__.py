"""kubegate benchmarks: end-to-end ratios against a direct connection and kubectl proxy (bench.run),
and component figures (policy_decide, recording, masking) the harness runs alongside."""
