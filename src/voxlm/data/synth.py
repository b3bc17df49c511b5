"""Synthetic speech with exact word timings, from espeak-ng and Flite, in LibriSpeech layout.

Every utterance gets each word's onset from the synthesiser (espeak-ng's word events, Flite's
utterance structure), so the whole pipeline
(training, alignment, evaluation of timestamps) can run and be measured offline.

Output under `output_dir`:
    <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac   16 kHz 16-bit FLAC
    <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    "<id> UPPERCASE TEXT" lines
    <split>.jsonl                                                manifest (see data/manifest.py)
    SPEAKERS.TXT                                                 speaker id -> voice
Speaker = index of the voice in `voices` (the held-out voice comes last, test only); chapter =
split (train 1, dev 2, test 3). Splits have disjoint sentences.

Voices are espeak-ng voice names or ``flite:<voice>`` (`data/flite.py`). The parts, one module
each: the espeak-ng and Flite bindings (`data/espeak.py`, `data/flite.py`), word timings from
espeak-ng's events (`data/word_onsets.py`), accent features (`data/accents.py`), room and noise
(`data/effects.py`). This module plans the corpus and runs them:
- espeak-ng keeps synthesis state between utterances inside one process, so utterances are
  synthesised in fixed shards, each in a fresh worker process: the same seed gives identical
  audio whatever the number of workers.
- Onsets are scaled by 320/441 (22,050 Hz to 16 kHz) along with the audio. An utterance whose
  word events do not match its words is synthesised again at another rate, then dropped and
  counted, never misaligned.
- A share of espeak-ng training utterances (`accent_prob`) is spoken with one to three
  features of English accents (`ACCENT_FEATURES`). Dev and test are spoken as the voices
  speak, so scores measure the plain voices.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from voxlm.audio import SAMPLE_RATE
from voxlm.data import espeak, flite
from voxlm.data.accents import ACCENT_FEATURES
from voxlm.data.effects import augment
from voxlm.data.espeak import ESPEAK_SAMPLE_RATE, Espeak, overlay_data
from voxlm.data.manifest import Utterance, write_manifest
from voxlm.data.sentences import generate_sentences, sentence_words, split_disjoint
from voxlm.data.word_onsets import match_events, voiced_frames, word_spans
from voxlm.results import WordTiming

__all__ = [
    "ACCENT_FEATURES",
    "DEFAULT_HELD_OUT_VOICE",
    "DEFAULT_VOICES",
    "SPLITS",
    "SynthOptions",
    "SynthReport",
    "read_text_file",
    "spoken_text",
    "synthesize_corpus",
    "voice_exists",
]

SPLITS = ("train", "dev", "test")
CHAPTERS = {"train": 1, "dev": 2, "test": 3}
SHARD_SIZE = 128  # utterances per fresh worker process: fixed, so output never depends on workers

DEFAULT_VOICES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-us-nyc",
    "en-029",
    "en+m3",
    "en+f2",
    "en-us+f4",
    "en-gb-x-rp+m5",
    "en+klatt",
)
DEFAULT_HELD_OUT_VOICE = "en-gb-x-gbcwmd"
ESPEAK_DEFAULT_WPM = 175  # espeak-ng's rate at Flite's duration stretch 1.0


def voice_exists(voice: str) -> bool:
    """True when the voice can speak here: an espeak-ng voice, or an installed Flite voice."""
    return flite.voice_exists(voice) if flite.is_flite(voice) else espeak.voice_exists(voice)


@dataclass(frozen=True)
class SynthOptions:
    """What `synthesize_corpus` makes. Ranges are inclusive (low, high) pairs."""

    output_dir: str | Path
    n_train: int = 5000
    n_dev: int = 200
    n_test: int = 500
    seed: int = 0
    voices: tuple[str, ...] = DEFAULT_VOICES
    held_out_voice: str | None = DEFAULT_HELD_OUT_VOICE  # test-only voice; None for none
    rate_wpm: tuple[int, int] = (140, 210)  # Flite: its duration stretch is 175 / rate
    pitch: tuple[int, int] = (35, 70)  # espeak-ng pitch, 0-100 (Flite: 50 = its own, 1% a step)
    noise_prob: float = 0.3  # chance of added white or pink noise
    noise_snr_db: tuple[float, float] = (10.0, 30.0)
    reverb_prob: float = 0.2  # chance of a synthetic room (exponentially decaying noise IR)
    reverb_rt60_s: tuple[float, float] = (0.1, 0.5)
    accent_prob: float = 0.5  # chance a training utterance is spoken with accent features
    accents: tuple[str, ...] = tuple(ACCENT_FEATURES)  # the features drawn from, 1 to 3 each
    min_words: int = 3
    max_words: int = 15
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    text_file: str | Path | None = None  # one sentence per line instead of the built-in grammar
    # Silence before the first and after the last word, drawn for each edge of each clip: a
    # model that heard one fixed edge writes worse on windows a speech detector cut.
    edge_silence_s: tuple[float, float] = (0.1, 0.45)
    voiced_db: float = 40.0  # frames within this many dB of the loudest frame count as voiced
    max_attempts: int = 3  # syntheses (at different rates) before an utterance is dropped

    @property
    def held_out_speaker(self) -> str | None:
        """The speaker id of the held-out voice: it comes after the training voices."""
        return str(len(self.voices)) if self.held_out_voice else None

    def verify(self) -> None:
        """Raise ValueError naming the first invalid field."""
        for name in ("n_train", "n_dev", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"SynthOptions.{name} must be >= 0, got {getattr(self, name)}")
        if not self.voices:
            raise ValueError("SynthOptions.voices must name at least one voice")
        low, high = self.edge_silence_s
        if not 0 <= low <= high:
            raise ValueError(
                f"SynthOptions.edge_silence_s must be (low, high) with 0 <= low <= high, "
                f"got {self.edge_silence_s}"
            )
        if self.held_out_voice in self.voices:
            raise ValueError(f"SynthOptions.held_out_voice {self.held_out_voice!r} is in voices")
        for voice in (*self.voices, *([self.held_out_voice] if self.held_out_voice else [])):
            if not voice_exists(voice):
                where = "Flite (Debian package `flite`)" if flite.is_flite(voice) else "espeak-ng"
                raise ValueError(f"SynthOptions: {where} has no voice {voice!r}")
        for name in ("rate_wpm", "pitch", "noise_snr_db", "reverb_rt60_s"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"SynthOptions.{name} needs low <= high, got {(low, high)}")
        if not (self.rate_wpm[0] >= 80 and self.rate_wpm[1] <= 450):
            raise ValueError(f"SynthOptions.rate_wpm must lie in 80..450, got {self.rate_wpm}")
        if not (self.pitch[0] >= 0 and self.pitch[1] <= 100):
            raise ValueError(f"SynthOptions.pitch must lie in 0..100, got {self.pitch}")
        unknown = sorted(set(self.accents) - set(ACCENT_FEATURES))
        if unknown:
            raise ValueError(
                f"SynthOptions.accents: unknown features {unknown}; known: {sorted(ACCENT_FEATURES)}"
            )
        for name in ("noise_prob", "reverb_prob", "accent_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SynthOptions.{name} must be in [0, 1]")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError("SynthOptions needs 1 <= min_words <= max_words")
        if self.workers < 1 or self.max_attempts < 1:
            raise ValueError("SynthOptions.workers and max_attempts must be >= 1")


@dataclass(frozen=True)
class SynthReport:
    """What was made: utterances and audio seconds per split, and what was dropped and why."""

    output_dir: str
    utterances: dict[str, int]
    seconds: dict[str, float]
    dropped: dict[str, int]  # reason -> count
    dropped_ids: tuple[str, ...]
    voices: dict[str, str]  # speaker id -> voice
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Job:
    split: str
    utt_id: str
    path: str  # absolute .flac path
    text: str
    voice: str
    speaker: str
    rate: int
    pitch: int
    seed: int
    accent: tuple[str, ...] = ()  # ACCENT_FEATURES names


def _speak_espeak(
    job: _Job, engine: Espeak, rng: np.random.Generator, options: SynthOptions
) -> tuple[np.ndarray, int, list[int]] | None:
    """espeak-ng's samples, rate and word onsets; another rate when its events do not match."""
    voice = engine.accent_voice(job.voice, job.accent)
    rate = job.rate
    for attempt in range(options.max_attempts):
        if attempt:
            rate = int(rng.integers(options.rate_wpm[0], options.rate_wpm[1] + 1))
        pcm, events, phonemes = engine.synthesize(
            job.text, voice, rate, job.pitch, job.seed + attempt
        )
        onsets = match_events(job.text, events, phonemes)
        if onsets is not None and len(pcm):
            return pcm, ESPEAK_SAMPLE_RATE, onsets
    return None


def _speak_flite(job: _Job) -> tuple[np.ndarray, int, list[int]] | None:
    """Flite's samples, rate and word onsets at the job's rate and pitch (50 = the voice's own)."""
    pcm, rate, words = flite.synthesize(
        job.text,
        job.voice,
        stretch=ESPEAK_DEFAULT_WPM / job.rate,
        f0_scale=1 + (job.pitch - 50) / 100,
        seed=job.seed,
    )
    if len(words) != len(job.text.split()) or not len(pcm):
        return None
    return pcm, rate, [start for start, _ in words]


def _render(job: _Job, engine: Espeak | None, options: SynthOptions) -> dict[str, Any]:
    """Synthesise one job and write its FLAC; returns its manifest fields or a drop reason."""
    rng = np.random.default_rng(job.seed)
    if flite.is_flite(job.voice):
        spoken = _speak_flite(job)
    else:
        assert engine is not None
        spoken = _speak_espeak(job, engine, rng, options)
    if spoken is None:
        return {"id": job.utt_id, "dropped": "word events did not match the words"}
    pcm, rate, onsets = spoken
    audio = pcm.astype(np.float32) / 32768
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    onsets16 = np.minimum(np.asarray(onsets) * SAMPLE_RATE // rate, len(audio))
    voiced = voiced_frames(audio, options.voiced_db)
    spans = word_spans(onsets16, len(audio), voiced)
    # Exactly `lead` silence before the first word and `trail` after the last: pad, then cut.
    lead, trail = (round(rng.uniform(*options.edge_silence_s) * SAMPLE_RATE) for _ in range(2))
    padded = np.pad(audio.astype(np.float64), (lead, trail))
    cut_start = spans[0][0]  # = first word start - lead, in padded samples
    audio = augment(
        padded[cut_start : spans[-1][1] + lead + trail],
        rng,
        reverb_prob=options.reverb_prob,
        reverb_rt60_s=options.reverb_rt60_s,
        noise_prob=options.noise_prob,
        noise_snr_db=options.noise_snr_db,
    )
    audio *= rng.uniform(0.3, 0.95) / (np.abs(audio).max() + 1e-9)  # level variety, no clipping
    pcm16 = np.round(audio * 32767).astype(np.int16)
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, pcm16, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    words = [
        WordTiming(
            word,
            round((s + lead - cut_start) / SAMPLE_RATE, 3),
            round((e + lead - cut_start) / SAMPLE_RATE, 3),
        )
        for word, (s, e) in zip(job.text.split(), spans, strict=True)
    ]
    return {"id": job.utt_id, "duration": len(pcm16) / SAMPLE_RATE, "words": words}


def _synthesize_shard(task: tuple[list[_Job], SynthOptions]) -> list[dict[str, Any]]:
    """Runs in a fresh process (see module docstring): one espeak-ng instance per shard."""
    jobs, options = task
    with tempfile.TemporaryDirectory(prefix="voxlm-espeak-") as tmp:
        engine = None
        if not all(flite.is_flite(job.voice) for job in jobs):
            engine = Espeak(overlay_data(Path(tmp)) if any(job.accent for job in jobs) else None)
        return [_render(job, engine, options) for job in jobs]


def read_text_file(path: str | Path) -> list[str]:
    """Sentences from a file, one per line: lowercased, punctuation removed, duplicates dropped.

    Digits raise ValueError (file:line): espeak-ng would speak "3" as "three", and the transcript
    must be what is spoken.
    """
    sentences = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if re.search(r"\d", line):
                raise ValueError(f"{path}:{number}: spell out numbers as words, got {line!r}")
            text = spoken_text(line)
            if text:
                sentences.append(text)
    return list(dict.fromkeys(sentences))


def spoken_text(line: str) -> str:
    """A line of written text as a transcript: lowercase letters, apostrophes and single
    spaces; "" where nothing is left."""
    text = " ".join(re.sub(r"[^a-z' ]+", " ", line.lower()).replace(" '", " ").split())
    return text if text.strip("' ") else ""


def _split_sentences(options: SynthOptions) -> dict[str, list[str]]:
    """Disjoint sentences per split; dev/test use only words that occur in train."""
    if options.text_file is not None:
        train, dev, test = split_disjoint(
            read_text_file(options.text_file),
            options.n_train,
            options.n_dev,
            options.n_test,
            options.seed,
        )
        return {"train": train, "dev": dev, "test": test}
    lengths = (options.min_words, options.max_words)
    train = generate_sentences(options.n_train, options.seed, *lengths)
    held_out = generate_sentences(
        options.n_dev + options.n_test,
        options.seed + 1,
        *lengths,
        vocabulary=sentence_words(train),
        exclude=train,
    )
    return {"train": train, "dev": held_out[: options.n_dev], "test": held_out[options.n_dev :]}


def _plan(options: SynthOptions, sentences: dict[str, list[str]]) -> list[_Job]:
    """One job per sentence, with voice, rate, pitch and a seed drawn per utterance."""
    root = Path(options.output_dir).resolve()
    voices = list(options.voices)
    jobs = []
    for split_index, split in enumerate(SPLITS):
        allowed = list(range(len(voices)))
        if split == "test" and options.held_out_voice:
            allowed.append(len(voices))
        counters: Counter[int] = Counter()
        for i, text in enumerate(sentences[split]):
            seq = np.random.SeedSequence([options.seed, split_index, i])
            rng = np.random.default_rng(seq)
            speaker = int(rng.choice(allowed))
            chapter = CHAPTERS[split]
            utt_id = f"{speaker}-{chapter}-{counters[speaker]:04d}"
            counters[speaker] += 1
            rate = int(rng.integers(options.rate_wpm[0], options.rate_wpm[1] + 1))
            pitch = int(rng.integers(options.pitch[0], options.pitch[1] + 1))
            accent: tuple[str, ...] = ()
            voice = (voices + [options.held_out_voice])[speaker]
            if (
                split == "train"
                and options.accents
                and rng.random() < options.accent_prob
                and not flite.is_flite(voice)
            ):
                k = int(rng.integers(1, min(3, len(options.accents)) + 1))
                accent = tuple(sorted(str(f) for f in rng.choice(options.accents, k, False)))
            jobs.append(
                _Job(
                    split=split,
                    utt_id=utt_id,
                    path=str(root / split / str(speaker) / str(chapter) / f"{utt_id}.flac"),
                    text=text,
                    voice=voice,
                    speaker=str(speaker),
                    rate=rate,
                    pitch=pitch,
                    seed=int(seq.generate_state(1)[0]),
                    accent=accent,
                )
            )
    return jobs


def _write_transcripts(root: Path, utterances: dict[str, list[Utterance]]) -> None:
    """LibriSpeech `<speaker>-<chapter>.trans.txt` files, ids sorted."""
    groups: dict[Path, list[str]] = {}
    for split, items in utterances.items():
        for u in items:
            speaker, chapter, _ = u.id.split("-")
            folder = root / split / speaker / chapter
            groups.setdefault(folder / f"{speaker}-{chapter}.trans.txt", []).append(
                f"{u.id} {u.text.upper()}"
            )
    for path, lines in groups.items():
        path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")


def synthesize_corpus(options: SynthOptions, progress: bool = True) -> SynthReport:
    """Synthesise train/dev/test (see the module docstring for the layout); reproducible by seed.

    Workers start through multiprocessing's forkserver, so a script calling this needs the
    usual `if __name__ == "__main__":` guard.
    """
    options.verify()
    began = time.perf_counter()
    root = Path(options.output_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    jobs = _plan(options, _split_sentences(options))
    shards = [(jobs[i : i + SHARD_SIZE], options) for i in range(0, len(jobs), SHARD_SIZE)]
    # forkserver: each shard's process starts from a clean interpreter (no espeak-ng state from
    # the caller) and maxtasksperchild=1 gives every shard a fresh library.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    results: list[dict[str, Any]] = []
    with (
        context.Pool(min(options.workers, max(1, len(shards))), maxtasksperchild=1) as pool,
        tqdm(total=len(jobs), desc="synth", unit="utt", disable=not progress) as bar,
    ):
        for shard_results in pool.imap(_synthesize_shard, shards):
            results += shard_results
            bar.update(len(shard_results))
    return _finish(options, root, jobs, results, time.perf_counter() - began)


def _finish(
    options: SynthOptions,
    root: Path,
    jobs: list[_Job],
    results: list[dict[str, Any]],
    wall_seconds: float,
) -> SynthReport:
    """Write manifests, transcripts and SPEAKERS.TXT; count what was made and dropped."""
    utterances: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    dropped: Counter[str] = Counter()
    dropped_ids = []
    for job, result in zip(jobs, results, strict=True):
        if "dropped" in result:
            dropped[result["dropped"]] += 1
            dropped_ids.append(job.utt_id)
            continue
        utterances[job.split].append(
            Utterance(
                id=job.utt_id,
                audio_path=job.path,
                text=job.text,
                duration=result["duration"],
                words=tuple(result["words"]),
                speaker=job.speaker,
            )
        )
    for split, items in utterances.items():
        write_manifest(root / f"{split}.jsonl", items)
    _write_transcripts(root, utterances)
    names = list(options.voices) + ([options.held_out_voice] if options.held_out_voice else [])
    voices = {str(i): name for i, name in enumerate(names)}
    speakers = [
        f"{i:<4}| {name:<20}| {'test' if str(i) == options.held_out_speaker else 'all'}"
        for i, name in enumerate(names)
    ]
    (root / "SPEAKERS.TXT").write_text(
        "; ID | VOICE | SPLITS\n" + "\n".join(speakers) + "\n", encoding="utf-8"
    )
    return SynthReport(
        output_dir=str(root),
        utterances={s: len(u) for s, u in utterances.items()},
        seconds={s: round(sum(x.duration for x in u), 3) for s, u in utterances.items()},
        dropped=dict(dropped),
        dropped_ids=tuple(dropped_ids),
        voices=voices,
        wall_seconds=round(wall_seconds, 3),
    )
