import io

import pytest
import soundfile as sf
from conftest import tiny_config, tone

from voxlm.decoding import DecodingOptions
from voxlm.model import VoxLM

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from voxlm.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client():
    model = VoxLM.from_config(tiny_config()).eval()
    options = DecodingOptions(min_confidence=0, no_speech_check=False)
    return TestClient(create_app(model, "tiny", options))


def wav_bytes(seconds=1.0):
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds), 16000, format="WAV")
    return buffer.getvalue()


def test_json_is_openai_shaped(client):
    reply = client.post(
        "/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes())}, data={"model": "tiny"}
    )
    assert reply.status_code == 200 and set(reply.json()) == {"text"}


def test_verbose_json_has_word_confidence(client):
    reply = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes(1.2))},
        data={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word"],
            "prompt": "Transcribe the audio.",
        },
    )
    body = reply.json()
    assert reply.status_code == 200 and body["words"] and "segments" not in body
    assert all(0 <= w["confidence"] <= 1 and w["start"] <= w["end"] for w in body["words"])
    assert body["duration"] == pytest.approx(1.2)


def test_srt_is_plain_text(client):
    reply = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes())},
        data={"response_format": "srt"},
    )
    assert reply.status_code == 200 and reply.text.startswith("1\n00:00:")


def test_bad_audio_and_bad_format_are_400s(client):
    bad = client.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"not audio")})
    assert bad.status_code == 400 and "x.wav" in bad.json()["error"]["message"]
    fmt = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes())},
        data={"response_format": "mp3"},
    )
    assert fmt.status_code == 400 and fmt.json()["error"]["param"] == "response_format"


def test_vad_fields_are_form_fields(client):
    ok = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes())},
        data={"vad": "energy", "min_silence_ms": "300"},
    )
    assert ok.status_code == 200 and "text" in ok.json()
    bad = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes())},
        data={"vad_threshold": "1.5"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "vad_threshold"
