"""Speed and memory benchmarks; run as `python -m benchmarks.<name>` from the repo root.

Each module times or measures one part of hl_jax (the train steps, the PyTorch
reference, peak memory, the extractor, the streaming detector, corpus builds);
`harness` holds what they share (timing probes, the machine, tables).
Experiments with their grids and reports live in `experiments/`, which may use
`benchmarks.harness`; nothing here imports from `experiments`.
"""
