"""Analyses of a finished `specdec bench` run (`specdec bench analyze NAME --run DIR`): each reads the run's
recorded vanilla answers and returns a result that prints itself as Markdown and as JSON.

- lookup_bound: how fast prompt lookup can be on this machine (pld replayed, and the lookup oracle).
- near_ties: how close greedy decisions come to ties, against 1-row vs k-row rounding differences.
- q4_fidelity: how closely the 4-bit runtime follows float32 on the same model.
"""
