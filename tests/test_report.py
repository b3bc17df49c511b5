"""The evaluation report's files and printed table, and `voxlm evaluate` writing them."""

import dataclasses
import json
import re

import pytest
import soundfile as sf
from conftest import tone

from voxlm.cli import main
from voxlm.data.manifest import Utterance, write_manifest
from voxlm.decoding import Transcript, Word
from voxlm.evaluate import EvaluationReport, NonSpeechResult, score
from voxlm.metrics import NORMALIZERS
from voxlm.report import (
    _NORMALIZER_TEXT,
    METRICS_FILE,
    RELIABILITY_PLOT,
    REPORT_FILE,
    SPEAKER_PLOT,
    report_markdown,
    speaker_order,
    stop_shares,
    summary_table,
    write_report,
)


def a_report() -> EvaluationReport:
    """Two speakers, one wrong word, one utterance stopped by the repetition rule."""
    timed = (("the", 0.0, 0.2), ("cat", 0.3, 0.5), ("sat", 0.6, 0.9))
    utts = [
        Utterance("u1", "1.wav", "The cat sat.", 1.0, timed, speaker="7"),
        Utterance("u2", "2.wav", "a dog", 1.0, speaker="12"),
    ]
    words = (Word("the", 0.01, 0.2, 0.9), Word("cat", 0.33, 0.5, 0.8), Word("mat", 0.6, 0.9, 0.3))
    hyps = [
        Transcript("the cat mat", words, 1.0, "eos"),
        Transcript(
            "a dog", (Word("a", 0.0, 0.1, 0.7), Word("dog", 0.2, 0.5, 0.95)), 1.0, "repetition"
        ),
    ]
    report = score(utts, hyps, decode_seconds=0.5)
    nonspeech = (NonSpeechResult("silence", 5.0, 0, 0.0, "no_speech", ""),)
    return dataclasses.replace(report, nonspeech=nonspeech, peak_rss_mb=512.0)


def test_every_normaliser_is_described():
    assert set(_NORMALIZER_TEXT) == set(NORMALIZERS)


def test_stop_shares_and_speaker_order():
    assert stop_shares(a_report()) == {"eos": 0.5, "repetition": 0.5}
    assert speaker_order(["12", "2", "spk10", "spk2", "a"]) == ["2", "12", "a", "spk2", "spk10"]


def test_write_report_leaves_metrics_markdown_and_the_plots_it_links(tmp_path):
    report = a_report()
    run = {"model": "voxlm-tiny", "data": "test.jsonl", "decoding": {"beam_size": 1}}
    path = write_report(report, tmp_path / "out", run)
    out = tmp_path / "out"
    assert path == out / REPORT_FILE
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["run"] == run and metrics["wer"] == pytest.approx(1 / 5)
    assert metrics["worst_utterances"][0]["id"] == "u1" and len(metrics["reliability"]) == 5
    markdown = path.read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert sorted(links) == sorted([RELIABILITY_PLOT, SPEAKER_PLOT])
    assert all((out / link).stat().st_size > 0 for link in links)
    assert "Normaliser `english`" in markdown and "numbers written in words" in markdown
    assert "| u1 | 7 | 33.3% | 1/3 | the cat sat | the cat mat |" in markdown
    assert markdown.index("| 7 | 33.3% |") < markdown.index("| 12 | 0.0% |")  # natural order
    assert "shorter than the 60 s default" in markdown  # the non-speech set ran 5 s
    assert "| repetition | 1 | 50.0% |" in markdown


def test_markdown_without_word_times_or_non_speech():
    utts = [Utterance("u", "u.wav", "hello", 1.0)]
    report = score(utts, [Transcript("hello", (Word("hello", 0.0, 0.5, 0.9),), 1.0, "eos")])
    markdown = report_markdown(report, {})
    assert "No utterance has reference word times" in markdown
    assert "not run" in markdown and "No utterance has an error." in markdown


def test_summary_table_has_one_row_per_metric_group():
    table = summary_table(a_report())
    assert re.search(r"WER / CER \(english\) +20\.0% / ", table)
    for row in ("worst speaker", "onset MAE / median", "offsets within 20/50/100 ms",
                "word segment F1 @ 50 ms", "confidence AUROC / ECE / Brier",
                "non-speech words per minute", "stopped by", "RTFx", "peak memory"):  # fmt: skip
        assert row in table, row
    assert "RSS 512 MiB, CUDA n/a" in table and "silence 0.0 (5 s each)" in table


def test_voxlm_evaluate_writes_the_report(tmp_path, capsys):
    utts = []
    for i in range(2):
        sf.write(tmp_path / f"{i}.wav", tone(1.0, seed=i), 16000)
        words = (("hello", 0.1, 0.4), ("world", 0.5, 0.9))
        utts.append(
            Utterance(str(i), str(tmp_path / f"{i}.wav"), "hello world", 1.0, words, str(i))
        )
    write_manifest(tmp_path / "test.jsonl", utts)
    out, json_file = tmp_path / "report", tmp_path / "metrics-copy.json"
    flags = ["--model", "voxlm-tiny", "--nonspeech-seconds", "0.5", "--max-tokens-per-second", "8"]
    code = main(
        ["evaluate", "--data", str(tmp_path / "test.jsonl"), *flags, "--vad", "energy",
         "--output-dir", str(out), "--output", str(json_file), "--normalizer", "plain",
         "--quantize", "int8"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "WER / CER (plain)" in printed and "(0.5 s each)" in printed
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert json.loads(json_file.read_text()) == metrics
    assert metrics["n_utterances"] == 2 and metrics["run"]["model"] == "voxlm-tiny"
    assert metrics["run"]["quantize"] == "int8"
    assert [n["kind"] for n in metrics["nonspeech"]] == ["silence", "hum", "white", "pink", "music"]
    assert metrics["run"]["decoding"]["max_tokens_per_second"] == 8
    assert (out / REPORT_FILE).is_file()


def test_voxlm_evaluate_takes_the_data_once(tmp_path, capsys):
    manifest = str(tmp_path / "test.jsonl")
    assert main(["evaluate", manifest, "--data", manifest, "--model", "voxlm-tiny"]) == 2
    assert main(["evaluate", "--model", "voxlm-tiny"]) == 2
    assert "--data" in capsys.readouterr().err
