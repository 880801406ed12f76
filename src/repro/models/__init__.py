"""Networks: staged per-modality encoders (`backbones/`), fusion methods (`fusion/`), their composition (`net.py`)."""
