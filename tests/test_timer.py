import time

from conftest import tone

from voxlm import DecodingOptions, VoxLM
from voxlm.timer import StageTimer, count, stage


def test_a_stage_excludes_the_stages_inside_it():
    timer = StageTimer()
    with timer.listening():
        with stage("outer"):
            time.sleep(0.02)
            with stage("inner"):
                time.sleep(0.05)
        count("tokens", 3)
        count("tokens", 2)
    assert 0.015 < timer.seconds["outer"] < 0.045
    assert timer.seconds["inner"] >= 0.045
    assert timer.counts["tokens"] == 5


def test_stages_are_not_timed_without_a_listening_timer():
    timer = StageTimer()
    with stage("outer"):
        count("tokens", 1)
    with timer.listening():
        pass
    with stage("after"):
        pass
    assert not timer.seconds and not timer.counts


def test_transcribe_marks_its_stages():
    model = VoxLM.from_pretrained("voxlm-tiny")
    options = DecodingOptions(
        vad="energy",
        no_speech_check=False,
        min_confidence=0,
        max_repeats=0,
        ignore_eos=True,
        max_tokens_per_second=4,
    )
    with StageTimer().listening() as timer:
        model.transcribe([tone(1.0), tone(2.0)], sample_rate=16000, options=options)
    assert set(timer.seconds) == {
        "audio decode",
        "speech detection",
        "encoder",
        "projector",
        "prefill",
        "decode",
        "aligner pass",
        "DTW",
        "words + confidence",
    }
    assert timer.counts["tokens"] == (4 + 8) + (8 + 8)  # each window's whole budget
