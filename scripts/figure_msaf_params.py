"""Draw MSAF Fig. 5 (msaf.txt §5.5) from the code: parameters and fully connected FLOPs of one MSAF module vs
one MMTM module fusing two modalities of shape (4, #Channels, 3, 128, 128), #Channels = 64..1024, reduction 4,
MSAF block size #Channels / 2. Counting is done by `repro.models.fusion.costs` (meta device, FlopCounterMode).

    python scripts/figure_msaf_params.py [--out outputs/figures/msaf_params.png] [--step 64]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repro.models.fusion.costs import fig5_costs  # noqa: E402

# The paper's quoted values (msaf.txt §5.5), drawn as markers for comparison.
PAPER = {"msaf_flops": {64: 10.4e3, 1024: 2.6e6}, "mmtm_flops": {64: 131.6e3, 1024: 33.6e6}, "msaf_params_max": 330e3}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/figures/msaf_params.png", help="output image path")
    parser.add_argument("--step", type=int, default=64, help="channel step between 64 and 1024")
    args = parser.parse_args(argv)

    channels = list(range(64, 1025, args.step))
    if channels[-1] != 1024:
        channels.append(1024)
    rows = [fig5_costs(c) for c in channels]
    col = {k: [r[k] for r in rows] for k in rows[0]}

    fig, (ax_p, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    ax_p.plot(channels, [v / 1e3 for v in col["msaf_params"]], "o-", label="MSAF")
    ax_p.plot(channels, [v / 1e3 for v in col["mmtm_params"]], "s-", label="MMTM")
    ax_p.axhline(PAPER["msaf_params_max"] / 1e3, color="grey", ls=":", label="paper: MSAF max 330K")
    ax_p.set(xlabel="#Channels", ylabel="parameters (K)", title="Parameters per module", yscale="log")
    ax_f.plot(channels, [v / 1e6 for v in col["msaf_flops"]], "o-", label="MSAF")
    ax_f.plot(channels, [v / 1e6 for v in col["mmtm_flops"]], "s-", label="MMTM")
    for key, marker in (("msaf_flops", "x"), ("mmtm_flops", "+")):
        xs, ys = zip(*PAPER[key].items())
        ax_f.plot(xs, [y / 1e6 for y in ys], marker, color="k", ms=10, label=f"paper {key.split('_')[0].upper()}")
    ax_f.set(xlabel="#Channels", ylabel="FC FLOPs (M), batch 4", title="FLOPs per module", yscale="log")
    for ax in (ax_p, ax_f):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("MSAF vs MMTM, two modalities (4, #Channels, 3, 128, 128), r = 4 (MSAF Fig. 5)")
    fig.tight_layout()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    out.with_suffix(".json").write_text(json.dumps({"channels": channels, **col}, indent=1))
    print(f"wrote {out} (and {out.with_suffix('.json').name})")
    return out


if __name__ == "__main__":
    main()
