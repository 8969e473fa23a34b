"""Trainable drafter networks that run beside a target: EAGLE feature heads, Medusa heads, distilled models.

One definition serves training (autograd, whole sequences) and decoding (inference mode, a KV cache and tree
masks). Heads read the target's token embedding and hidden features but own their output head over a *draft
vocabulary* (the most frequent target tokens), which keeps drafting cheap on a CPU: SmolLM2's full LM head is a
fifth of the whole model.
"""
