"""The checks: Great Expectations suites on small profile frames (run here or in a helper
process), the frames themselves and the moments they need, the findings a person reads when a
check fails, and the Data Docs site of each run's results."""
