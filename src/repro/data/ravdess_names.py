"""RAVDESS file names, MSAF's clip selection and its cross-validation by actor (pure functions, no file reads).

File names (RAVDESS README, zenodo 1188976; Livingstone & Russo 2018): ``MM-VV-EE-II-SS-RR-AA.ext``, seven
two-digit fields — modality (01 full-AV, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song),
emotion (01..08: neutral, calm, happy, sad, angry, fearful, disgust, surprised), intensity (01 normal, 02 strong;
neutral has no strong), statement (01, 02), repetition (01, 02), actor (01..24; odd = male, even = female).
The label is emotion − 1 (0..7), as MSAF's ``ravdess/ravdess.py``.

Clips (IMPLEMENTATION-NOTES §1.2): MSAF uses the full-AV speech clips ``01-01-…`` of ``Video_Speech_Actor_XX.zip``
and skips the ``02-…`` video-only copies: 7 emotions × 2 intensities × 2 statements × 2 repetitions + neutral's
1 × 2 × 2 = 60 per actor, 1440 in all. The audio-only release (``03-01-…wav``) has the same 60 per actor.

Folds (MSAF ``ravdess/main_msaf.py``; msaf.txt §5.1): the actor folders sorted, fold i tests actors
``sorted[4i:4i+4]`` (Actor_01–04, 05–08, …, 21–24) and trains on the other 20; four consecutive ids hold two odd
(male) and two even (female) actors. Folds here are 0-based (fold 0 = the authors' "Fold 1"). The authors have no
validation set: they select the epoch on the test fold (``select_on="test"``, the paper's protocol).

Validation protocol (``select_on="val"``, ours): the validation actors of fold k are the *next* fold in the
rotation, ``folds[(k + 1) % 6]`` — four consecutive ids (2 male, 2 female), never a test actor of fold k — so
each fold trains on 16 actors, selects on 4 and tests on 4. Every actor is a validation actor exactly once over
the six folds, as it is a test actor exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from repro.data.base import DataError

NAME_PATTERN = "MM-VV-EE-II-SS-RR-AA.ext"
NAME_EXAMPLE = "01-01-06-01-02-01-12.mp4"
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "full-AV", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
FULL_AV, VIDEO_ONLY, AUDIO_ONLY = 1, 2, 3
SPEECH = 1
ACTORS = tuple(range(1, 25))
NUM_FOLDS = 6
CLIPS_PER_ACTOR = 60  # speech clips of one modality per actor
SELECT_ON = ("test", "val")

_NAME_RE = re.compile(r"(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(\.\w+)?")
_ACTOR_DIR_RE = re.compile(r"Actor_(\d{2})")
# field -> allowed values (the release's codes)
_FIELDS = {
    "modality": MODALITIES,
    "vocal_channel": VOCAL_CHANNELS,
    "emotion": range(1, 9),
    "intensity": (1, 2),
    "statement": (1, 2),
    "repetition": (1, 2),
    "actor": ACTORS,
}


@dataclass(frozen=True, order=True)
class RavdessName:
    """The seven fields of one RAVDESS file name (order = actor-major, so sorting groups clips by actor)."""

    actor: int
    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int

    @property
    def label(self) -> int:
        """Class index 0..7 (emotion − 1, as MSAF)."""
        return self.emotion - 1

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.label]

    @property
    def gender(self) -> str:
        return actor_gender(self.actor)

    @property
    def stem(self) -> str:
        """The name without extension, e.g. ``01-01-06-01-02-01-12``."""
        fields = (self.modality, self.vocal_channel, self.emotion, self.intensity, self.statement,
                  self.repetition, self.actor)
        return "-".join(f"{v:02d}" for v in fields)


def actor_gender(actor: int) -> str:
    """RAVDESS: odd actor ids are male, even ones female."""
    return "male" if actor % 2 else "female"


def _malformed(name: str, why: str) -> DataError:
    return DataError(f"{name}: not a RAVDESS file name ({why}); expected {NAME_PATTERN} with two-digit fields, "
                     f"e.g. {NAME_EXAMPLE} — rename it or move it out of the Actor_XX folder")


def parse_name(path: str | PurePath) -> RavdessName:
    """Fields of a RAVDESS file name (a bare name or a path; an ``Actor_XX`` parent must match the actor field)."""
    path = PurePath(path)
    match = _NAME_RE.fullmatch(path.name)
    if match is None:
        raise _malformed(str(path), "not seven dash-separated two-digit fields")
    values = dict(zip(_FIELDS, (int(v) for v in match.groups()[:7]), strict=True))
    for field, allowed in _FIELDS.items():
        if values[field] not in allowed:
            raise _malformed(str(path), f"{field} {values[field]:02d} is not one of "
                                        f"{', '.join(f'{v:02d}' for v in allowed)}")
    if values["emotion"] == 1 and values["intensity"] == 2:
        raise _malformed(str(path), "neutral (emotion 01) has no strong intensity (02)")
    folder = _ACTOR_DIR_RE.fullmatch(path.parent.name)
    if folder and int(folder.group(1)) != values["actor"]:
        raise _malformed(str(path), f"it lies in {path.parent.name} but names actor {values['actor']:02d}")
    return RavdessName(**values)


def release_names(root: str | Path, suffix: str = ".mp4") -> list[str]:
    """``Actor_XX/<name>`` of every file with `suffix` under `root`'s actor folders, sorted (names only)."""
    root = Path(root)
    return sorted(f"{d.name}/{f.name}" for d in root.glob("Actor_*") if d.is_dir()
                  for f in d.iterdir() if f.name.endswith(suffix))


def select_clips(names: Iterable[str | PurePath], modality: int = FULL_AV) -> list[str]:
    """MSAF's clips: the speech files of `modality` (full-AV by default, audio-only for the audio release),
    sorted by actor then name. Video-only (``02-…``) and song files are skipped; a malformed name is an error."""
    keep = []
    for name in names:
        parsed = parse_name(name)
        if parsed.modality == modality and parsed.vocal_channel == SPEECH:
            keep.append((parsed, str(name)))
    return [name for _, name in sorted(keep)]


def missing_actors(actors: Iterable[int]) -> list[int]:
    """Release actors (1..24) not among `actors`."""
    present = set(actors)
    return [a for a in ACTORS if a not in present]


def actor_folds(actors: Iterable[int], num_folds: int = NUM_FOLDS) -> list[list[int]]:
    """MSAF's test folds: sorted actors cut into `num_folds` runs of consecutive ids (4 each for 24 actors).

    Needs all 24 actors (a partial release has no such folds); a missing one is a one-line error naming it.
    """
    present = sorted(set(actors))
    missing, extra = missing_actors(present), [a for a in present if a not in ACTORS]
    if missing or extra:
        raise DataError(
            f"the {num_folds}-fold cross-validation by actor needs all 24 RAVDESS actors; "
            f"missing {', '.join(f'Actor_{a:02d}' for a in missing) or 'none'}"
            + (f", unknown {extra}" if extra else "")
            + " (download the missing actors' archives from zenodo record 1188976)"
        )
    if len(present) % num_folds:
        raise DataError(f"num_folds={num_folds} does not divide the 24 RAVDESS actors; use 6 (MSAF) or 2, 3, 4, 8, 12")
    size = len(present) // num_folds
    return [present[i * size:(i + 1) * size] for i in range(num_folds)]


def _check_fold(fold: int, num_folds: int) -> None:
    if not 0 <= fold < num_folds:
        raise DataError(f"RAVDESS defines {num_folds} cross-validation folds by actor; set fold=<0..{num_folds - 1}>")


def validation_actors(actors: Iterable[int], fold: int, num_folds: int = NUM_FOLDS) -> list[int]:
    """Validation actors of `fold` for ``select_on="val"``: the next fold in the rotation (never a test actor)."""
    folds = actor_folds(actors, num_folds)
    _check_fold(fold, num_folds)
    return folds[(fold + 1) % num_folds]


def split_actors(
    actors: Iterable[int], fold: int, select_on: str = "test", num_folds: int = NUM_FOLDS
) -> dict[str, list[int]]:
    """Actors of each split of `fold`: ``{"train", "val", "test"}``.

    ``select_on="test"`` (the paper's): train = the other 20 actors, val = the test actors (the epoch is chosen on
    the test fold). ``select_on="val"``: val = `validation_actors`, train = the remaining 16.
    """
    if select_on not in SELECT_ON:
        raise DataError(f"protocol.select_on={select_on!r} is not one of {SELECT_ON} "
                        "(test = the paper's selection on the test fold, val = held-out training actors)")
    actors = sorted(set(actors))
    folds = actor_folds(actors, num_folds)
    _check_fold(fold, num_folds)
    test = folds[fold]
    val = test if select_on == "test" else validation_actors(actors, fold, num_folds)
    train = [a for a in actors if a not in test and a not in val]
    return {"train": train, "val": list(val), "test": list(test)}


def split_clips(
    names: Sequence[str | PurePath], fold: int, select_on: str = "test", num_folds: int = NUM_FOLDS
) -> dict[str, list[str]]:
    """The clips (names as given) of each split of `fold`, by the actor field of their names."""
    actor_of = {str(n): parse_name(n).actor for n in names}
    by_split = split_actors(set(actor_of.values()), fold, select_on, num_folds)
    return {split: [n for n, a in actor_of.items() if a in set(ids)] for split, ids in by_split.items()}
