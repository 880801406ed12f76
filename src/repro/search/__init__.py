"""MFAS — multimodal fusion architecture search (Pérez-Rúa et al., CVPR 2019; mfas.txt §3).

The surrogate, sampler, temperature schedule, feature cache, weight-sharing trainer, algorithm, record and entry
point. The search space (the architectures of an MFAS fusion net) is `repro.models.fusion.mfas_space`: the found
network parses it too, and models sit below the search. The search record is read by `repro.runs`.
"""
