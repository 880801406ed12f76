"""Networks: staged per-modality encoders (`backbones/`), fusion methods (`fusion/`), and their composition (`net.py`)."""
