"""Staged encoders: one network per modality, runnable stage by stage so fusion modules can act between stages."""
