"""TextGrid (written by praatio), HTS .lab and TSV alignments -> curves through the coarticulation model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from praatio import textgrid
from prepare_inputs import leftovers, write_tone

from lipsync.curves.csv import read_curves_csv
from lipsync.data.alignment import read_alignment_tsv
from lipsync.data.validate import load_clips
from lipsync.prepare.alignments import prepare_alignments, read_festvox_lab, read_hts_lab, read_textgrid
from lipsync.prepare.problems import CorpusRejected
from lipsync.rigs import VISEMES

FPS = 30
PP, AA, SIL = VISEMES.index("PP"), VISEMES.index("aa"), VISEMES.index("sil")
# "ma ma": /m/ at 0.30-0.40 and 0.60-0.70 s, silence around.
ARPA = [(0.0, 0.3, "sil"), (0.3, 0.4, "M"), (0.4, 0.6, "AA1"), (0.6, 0.7, "M"), (0.7, 0.9, "AA1"), (0.9, 1.2, "sp")]


def write_textgrid(path, phones, tier="phones", words=True):
    grid = textgrid.Textgrid()
    if words:
        grid.addTier(textgrid.IntervalTier("words", [(0.3, 0.9, "mama")], 0, phones[-1][1]))
    grid.addTier(textgrid.IntervalTier(tier, [p for p in phones if p[2]], 0, phones[-1][1]))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)
    return path


def write_lab(path, phones):
    lines = []
    for i, (start, end, label) in enumerate(phones):
        prev = phones[i - 1][2] if i else "x"
        nxt = phones[i + 1][2] if i + 1 < len(phones) else "x"
        lines.append(f"{round(start * 1e7)} {round(end * 1e7)} x^{prev}-{label}+{nxt}=y@1_2/A:0_0_0/B:1-1-2")
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_lips_close_at_m(curves):
    """PP peaks inside each /m/ and is low in the vowels and silence between."""
    times = np.arange(len(curves)) / FPS
    for start, end in ((0.3, 0.4), (0.6, 0.7)):
        assert curves[(times >= start) & (times < end), PP].max() > 0.9
    assert curves[(times > 0.48) & (times < 0.52), PP].max() < 0.1
    assert curves[(times > 0.48) & (times < 0.52), AA].max() > 0.9
    assert curves[times < 0.15, SIL].min() > 0.9 and curves[times < 0.15, PP].max() == 0


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_tone(folder / "clip.wav", 1.2)
    return folder


def _prepare(folder, tmp_path, **kw):
    out = tmp_path / "corpus"
    prepare_alignments(folder, out, fps=FPS, print_report=False, **kw)
    entry = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    return out, entry, read_curves_csv(out / entry["curves"]).values


def test_textgrid_phone_tier_gives_pp_at_m(inputs, tmp_path):
    write_textgrid(inputs / "clip.TextGrid", ARPA)
    assert [p.label for p in read_textgrid(inputs / "clip.TextGrid")][:2] == ["sil", "M"]
    out, entry, curves = _prepare(inputs, tmp_path)
    assert_lips_close_at_m(curves)
    assert [p.label for p in read_alignment_tsv(out / entry["alignment"])] == ["M", "AA1", "M", "AA1"]
    assert load_clips(out, "oculus15", FPS, progress=False)[0].curves.shape == (36, 15)


def test_mfa_ipa_textgrid_with_empty_intervals_and_spn(inputs, tmp_path):
    mfa = [(0.0, 0.3, ""), (0.3, 0.4, "m"), (0.4, 0.6, "ɑː"), (0.6, 0.7, "m"), (0.7, 0.9, "aj"), (0.9, 1.2, "spn")]
    write_textgrid(inputs / "clip.TextGrid", mfa)
    out, _, curves = _prepare(inputs, tmp_path, phoneset="mfa")
    assert_lips_close_at_m(curves)
    log = json.loads((out / "prepare_log.json").read_text())["clips"]["clip"]
    assert log["phoneset"] == "ipa" and log["spoken_noise"] == 1


def test_hts_full_context_lab_gives_pp_at_m(inputs, tmp_path):
    hts = [(s, e, {"sil": "sil", "sp": "pau", "M": "m", "AA1": "aa"}[lab]) for s, e, lab in ARPA]
    write_lab(inputs / "clip.lab", hts)
    assert [p.label for p in read_hts_lab(inputs / "clip.lab")] == ["sil", "m", "aa", "m", "aa", "pau"]
    assert read_hts_lab(inputs / "clip.lab")[1].start == pytest.approx(0.3)
    _, _, curves = _prepare(inputs, tmp_path)
    assert_lips_close_at_m(curves)


def write_festvox_lab(path, phones):
    """ESPS/xlabel as festvox voice databases (CMU ARCTIC …) store it: a header, '#', then 'end colour label'."""
    body = "".join(f"{end:.5f} 125 {label}\n" for _, end, label in phones)
    path.write_text("separator ;\nnfields 1\n#\n" + body)
    return path


def test_festvox_lab_gives_pp_at_m(inputs, tmp_path):
    radio = [(s, e, {"sil": "pau", "sp": "pau", "M": "m", "AA1": "aa"}[lab]) for s, e, lab in ARPA]  # CMU ARCTIC's set
    write_festvox_lab(inputs / "clip.lab", radio)
    phones = read_festvox_lab(inputs / "clip.lab")
    assert [(p.start, p.end, p.label) for p in phones[:2]] == [(0.0, pytest.approx(0.3), "pau"), (pytest.approx(0.3), pytest.approx(0.4), "m")]
    _, entry, curves = _prepare(inputs, tmp_path, phoneset="arpabet")
    assert_lips_close_at_m(curves)


def test_festival_phone_set_labels_read_through_ipa(inputs, tmp_path):
    # Russian "мама" in Festival's msu_ru set: m aa m a; soft mm is still a closure, pau is silence.
    russian = [(0.0, 0.3, "pau"), (0.3, 0.4, "m"), (0.4, 0.6, "aa"), (0.6, 0.7, "mm"), (0.7, 0.9, "a"), (0.9, 1.2, "pau")]
    write_festvox_lab(inputs / "clip.lab", russian)
    out, entry, curves = _prepare(inputs, tmp_path, phoneset="festival:russian")
    assert_lips_close_at_m(curves)
    assert [p.label for p in read_alignment_tsv(out / entry["alignment"])] == ["m", "a", "mʲ", "ɐ"]
    write_festvox_lab(inputs / "clip.lab", russian[:2] + [(0.4, 0.6, "qq")] + russian[3:])
    with pytest.raises(CorpusRejected, match=r"'qq'.*festival_ipa.yaml"):
        _prepare(inputs, tmp_path / "again", phoneset="festival:russian")


def test_tsv_alignment_to_arkit52(inputs, tmp_path):
    (inputs / "clip.tsv").write_text("".join(f"{s}\t{e}\t{lab}\n" for s, e, lab in ARPA))
    out = tmp_path / "corpus"
    prepare_alignments(inputs, out, rig="arkit52", fps=FPS, print_report=False)
    curves = read_curves_csv(out / "curves" / "clip.csv")
    close = curves.values[:, curves.channels.index("mouthClose")]
    assert close[round(0.35 * FPS)] > 0.8 and close[round(0.5 * FPS)] < 0.1


@pytest.mark.parametrize(
    "write, words",
    [
        (lambda d: (d / "clip.tsv").write_text("0.3\t0.5\tM\n0.4\t0.6\tAA\n"), "intervals must not overlap"),
        (lambda d: write_lab(d / "clip.lab", [(0.3, 0.5, "m"), (0.4, 0.6, "aa")]), "intervals overlap"),
        (lambda d: (d / "clip.lab").write_text("#\n0.3 125 pau\nzero 125 m\n"), "line 3 is not 'end_time colour label'"),
        (lambda d: write_festvox_lab(d / "clip.lab", [(0, 0.5, "pau"), (0, 0.4, "m")]), "ends at 0.4 s before it starts at 0.5 s"),
        (lambda d: write_textgrid(d / "clip.TextGrid", [(0.0, 1.2, "")]), "tier 'phones' has no labelled intervals"),
        (lambda d: write_textgrid(d / "clip.TextGrid", [(0.0, 0.3, "M"), (0.3, 0.5, "QX7")]), "unknown phone(s) 'QX7'"),
        (lambda d: write_textgrid(d / "clip.TextGrid", [(0.0, 1.0, "M"), (1.0, 2.0, "AA")]), "audio (1.200 s) is shorter than its alignment (2.000 s)"),
        (lambda d: write_textgrid(d / "clip.TextGrid", ARPA, tier="segs", words=True), "no phone tier (interval tiers: words, segs)"),
    ],
    ids=["overlapping tsv", "overlapping lab", "festvox bad line", "festvox time back", "empty tier", "unknown phones", "audio shorter", "no phone tier"],
)
def test_malformed_alignment_gives_one_line_and_writes_nothing(inputs, tmp_path, write, words):
    write(inputs)
    out = tmp_path / "corpus"
    with pytest.raises(CorpusRejected) as caught:
        prepare_alignments(inputs, out, fps=FPS, print_report=False)
    (line,) = [str(p) for p in caught.value.problems]
    assert "clip." in line and words in line and "; fix: " in line and "\n" not in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_skip_bad_writes_the_good_clips_and_lists_the_bad(inputs, tmp_path):
    write_textgrid(inputs / "clip.TextGrid", ARPA)
    write_tone(inputs / "bad.wav", 1.0)
    (inputs / "bad.tsv").write_text("0.3\t0.5\tM\n0.4\t0.6\tAA\n")
    out = tmp_path / "corpus"
    result = prepare_alignments(inputs, out, fps=FPS, skip_bad=True, print_report=False)
    assert result["clips"] == 1 and len(result["skipped"]) == 1 and "bad.tsv" in result["skipped"][0]
    assert "bad.tsv" in json.loads((out / "report.json").read_text())["prepare"]["skipped"][0]
