"""Phone labels (ARPAbet, IPA, espeak-ng mnemonics) -> oculus15 visemes.

The tables are YAML files in ``phonemes/``. A phone maps to a tuple of
visemes: one for most phones, several for diphthongs (their time is shared in
order), ``NEXT`` for /h/, which borrows the next sounding phone's shape, and
``SILENCE`` for pauses. Festival's non-English phone sets (``italian``,
``russian`` …) are first spelled as IPA through ``phonemes/festival_ipa.yaml``.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import yaml

from lipsync.rigs import VISEMES

PHONESETS = ("arpabet", "ipa", "espeak")
SILENCE = ("sil",)
NEXT = ("_next",)
_TABLE_DIR = Path(__file__).parent / "phonemes"
FESTIVAL_TABLE = _TABLE_DIR / "festival_ipa.yaml"
_ARPABET_LABEL = re.compile(r"^[A-Z]{1,3}[012]?$")
_IPA_MODIFIERS = "ˈˌːˑ̩̯̃ʰʱʷʲˠˤᵝ̥̬̪̺̻̚˞‿͜͡.-"  # ᵝ: compressed lips (espeak-ng's Japanese ɯᵝ)


class UnknownPhoneError(ValueError):
    """A phone label that no table maps."""


@lru_cache(maxsize=None)
def _table(phoneset: str) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    if phoneset not in PHONESETS:
        raise ValueError(f"unknown phone set {phoneset!r}; use one of {', '.join(PHONESETS)}")
    spec = yaml.safe_load((_TABLE_DIR / f"{phoneset}.yaml").read_text(encoding="utf-8"))
    phones = {}
    for label, target in spec["phones"].items():
        visemes = tuple(target) if isinstance(target, list) else (target,)
        if visemes != NEXT and not all(v in VISEMES for v in visemes):
            raise ValueError(f"phonemes/{phoneset}.yaml: {label!r} maps to unknown viseme(s) {visemes}")
        phones[str(label)] = visemes
    return phones, frozenset(str(s) for s in spec["silence"])


def detect_phoneset(labels: list[str]) -> str:
    """Guess the phone set of an alignment from its labels."""
    sounding = [lab for lab in labels if lab and lab.lower() not in ("sil", "sp", "spn", "pau", "_", "_:")]
    if sounding and all(_ARPABET_LABEL.match(lab) for lab in sounding):
        return "arpabet"
    if any(ord(ch) > 127 for lab in sounding for ch in lab):
        return "ipa"
    return "espeak"


def visemes_for(label: str, phoneset: str) -> tuple[str, ...]:
    """The visemes one phone label stands for; raises UnknownPhoneError if none."""
    found = _lookup(label.strip(), phoneset)
    if found is None:
        raise UnknownPhoneError(
            f"phone {label!r} is not in the {phoneset} table (lipsync/rigs/phonemes/{phoneset}.yaml); "
            "add it there or map it to a known phone before preparing the corpus"
        )
    return found


def _lookup(label: str, phoneset: str) -> tuple[str, ...] | None:
    phones, silence = _table(phoneset)
    if label in silence or label.lower() in silence:
        return SILENCE
    if label in phones:
        return phones[label]
    if phoneset == "arpabet":
        upper = label.upper()
        for key in (upper, upper.rstrip("012")):
            if key in phones:
                return phones[key]
        return None
    if phoneset == "espeak":
        stripped = label.rstrip("0123456789;#-:/^")
        if stripped and stripped in phones:
            return phones[stripped]
        return _lookup_ipa(label)
    return _lookup_ipa(label)


def _lookup_ipa(label: str) -> tuple[str, ...] | None:
    phones, silence = _table("ipa")
    text = unicodedata.normalize("NFD", label)
    text = "".join(ch for ch in text if ch not in _IPA_MODIFIERS and unicodedata.category(ch) != "Mn")
    text = unicodedata.normalize("NFC", text)
    if text in silence:
        return SILENCE
    if text in phones:
        return phones[text]
    # Symbol by symbol, longest match first (e.g. "tʃ" before "t").
    out: list[str] = []
    i = 0
    while i < len(text):
        piece = next((text[i : i + n] for n in (2, 1) if text[i : i + n] in phones), None)
        if piece is None:
            return None
        out.extend(phones[piece])
        i += len(piece)
    sounding = [v for v in out if v != NEXT[0]]
    if not sounding:
        return NEXT
    return tuple(v for k, v in enumerate(sounding) if k == 0 or sounding[k - 1] != v)


@lru_cache(maxsize=None)
def _festival_tables() -> tuple[frozenset[str], dict[str, dict[str, str]]]:
    spec = yaml.safe_load(FESTIVAL_TABLE.read_text(encoding="utf-8"))
    return frozenset(spec["silence"]), {k: {str(a): b for a, b in v.items()} for k, v in spec["phonesets"].items()}


FESTIVAL_PHONESETS = tuple(_festival_tables()[1])  # the Festival phone sets festival_ipa.yaml spells as IPA


def festival_to_ipa(label: str, phoneset: str) -> str:
    """A label of one of Festival's non-English phone sets as IPA (``sil`` for pauses); a stress digit (a1) is dropped."""
    silence, tables = _festival_tables()
    if phoneset not in tables:
        raise ValueError(f"unknown Festival phone set {phoneset!r}; use one of {', '.join(FESTIVAL_PHONESETS)}")
    if label in silence or label == "":
        return SILENCE[0]
    table = tables[phoneset]
    for key in (label, re.sub(r"(?<=\D)[0-9]$", "", label)):
        if key in table:
            return table[key]
    raise UnknownPhoneError(f"Festival phone {label!r} of the {phoneset} phone set is not in {FESTIVAL_TABLE}; add it there")
