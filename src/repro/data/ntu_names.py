"""NTU RGB+D 60 sample names and the cross-subject (CS) protocol (pure functions, no file reads).

Names (NTU RGB+D release, Shahroudy et al. 2016): ``SsssCcccPpppRrrrAaaa`` — setup (1..17), camera (1..3),
performer/subject (1..40), replication (1..2), action (1..60), each three digits, followed by the file's suffix
(``.skeleton``, ``_rgb.avi``, ``.avi``). The label is action − 1 (0..59), as ``mfas/datasets/ntu.py``.

Cross-subject protocol (IMPLEMENTATION-NOTES §1.4): the release's CS training subjects are ``CS_TRAIN_SUBJECTS``;
the other 20 of 1..40 are the test subjects. The validation ("dev") subjects depend on the protocol:

- ``mfas`` (default, the official MFAS code): dev = subjects 2, 5, 9, 14, taken out of the CS training subjects;
  training = the other 16.
- ``mfas_search``: the MFAS search's split (mfas.txt §4, the authors' ``'trainexp'``): training = subjects 1, 4, 8,
  13, 15, 17, 19, dev = 2, 5, 9, 14 (the search's validation), test = the CS test subjects (unused by the search).
- ``msaf_quirk`` (QUIRK, the anita-hu fork used by MSAF): training = all 20 CS training subjects and
  dev = 3, 6, 7, 10 — CS *test* subjects, so model selection sees part of the test set.

The "dev" split is returned under the project's name ``val`` (``repro.data.base.SPLITS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from repro.data.base import DataError

NAME_PATTERN = "SsssCcccPpppRrrrAaaa"
NAME_EXAMPLE = "S001C002P003R002A013.skeleton"
NUM_CLASSES = 60
SUBJECTS = tuple(range(1, 41))
CS_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
CS_TEST_SUBJECTS = tuple(s for s in SUBJECTS if s not in CS_TRAIN_SUBJECTS)
MFAS_DEV_SUBJECTS = (2, 5, 9, 14)
MSAF_QUIRK_DEV_SUBJECTS = (3, 6, 7, 10)  # QUIRK: CS test subjects
MFAS_SEARCH_TRAIN_SUBJECTS = (1, 4, 8, 13, 15, 17, 19)  # MFAS's 'trainexp' split (search stage)

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})(?:_rgb)?(?:\.[A-Za-z0-9]+)?")
# field -> allowed range of NTU RGB+D 60
_FIELDS = {
    "setup": range(1, 18),
    "camera": range(1, 4),
    "subject": range(1, 41),
    "replication": range(1, 3),
    "action": range(1, NUM_CLASSES + 1),
}


@dataclass(frozen=True)
class Protocol:
    """Subjects of each split of one cross-subject protocol."""

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


PROTOCOLS = {
    "mfas": Protocol("mfas", tuple(s for s in CS_TRAIN_SUBJECTS if s not in MFAS_DEV_SUBJECTS),
                     MFAS_DEV_SUBJECTS, CS_TEST_SUBJECTS),
    "msaf_quirk": Protocol("msaf_quirk", CS_TRAIN_SUBJECTS, MSAF_QUIRK_DEV_SUBJECTS, CS_TEST_SUBJECTS),
    "mfas_search": Protocol("mfas_search", MFAS_SEARCH_TRAIN_SUBJECTS, MFAS_DEV_SUBJECTS, CS_TEST_SUBJECTS),
}


@dataclass(frozen=True, order=True)
class NtuName:
    """The five fields of one NTU sample name."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """Class index 0..59 (action − 1)."""
        return self.action - 1

    @property
    def stem(self) -> str:
        """The sample name without suffix, e.g. ``S001C002P003R002A013``."""
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
                f"R{self.replication:03d}A{self.action:03d}")


def _malformed(name: str, why: str) -> DataError:
    return DataError(f"{name}: not an NTU RGB+D 60 sample name ({why}); expected {NAME_PATTERN} with three-digit "
                     f"fields, e.g. {NAME_EXAMPLE} — rename it or move it out of the NTU folder")


def parse_ntu_name(path: str | PurePath) -> NtuName:
    """Fields of an NTU sample name (a bare name, a stem or a path; suffix ``.skeleton``/``_rgb.avi``/``.avi``)."""
    name = PurePath(path).name
    match = _NAME_RE.fullmatch(name)
    if match is None:
        raise _malformed(str(path), "not S, C, P, R, A each followed by three digits")
    values = dict(zip(_FIELDS, (int(v) for v in match.groups()), strict=True))
    for field, allowed in _FIELDS.items():
        if values[field] not in allowed:
            raise _malformed(str(path), f"{field} {values[field]:03d} is outside {allowed.start}..{allowed.stop - 1}"
                                        " (NTU RGB+D 120 samples are not part of NTU-60)")
    return NtuName(**values)


def sample_stem(path: str | PurePath) -> str:
    """The 20-character sample name that pairs a skeleton file with its RGB video (validated)."""
    return parse_ntu_name(path).stem


def split_names(names: Iterable[str | PurePath], protocol: str = "mfas") -> dict[str, list[str]]:
    """Sample stems of each split (``train``, ``val``, ``test``) of `protocol`, sorted; other subjects dropped.

    Under ``mfas`` every NTU-60 subject lands in exactly one split; under ``msaf_quirk`` the val subjects are also
    test subjects (the fork's QUIRK), so their samples appear in both val and test.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"NTU protocol {protocol!r}: unknown; expected one of {', '.join(PROTOCOLS)}")
    proto = PROTOCOLS[protocol]
    stems: dict[str, NtuName] = {}
    for name in names:
        parsed = parse_ntu_name(name)
        if parsed.stem in stems:
            raise DataError(f"{name}: sample {parsed.stem} listed twice; expected one file per sample — "
                            "remove the duplicate")
        stems[parsed.stem] = parsed
    return {split: sorted(s for s, p in stems.items() if p.subject in subjects)
            for split, subjects in (("train", proto.train), ("val", proto.val), ("test", proto.test))}
