"""What a trained model's character head spells on its own, read greedily and with a lexicon.

The LLM of a ``model.ctc_units: characters`` model reads the letters its head hears, yet on
real speech the LLM's transcript can be far worse than the letters (BENCHMARKS.md, "voxlm-smol
reads its own letters"). This measures the head read without the LLM writing, on any manifest:

1. greedy: the frame-wise argmax (``voxlm.spelling.read_spelling``);
2. lexicon: ``voxlm.decoding.letters.lexicon_beam``, a CTC prefix beam search over the head's
   characters in which every word must be in a word list (most frequent first) and each
   finished word adds ``alpha * log p(word) + beta``, p a Zipf prior over the list's order;
3. ``--rescore``: the final beam rescored by the model's own LLM (the audio, the default
   instruction, each hypothesis teacher-forced): beam score + weight * log p_LLM, per weight.

Letters-first decoding in ``VoxLM.transcribe`` (``DecodingOptions.letters_beam``) is 2 and 3
with one setting; this script scores a grid of them, to choose one on a dev split.

    python benchmarks/spelling_decode.py --model DIR --data MANIFEST --words LIST \
        [--alpha 0.5] [--beta 0] [--beam 16] [--rescore 2] [--output runs/spelling.json]

``--alpha``, ``--beta`` and ``--rescore`` take several values (a grid); every setting is
scored. The defaults are the best of a grid on a synthetic dev split (BENCHMARKS.md, "Letters
first").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from voxlm.audio import load_audio
from voxlm.data.manifest import read_manifest
from voxlm.decoding.letters import lexicon_beam, token_log_probs, word_log_prior
from voxlm.evaluate import char_error_rate, word_error_rate
from voxlm.lexicon import Lexicon
from voxlm.model import AudioFeatures, VoxLM
from voxlm.spelling import read_spelling


@torch.no_grad()
def encode(model: VoxLM, path: str) -> AudioFeatures:
    audio = torch.from_numpy(load_audio(path))[None]
    features = model.encode(audio.to(model.device), torch.tensor([audio.shape[1]]))
    if features.ctc_log_probs is None or model.config.ctc_units != "characters":
        raise SystemExit("the model has no character CTC head (model.ctc_units: characters)")
    return features


def head_log_probs(features: AudioFeatures) -> torch.Tensor:
    return features.ctc_log_probs[0, : int(features.mask[0].sum())].cpu()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a saved model with a character head")
    parser.add_argument("--data", type=Path, required=True, help="a .jsonl manifest")
    parser.add_argument("--words", type=Path, required=True, help="word list, most frequent first")
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.5])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.0])
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument(
        "--rescore",
        type=float,
        nargs="*",
        default=[],
        help="LLM weights: rescore each final beam with the model's LLM given the audio",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    model = VoxLM.from_pretrained(args.model).eval()
    utterances = read_manifest(args.data)
    lexicon = Lexicon.from_file(args.words)
    prior = word_log_prior(lexicon)
    features = [encode(model, u.audio_path) for u in utterances]
    log_probs = [head_log_probs(f) for f in features]
    refs = [u.text for u in utterances]
    prompt = model.prompt()
    runs = {"greedy": [read_spelling(lp.argmax(-1).tolist()) for lp in log_probs]}
    for alpha in args.alpha:
        for beta in args.beta:
            nbest = [lexicon_beam(lp, lexicon, prior, alpha, beta, args.beam) for lp in log_probs]
            runs[f"lexicon alpha={alpha} beta={beta}"] = [n[0][0] for n in nbest]
            if not args.rescore:
                continue
            llm = [
                [
                    float(lp.sum())
                    for lp in token_log_probs(model, f, 0, prompt, [t for t, _ in n])[1]
                ]
                for f, n in zip(features, nbest, strict=True)
            ]
            for lam in args.rescore:
                runs[f"lexicon alpha={alpha} beta={beta} + LLM x{lam}"] = [
                    max(zip(n, s, strict=True), key=lambda h, lam=lam: h[0][1] + lam * h[1])[0][0]
                    for n, s in zip(nbest, llm, strict=True)
                ]
    result = {
        "model": args.model,
        "data": str(args.data),
        "words": f"{args.words} ({len(lexicon)} words)",
        "beam": args.beam,
        "runs": {
            name: {
                "wer": word_error_rate(refs, hyps),
                "cer": char_error_rate(refs, hyps),
                "examples": [
                    {"id": u.id, "ref": u.text, "hyp": h}
                    for u, h in zip(utterances, hyps, strict=True)
                ],
            }
            for name, hyps in runs.items()
        },
    }
    for name, run in result["runs"].items():
        print(f"{name}: WER {run['wer']:.1%}, CER {run['cer']:.1%}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
