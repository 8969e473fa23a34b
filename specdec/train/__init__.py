"""Training of drafters for a target: Medusa heads, EAGLE heads, distilled draft models (`specdec train`).

Pipeline: prompts (prompts.py) -> the target's own greedy responses (responses.py) -> target features and
teacher distributions over prompt + response (features.py) -> a training loop with checkpoints (loop.py)
driving one objective per method (objectives.py) -> safetensors + JSON a drafter loads (specdec/heads/).
"""
