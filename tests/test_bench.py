"""voxlm bench: the CI run (--quick) times every stage, and its options are checked."""

import json

import pytest

from voxlm.bench.stages import STAGES, BenchOptions, fixed_work
from voxlm.cli import main
from voxlm.decoding import DecodingOptions


def test_quick_bench_times_every_stage(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    stages = {row["name"]: row for row in report["stages"]}
    assert list(stages) == [*STAGES, "other"]
    for name in STAGES:
        assert stages[name]["seconds_per_clip"] > 0, name
    assert sum(row["share"] for row in report["stages"]) == pytest.approx(1.0)
    assert report["clips"] == 2 and report["seconds"] == 2.0
    assert report["tokens_per_clip"] == 4 * 2 + 8  # the fixed work: 4 per second, plus 8
    assert report["rtfx"] > 0 and report["ms_per_token"] > 0 and report["peak_rss_mib"] > 0
    assert report["peers"] and all({"what", "baseline", "ratio"} <= set(r) for r in report["peers"])
    printed = capsys.readouterr().out
    assert "words + confidence" in printed and "RTFx" in printed


def test_int8_bench_runs(tmp_path):
    options = ["--clips", "1", "--seconds", "1", "--runs", "1", "--warmup", "1"]
    out = tmp_path / "bench.json"
    assert (
        main(["bench", *options, "--quantize", "int8", "--vad", "energy", "--json", str(out)]) == 0
    )
    assert json.loads(out.read_text())["quantize"] == "int8"


def test_fixed_work_turns_off_what_would_end_decoding_early():
    options = fixed_work(DecodingOptions(beam_size=2), tokens_per_second=3)
    assert options.ignore_eos and options.max_tokens_per_second == 3 and options.beam_size == 2
    assert options.min_confidence == 0 and options.max_repeats == 0 and not options.no_speech_check


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "d", "variant": "voxlm-tiny"}, "not both"),
        ({"model": "d", "random_weights": True}, "--random-weights"),
        ({"dtype": "float64"}, "dtype"),
        ({"quantize": "int4"}, "quantize"),
        ({"clips": 0}, "clips"),
    ],
)
def test_bad_options_name_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        BenchOptions(**values)
