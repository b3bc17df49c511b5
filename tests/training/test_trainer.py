import dataclasses
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone

from voxlm.config import PhaseConfig, get_config
from voxlm.data.manifest import UtteranceDataset
from voxlm.model import VoxLM
from voxlm.training.checkpoint import CHECKPOINT_FILE, save_best
from voxlm.training.evaluation import dev_metrics, load_items
from voxlm.training.logs import CURVES_FILE, LOG_FILE
from voxlm.training.optimizer import FINAL_LR_FRACTION, lr_factor, set_trainable
from voxlm.training.trainer import train_phase

TEXTS = ["the cat sat", "a dog ran home", "go now", "we sing", "red sun", "big tree fell"]


def small_model(seed: int = 0) -> VoxLM:
    """voxlm-tiny shrunk to ~40 k weights, so a step takes tens of milliseconds on a CPU."""
    tiny = get_config("voxlm-tiny").model
    model = dataclasses.replace(
        tiny,
        audio_encoder_config={
            **tiny.audio_encoder_config,
            "d_model": 32,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "max_source_positions": 100,
        },
        llm_config={
            **tiny.llm_config,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        },
        aligner_dim=16,
    )
    torch.manual_seed(seed)
    return VoxLM.from_config(model)


def write_corpus(directory, texts, seed=0) -> UtteranceDataset:
    """Short tone clips with evenly spaced word timings, and their JSONL manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(texts):
        seconds = 0.4 + 0.1 * (i % 3)
        sf.write(directory / f"{i}.wav", tone(seconds, seed=seed + i), 16000)
        words = text.split()
        step = seconds / len(words)
        timed = [
            {"word": w, "start": round(k * step, 3), "end": round((k + 1) * step, 3)}
            for k, w in enumerate(words)
        ]
        lines.append(
            {
                "audio_filepath": f"{i}.wav",
                "duration": seconds,
                "text": text,
                "words": timed,
                "id": str(i),
            }
        )
    manifest = directory / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return UtteranceDataset.from_manifest(manifest)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """At ~40 k weights, syncing two threads costs more than the maths: 10x slower, measured."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return write_corpus(root / "train", TEXTS), write_corpus(root / "dev", TEXTS[:2], seed=100)


PHASE1 = PhaseConfig(
    epochs=100,
    batch_size=6,
    learning_rate=1e-2,
    warmup_steps=5,
    max_steps=30,
    ce_weight=1.0,
    ctc_weight=0.5,
    train_modules=("encoder", "projector", "llm", "ctc"),
    eval_every=15,
    save_every=15,
)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One 30-step phase-1 run (all 6 clips in every batch) shared by the tests that inspect its outputs."""
    out = tmp_path_factory.mktemp("run")
    model = small_model()
    result = train_phase(
        model, PHASE1, "phase1", corpus[0], corpus[1], out, seed=0, log_every=1, progress=False
    )
    return model, result, out


def test_loss_falls_by_half(trained):
    _, result, _ = trained
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert result.steps == 30 and len(losses) == 30
    # The same 6 clips every step: CE + 0.5 CTC falls from ~7.9 to ~2.9 (a factor ~2.7).
    assert np.mean(losses[-5:]) < losses[0] / 2, losses


def test_outputs_written_and_best_reloads(trained, corpus):
    model, result, out = trained
    assert (out / LOG_FILE).is_file() and (out / CURVES_FILE).stat().st_size > 1000
    assert (out / CHECKPOINT_FILE).is_file()
    header = (out / LOG_FILE).read_text().splitlines()[0].split(",")
    assert {"step", "lr", "loss", "ce", "ctc", "dev_wer", "elapsed_s"} <= set(header)
    dev_rows = [r for r in result.history if "dev_wer" in r]
    assert [r["step"] for r in dev_rows] == [15, 30]
    assert result.best_metric == min(r["dev_wer"] for r in dev_rows)
    best = VoxLM.from_pretrained(result.best_dir)
    metrics = dev_metrics(best, PHASE1, load_items(corpus[1], 200))
    assert metrics["dev_wer"] == pytest.approx(result.best_metric)


def test_resume_matches_uninterrupted(corpus, tmp_path):
    """8 steps straight == 4 steps, a crash, then a resume: same losses, same weights."""
    phase = dataclasses.replace(
        PHASE1, batch_size=2, max_steps=8, eval_every=100, save_every=4, warmup_steps=2
    )
    run = dict(seed=3, log_every=1, progress=False, dev_limit=1)
    straight = small_model()
    expected = train_phase(straight, phase, "p", corpus[0], corpus[1], tmp_path / "a", **run)

    crashing = small_model()
    forward, calls = crashing.forward, []

    def crash_after_four_steps(*args, **kwargs):
        if crashing.training:
            calls.append(1)
            if len(calls) > 4:
                raise KeyboardInterrupt("simulated crash")
        return forward(*args, **kwargs)

    crashing.forward = crash_after_four_steps
    with pytest.raises(KeyboardInterrupt):
        train_phase(crashing, phase, "p", corpus[0], corpus[1], tmp_path / "b", **run)
    resumed_model = small_model(seed=123)  # other random weights: all must come from last.pt
    resumed = train_phase(
        resumed_model, phase, "p", corpus[0], corpus[1], tmp_path / "b", resume=True, **run
    )

    def losses(result):
        return [(r["step"], r["loss"]) for r in result.history if "loss" in r]

    assert resumed.steps == expected.steps == 8
    assert [s for s, _ in losses(resumed)] == list(range(1, 9))
    for (step, got), (_, want) in zip(losses(resumed), losses(expected), strict=True):
        assert abs(got - want) < 1e-5, (step, got, want)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_set_trainable_names_parts():
    model = small_model()
    with pytest.raises(ValueError, match="unknown.*'decoder'"):
        set_trainable(model, ("projector", "decoder"))
    with pytest.raises(ValueError, match="use_lora"):
        set_trainable(model, ("lora",))
    set_trainable(model, ("projector", "ctc"))
    batch = {
        "audio": torch.from_numpy(tone(0.5))[None],
        "audio_lengths": torch.tensor([8000]),
        "texts": ["the cat"],
        "words": None,
        "ids": ["x"],
    }
    model(batch, ce_weight=1.0, ctc_weight=0.5).loss.backward()
    for name, param in model.named_parameters():
        trains = name.startswith(("projector.", "ctc_head."))
        assert param.requires_grad == trains, name
        assert (param.grad is not None) == trains, name


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    factors = [lr_factor(s, warmup_steps=10, total_steps=100) for s in range(100)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert all(a >= b for a, b in zip(factors[10:-1], factors[11:], strict=True))
    assert lr_factor(100, 10, 100) == pytest.approx(FINAL_LR_FRACTION)
    assert math.isclose(max(factors), 1.0)


def test_lr_warms_up_again_where_ctc_only_steps_end():
    plain = [lr_factor(s, warmup_steps=10, total_steps=100) for s in range(100)]
    rewarmed = [lr_factor(s, 10, 100, rewarm_at=40) for s in range(100)]
    assert rewarmed[:40] == plain[:40]
    assert rewarmed[40:50] == pytest.approx([plain[s] * (s - 39) / 10 for s in range(40, 50)])
    assert rewarmed[50:] == plain[50:]


def test_phase2_trains_the_aligner_only_and_selects_by_alignment_loss(corpus, tmp_path):
    phase = PhaseConfig(
        epochs=2,
        batch_size=3,
        learning_rate=1e-2,
        warmup_steps=1,
        ce_weight=0.0,
        alignment_weight=1.0,
        train_modules=("aligner",),
        eval_every=2,
        save_every=100,
    )
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_phase(
        model, phase, "phase2", corpus[0], corpus[1], tmp_path, seed=0, progress=False
    )
    assert result.steps == 4  # 2 epochs of 2 batches
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("aligner.") for k in changed), changed
    dev = [r for r in result.history if "dev_alignment" in r]
    assert dev and not any("dev_wer" in r for r in result.history)
    assert result.best_metric == min(r["dev_alignment"] for r in dev)


def test_unreadable_batches_are_skipped(corpus, tmp_path, caplog):
    data = write_corpus(tmp_path / "data", TEXTS[:3])
    (tmp_path / "data" / "1.wav").write_bytes(b"not audio")
    phase = dataclasses.replace(PHASE1, batch_size=1, max_steps=None, epochs=2, eval_every=100)
    result = train_phase(
        small_model(), phase, "p", data, corpus[1], tmp_path / "out", seed=0, progress=False
    )
    assert result.steps == 4  # 2 epochs x 2 readable clips
    assert "no readable audio" in caplog.text


def test_gradient_accumulation_counts_optimizer_steps(corpus, tmp_path):
    phase = dataclasses.replace(
        PHASE1,
        batch_size=2,
        max_steps=None,
        epochs=2,
        gradient_accumulation_steps=2,
        eval_every=100,
    )
    result = train_phase(
        small_model(),
        phase,
        "p",
        corpus[0],
        corpus[1],
        tmp_path,
        seed=0,
        log_every=1,
        progress=False,
    )
    # 3 batches an epoch: one step of 2 batches, then one of the epoch's last batch.
    assert result.steps == 4
    assert [r["epoch"] for r in result.history if "loss" in r] == [0, 0, 1, 1]


def test_training_a_part_the_config_freezes_is_refused():
    frozen = VoxLM.from_config(dataclasses.replace(small_model().config, freeze_encoder=True))
    with pytest.raises(ValueError, match="freeze_encoder"):
        set_trainable(frozen, ("encoder", "projector"))
    lora = VoxLM.from_config(
        dataclasses.replace(small_model().config, use_lora=True, lora_target_modules=("q_proj",))
    )
    with pytest.raises(ValueError, match="use_lora"):
        set_trainable(lora, ("llm",))


def test_ctc_only_steps_leave_the_llm_untouched_then_train_it(corpus, tmp_path):
    phase = dataclasses.replace(
        PHASE1, max_steps=3, ctc_only_steps=2, alignment_weight=0.2, eval_every=1
    )
    model = small_model()
    llm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    result = train_phase(  # stopped after the two CTC-only steps
        model,
        dataclasses.replace(phase, max_steps=2),
        "p",
        corpus[0],
        corpus[1],
        tmp_path / "a",
        seed=0,
        log_every=1,
        progress=False,
    )
    assert all(torch.equal(v, llm_before[k]) for k, v in model.llm.state_dict().items())
    assert not all(torch.equal(v, encoder_before[k]) for k, v in model.encoder.state_dict().items())
    train_rows = [r for r in result.history if "loss" in r]
    assert [("ctc" in r, "ce" in r, "alignment" in r) for r in train_rows] == [
        (True, False, False)
    ] * 2
    assert not any("dev_wer" in r for r in result.history)  # no transcribing before the LLM trains
    model = small_model()
    result = train_phase(
        model, phase, "p", corpus[0], corpus[1], tmp_path / "b", seed=0, log_every=1, progress=False
    )
    last = [r for r in result.history if "loss" in r][-1]
    assert "ce" in last and "alignment" in last
    assert any("dev_wer" in r for r in result.history)
    assert not all(torch.equal(v, llm_before[k]) for k, v in model.llm.state_dict().items())


def test_ctc_only_steps_need_a_ctc_loss():
    with pytest.raises(ValueError, match="ctc_only_steps"):
        PhaseConfig(ctc_only_steps=10, ctc_weight=0.0)


def test_span_ctc_fades_out_over_its_steps(corpus, tmp_path, monkeypatch):
    weights = []
    forward = VoxLM.forward

    def spy(self, batch, **kwargs):
        weights.append(kwargs.get("span_ctc_weight", 0.0))
        return forward(self, batch, **kwargs)

    monkeypatch.setattr(VoxLM, "forward", spy)
    phase = dataclasses.replace(
        PHASE1, max_steps=5, span_ctc_weight=2.0, span_ctc_steps=4, eval_every=0
    )
    result = train_phase(
        small_model(), phase, "p", corpus[0], corpus[1], tmp_path, seed=0, log_every=1,
        progress=False,
    )  # fmt: skip
    assert weights[:5] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    train_rows = [r for r in result.history if "loss" in r]
    assert ["span_ctc" in r for r in train_rows] == [True] * 4 + [False]
    assert all(math.isfinite(r["span_ctc"]) and r["span_ctc"] > 0 for r in train_rows[:4])


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"span_ctc_weight": 1.0}, "span_ctc_steps is 0"),
        ({"span_ctc_weight": -1.0, "span_ctc_steps": 5}, "must be >= 0"),
    ],
)
def test_span_ctc_settings_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        PhaseConfig(**fields)


def test_span_ctc_without_word_timings_is_reported(corpus, tmp_path, caplog):
    untimed = UtteranceDataset([dataclasses.replace(u, words=None) for u in corpus[0].utterances])
    phase = dataclasses.replace(
        PHASE1, max_steps=1, span_ctc_weight=1.0, span_ctc_steps=10, eval_every=0
    )
    with caplog.at_level("WARNING", logger="voxlm"):
        train_phase(small_model(), phase, "p", untimed, corpus[1], tmp_path, seed=0, progress=False)
    assert "no training utterance has word timings" in caplog.text


def test_the_best_model_directory_is_replaced_whole(tmp_path):
    best = tmp_path / "best"
    best.mkdir()
    (best / "stale.txt").write_text("from an older run")
    save_best(small_model(), best)
    assert not (best / "stale.txt").exists() and (best / "voxlm_config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no .tmp or .old left


def test_a_time_cap_that_cuts_the_step_budget_short_is_reported(corpus, tmp_path, caplog):
    phase = dataclasses.replace(PHASE1, max_steps=1000, max_minutes=1e-9, eval_every=0)
    with caplog.at_level("WARNING", logger="voxlm"):
        result = train_phase(
            small_model(), phase, "p", corpus[0], corpus[1], tmp_path, seed=0, progress=False
        )
    assert result.steps == 1
    assert "stopped training at step 1 of 1000" in caplog.text


def test_the_progress_bar_counts_the_budget_that_ends_the_phase():
    from voxlm.training.checkpoint import TrainState
    from voxlm.training.trainer import BudgetBar

    timed = BudgetBar(
        PhaseConfig(max_minutes=2.0), "p", 10**6, TrainState(), enabled=True
    )  # epochs decide the step total: a million steps, so the bar counts seconds
    assert timed.by_time and timed.bar.total == 120
    state = TrainState(step=7, elapsed=30.0)
    timed.advance(state, loss=1.0)
    assert timed.bar.n == 30
    stepped = BudgetBar(
        PhaseConfig(max_steps=50, max_minutes=2.0), "p", 50, TrainState(), enabled=True
    )
    assert not stepped.by_time and stepped.bar.total == 50
    stepped.advance(state, loss=1.0)
    assert stepped.bar.n == 7
