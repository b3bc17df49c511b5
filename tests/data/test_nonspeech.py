import numpy as np
import pytest

from voxlm.audio import SAMPLE_RATE
from voxlm.data.nonspeech import NON_SPEECH_KINDS, at_dbfs, non_speech


def dbfs(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_non_speech_signals_have_their_length_and_level():
    signals = non_speech(2.5)
    assert tuple(signals) == NON_SPEECH_KINDS
    for name, x in signals.items():
        assert x.dtype == np.float32 and len(x) == int(2.5 * SAMPLE_RATE), name
    assert not signals["silence"].any()
    levels = {name: dbfs(signals[name]) for name in ("hum", "white", "pink", "music")}
    assert levels == pytest.approx({"hum": -40, "white": -30, "pink": -30, "music": -20}, abs=0.01)
    assert all(np.abs(x).max() < 1 for x in signals.values())  # nothing clips
    assert np.array_equal(non_speech(2.5)["pink"], signals["pink"])  # deterministic


def test_at_dbfs_and_bad_input():
    assert dbfs(at_dbfs(np.ones(100), -6)) == pytest.approx(-6)
    with pytest.raises(ValueError, match="silence"):
        at_dbfs(np.zeros(10), -20)
    with pytest.raises(ValueError, match="seconds"):
        non_speech(0)
