"""An engine's phone report -> the phones a corpus stores.

Each label is translated into the stored phone set, times are clipped to the
audio, empty phones are dropped and neighbouring pauses become one. How the
last phone meets the audio's end is left to each engine: MBROLA stretches
its last phone; Festival, Flite and Open JTalk ``end_with_pause``.
"""
from __future__ import annotations

from typing import Callable, Iterable

from lipsync.rigs.coarticulation import Phone


def relabel_and_merge(raw: Iterable[Phone], duration: float, relabel: Callable[[str], str], pause: str) -> list[Phone]:
    out: list[Phone] = []
    for p in raw:
        label = relabel(p.label)
        start, end = min(p.start, duration), min(p.end, duration)
        if end <= start:
            continue
        if out and label == pause and out[-1].label == pause:
            out[-1] = Phone(out[-1].start, end, pause)
        else:
            out.append(Phone(start, end, label))
    return out


def end_with_pause(phones: list[Phone], duration: float, pause: str) -> list[Phone]:
    """The phones reaching ``duration``: a final pause is stretched to it, else a pause is added (the wave may run
    a few ms beyond the engine's last segment)."""
    last = phones[-1]
    if last.end >= duration:
        return phones
    if last.label == pause:
        return [*phones[:-1], Phone(last.start, duration, pause)]
    return [*phones, Phone(last.end, duration, pause)]
