"""`voxlm demo` end to end, shrunk to seconds: every file and metric it promises."""

import json

from voxlm.data.manifest import read_manifest
from voxlm.data.synth import DEFAULT_VOICES
from voxlm.demo import DemoOptions, run_demo
from voxlm.evaluate import normalize_text
from voxlm.lexicon import Lexicon
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM


def test_the_demo_leaves_a_model_metrics_an_example_its_lexicon_and_n_gram_text(tmp_path):
    options = DemoOptions(
        output_dir=tmp_path,
        minutes=0.05,
        phase2_minutes=0.02,
        n_train=24,
        n_dev=4,
        n_test=6,
        ctc_only_steps=2,
        beam_size=2,
    )
    metrics = run_demo(options, progress=False)
    promised = ("wer", "cer", "onset_mae_ms", "onset_within_50ms", "confidence_auroc")
    assert set(promised) | {"train_minutes", "total_minutes"} <= set(metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["decoding"]["beam_size"] == 2
    for name in ("example.json", "example.srt", "alignment.png"):
        assert (tmp_path / name).stat().st_size > 0
    VoxLM.from_pretrained(tmp_path / "model")
    lexicon = Lexicon.from_file(tmp_path / "lexicon.txt")
    assert metrics["decoding"]["lexicon_words"] == len(lexicon)
    assert NGramLM.from_file(tmp_path / "ngram.txt").vocabulary == set(lexicon.words)
    assert metrics["decoding"]["ngram_order"] == 3
    test_words = {
        w for u in read_manifest(tmp_path / "data" / "test.jsonl") for w in u.text.split()
    }
    assert all(normalize_text(w) in lexicon for w in test_words)  # the corpus keeps its promise
    test = read_manifest(tmp_path / "data" / "test.jsonl")
    assert set(metrics["wer_by_speaker"]) == {u.speaker for u in test}
    assert metrics["wer_training_voices"] is not None
    assert metrics["wer_unseen_voice"] == metrics["wer_by_speaker"].get(str(len(DEFAULT_VOICES)))
