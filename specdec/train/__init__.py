"""Training of drafters for a target: Medusa heads, EAGLE heads, distilled draft models (`specdec train`).

Pipeline (pipeline.py): prompts (prompts.py) -> the target's own greedy responses (responses.py) -> target
features and teacher distributions over prompt + response (features.py) -> a training loop with checkpoints
(loop.py) driving the kind's objective (objective.py; eagle.py, medusa.py, distill.py) -> safetensors + JSON a
drafter loads (specdec/heads/io.py). What differs between kinds is declared once per kind in kinds/, a registry.
"""
