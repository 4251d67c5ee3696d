"""Speed, memory and ablation scripts; run as `python -m benchmarks.<name>` from the repo root."""
