"""MFAS — multimodal fusion architecture search (Pérez-Rúa et al., CVPR 2019; mfas.txt §3).

So far: the search space (`space.py`). The surrogate, sampler, temperature schedule and feature cache follow.
"""
