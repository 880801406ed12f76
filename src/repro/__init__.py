"""repro: reproduce multimodal fusion papers."""
__version__ = "0.1.0"
