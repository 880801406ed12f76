"""Analyses of finished runs and searches: MICA's attention alignment (Table 6, Fig. 4), MICA's sensitivity figure,
RMFN's attention, robustness sweeps, search plots. Parameter / FLOP / memory counting is `repro.models.complexity`
(train.py records it, and train sits below the analyses)."""
