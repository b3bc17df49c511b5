import json

import numpy as np
import pytest

from voxlm.data import flite
from voxlm.data.espeak import Espeak, overlay_data
from voxlm.data.librispeech import read_librispeech
from voxlm.data.manifest import read_manifest
from voxlm.data.sentences import VOCABULARY, generate_sentences, sentence_words, split_disjoint
from voxlm.data.synth import (
    ACCENT_FEATURES,
    DEFAULT_HELD_OUT_VOICE,
    DEFAULT_VOICES,
    SPLITS,
    SynthOptions,
    _plan,
    synthesize_corpus,
    voice_exists,
)
from voxlm.data.word_onsets import match_events

SMALL = {"n_train": 16, "n_dev": 4, "n_test": 10, "seed": 5, "noise_prob": 0.5, "reverb_prob": 0.5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    report = synthesize_corpus(SynthOptions(root / "w2", workers=2, **SMALL), progress=False)
    return root, report


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_same_seed_gives_identical_audio_and_timings_with_any_worker_count(corpus):
    root, report = corpus
    again = synthesize_corpus(SynthOptions(root / "w1", workers=1, **SMALL), progress=False)
    assert again.utterances == report.utterances and again.dropped == report.dropped
    first, second = _files(root / "w2"), _files(root / "w1")
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)  # FLAC bytes and manifests


def test_report_counts_match_the_manifests(corpus):
    root, report = corpus
    for split in ("train", "dev", "test"):
        utterances = read_manifest(root / "w2" / f"{split}.jsonl")
        assert len(utterances) == report.utterances[split]
        assert sum(u.duration for u in utterances) == pytest.approx(report.seconds[split], abs=0.01)
    total = sum(report.utterances.values()) + sum(report.dropped.values())
    assert total == SMALL["n_train"] + SMALL["n_dev"] + SMALL["n_test"]


def test_splits_are_disjoint_and_the_held_out_voice_is_test_only(corpus):
    root, report = corpus
    splits = {s: read_manifest(root / "w2" / f"{s}.jsonl") for s in ("train", "dev", "test")}
    texts = {s: {u.text for u in us} for s, us in splits.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    assert sentence_words(texts["test"] | texts["dev"]) <= sentence_words(texts["train"])
    held_out = str(len(DEFAULT_VOICES))
    assert report.voices[held_out] == DEFAULT_HELD_OUT_VOICE
    assert all(u.speaker != held_out for s in ("train", "dev") for u in splits[s])
    assert {u.speaker for u in splits["test"]} - {held_out}  # test also has the other voices


def test_word_timings_are_ordered_and_inside_the_audio(corpus):
    root, _ = corpus
    for split in ("train", "dev", "test"):
        for u in read_manifest(root / "w2" / f"{split}.jsonl"):
            assert [w for w, _, _ in u.words] == u.text.split()
            starts = [s for _, s, _ in u.words]
            assert starts == sorted(starts) and len(set(starts)) == len(starts)
            assert all(0 <= s <= e <= u.duration for _, s, e in u.words)
            assert all(e <= nxt + 1e-6 for (_, _, e), nxt in zip(u.words, starts[1:], strict=False))
            low, high = SynthOptions(root).edge_silence_s  # each edge's silence, drawn in range
            assert low - 0.011 <= u.words[0][1] <= high + 0.011
            assert low - 0.011 <= u.duration - u.words[-1][2] <= high + 0.011
    leads = {u.words[0][1] for u in read_manifest(root / "w2" / "train.jsonl")}
    assert len(leads) > 1  # drawn for each clip, not fixed


def test_librispeech_layout_and_transcripts(corpus):
    root, _ = corpus
    manifest = read_manifest(root / "w2" / "train.jsonl")
    first = json.loads((root / "w2" / "train.jsonl").read_text().splitlines()[0])
    speaker, chapter, _ = first["id"].split("-")
    assert first["audio_filepath"] == f"train/{speaker}/{chapter}/{first['id']}.flac"
    trans = root / "w2" / "train" / speaker / chapter / f"{speaker}-{chapter}.trans.txt"
    assert f"{first['id']} {first['text'].upper()}" in trans.read_text().splitlines()
    from_layout = read_librispeech(root / "w2" / "train")
    assert sorted((u.id, u.text) for u in from_layout) == sorted((u.id, u.text) for u in manifest)
    assert (root / "w2" / "SPEAKERS.TXT").exists()


def test_merged_article_onset_is_recovered_from_phonemes():
    text = "we sat in the autumn"
    words = [(0, 0), (3, 100), (7, 200), (14, 400)]  # no word event for "the" (position 10)
    phonemes = [(7, 200, "I"), (7, 250, "n"), (7, 300, "D"), (7, 350, "I2"), (7, 400, ";")]
    assert match_events(text, words, phonemes) == [0, 100, 200, 300, 400]
    assert match_events(text, words, phonemes[:2]) is None  # cannot place it: never guess
    assert match_events("we sat", [(0, 0)], []) is None


def test_options_are_checked():
    assert voice_exists("en-us") and voice_exists("en+f2")
    assert not voice_exists("en+nonexistent") and not voice_exists("xx-yy")
    for bad in (
        {"voices": ("en", "zz-nope")},
        {"held_out_voice": "en"},
        {"rate_wpm": (200, 100)},
        {"accents": ("h-dropping", "valley-girl")},
        {"accent_prob": 1.5},
    ):
        with pytest.raises(ValueError, match="SynthOptions"):
            SynthOptions("unused", **bad).verify()


# Has every phoneme the accent features replace: h, T, D, word-final t, V, a, aI, eI, oU, and
# unstressed word-final N and i.
ACCENT_PROBE = "the hot thing is walking by the lazy boat at eight and happy cats run up"


@pytest.mark.parametrize("voice", sorted({v.split("+")[0] for v in DEFAULT_VOICES}))
def test_accent_features_replace_phonemes_one_for_one(voice, tmp_path):
    # espeak-ng drops a replacement it does not know without a word: a feature naming a phoneme
    # missing from an English table would delete sounds instead of changing them.
    engine = Espeak(overlay_data(tmp_path))

    def spoken(name):
        events = engine.synthesize(ACCENT_PROBE, name, 170, 50, 0)[2]
        return [phoneme for _, _, phoneme in events if phoneme[:1] not in ("_", ";")]

    plain = spoken(voice)
    for feature, lines in ACCENT_FEATURES.items():
        accented = spoken(engine.accent_voice(voice, (feature,)))
        if voice == "en":
            assert accented != plain, f"{feature} changed nothing"
        if any(line.endswith("NULL") for line in lines):
            assert len(accented) < len(plain), f"{feature} in {voice}"
        else:
            assert len(accented) == len(plain), f"{feature} lost phonemes in {voice}"


def test_accents_are_drawn_for_training_utterances_only():
    sentences = {split: [f"{split} sentence {i}" for i in range(400)] for split in SPLITS}
    jobs = _plan(SynthOptions("unused", accent_prob=0.5), sentences)
    accented = {split: sum(bool(j.accent) for j in jobs if j.split == split) for split in SPLITS}
    assert accented["dev"] == accented["test"] == 0
    assert 150 < accented["train"] < 250  # binomial(400, 0.5): mean 200, sd 10
    assert all(
        1 <= len(j.accent) <= 3 and set(j.accent) <= set(ACCENT_FEATURES) for j in jobs if j.accent
    )
    plain = _plan(SynthOptions("unused", accent_prob=0.0), sentences)
    assert not any(j.accent for j in plain)
    # The draw comes after rate and pitch: switching accents off leaves the voices as they were.
    assert [(j.voice, j.rate, j.pitch) for j in plain] == [(j.voice, j.rate, j.pitch) for j in jobs]


def test_sentences_are_deterministic_unique_and_in_range():
    assert len(VOCABULARY) >= 1000
    sentences = generate_sentences(500, seed=1, min_words=3, max_words=15)
    assert sentences == generate_sentences(500, seed=1, min_words=3, max_words=15)
    assert sentences != generate_sentences(500, seed=2, min_words=3, max_words=15)
    assert len(set(sentences)) == 500
    assert all(3 <= len(s.split()) <= 15 for s in sentences)
    assert sentence_words(sentences) <= VOCABULARY
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyz' ") for s in sentences)


def test_restricted_vocabulary_and_disjoint_split():
    train = generate_sentences(30, seed=0)
    held_out = generate_sentences(20, seed=1, vocabulary=sentence_words(train), exclude=train)
    assert sentence_words(held_out) <= sentence_words(train) and not set(held_out) & set(train)
    pool = generate_sentences(400, seed=3)
    a, b, c = split_disjoint(pool, 300, 10, 10, seed=0)
    assert len(a) == 300 and len(b) == len(c) == 10 and not (set(a) & set(b) | set(a) & set(c))
    assert sentence_words(b + c) <= sentence_words(a)
    with pytest.raises(ValueError, match="unique sentences"):
        split_disjoint(pool[:5], 4, 1, 1, seed=0)


FLITE_VOICES = tuple(f"flite:{name}" for name in flite.VOICES)
needs_flite = pytest.mark.skipif(
    not all(voice_exists(v) for v in FLITE_VOICES), reason="Debian's flite is not installed"
)


@needs_flite
def test_flite_voices_join_a_corpus_reproducibly_with_exact_word_spans(tmp_path):
    options = {"n_train": 12, "n_dev": 0, "n_test": 4, "seed": 3, "held_out_voice": None}
    voices = ("en-us", *FLITE_VOICES)
    made = [
        synthesize_corpus(SynthOptions(tmp_path / str(w), voices=voices, workers=w, **options))
        for w in (1, 2)
    ]
    assert made[0].voices["1"] == "flite:slt" and made[0].utterances == made[1].utterances
    first, second = _files(tmp_path / "1"), _files(tmp_path / "2")
    assert first == second  # Flite's noise source is seeded per utterance
    utterances = read_manifest(tmp_path / "1" / "train.jsonl")
    assert {u.speaker for u in utterances} >= {"1", "2", "3", "4"}
    for u in utterances:
        assert [w for w, _, _ in u.words] == u.text.split()
        assert all(0 <= s < e <= u.duration for _, s, e in u.words)


@needs_flite
def test_flite_word_times_follow_its_rate_and_pitch_changes_the_sound():
    text = "mary rolled the barrel over the hill"
    slow, rate, words = flite.synthesize(text, "flite:slt", stretch=1.5, f0_scale=1.0, seed=1)
    fast, _, fast_words = flite.synthesize(text, "flite:slt", stretch=1.0, f0_scale=1.0, seed=1)
    high, _, _ = flite.synthesize(text, "flite:slt", stretch=1.0, f0_scale=1.3, seed=1)
    assert rate == 16_000 and len(words) == len(fast_words) == 7
    assert all(s < e for s, e in words) and words == sorted(words)
    assert len(slow) / len(fast) == pytest.approx(1.5, rel=0.1)
    assert words[-1][1] / fast_words[-1][1] == pytest.approx(1.5, rel=0.1)
    assert len(high) == len(fast) and not np.array_equal(high, fast)


def test_an_unknown_flite_voice_is_named():
    assert not voice_exists("flite:nobody")
    with pytest.raises(ValueError, match="flite:nobody"):
        SynthOptions("out", voices=("en", "flite:nobody")).verify()
