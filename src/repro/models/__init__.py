"""Networks: staged per-modality encoders (`backbones/`), fusion methods (`fusion/`), sequence networks
(`sequence/`), their composition (`net.py`) and shared blocks (`blocks.py`). Models receive already-loaded data
(weights, architecture strings); reading runs and records is `repro.runs`, one layer below training."""
