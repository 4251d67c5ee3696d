"""Experiment drivers, their grids and reports; run as `python -m experiments.<name>`.

Each driver trains (or reuses, or resumes) its runs under one output folder and
writes its report there: `weightings` (the pair-weighting ablation, with
`weightings_report`, `weightings_data` and `pair_weights`), `weak_signals`,
`supervised` (TaoHighlight with labels); and analyses that train nothing:
`recurrence_baseline`, `synthetic_baseline`, `feature_gap`, `i3d_reference`.
Speed and memory benchmarks are in `benchmarks/`.
"""
