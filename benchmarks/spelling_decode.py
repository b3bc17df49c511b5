"""What a trained model's character head spells on its own, read greedily and with a lexicon.

The LLM of a ``model.ctc_units: characters`` model reads the letters its head hears, yet on
real speech the LLM's transcript can be far worse than the letters (BENCHMARKS.md, "voxlm-smol
reads its own letters"). This measures the head without the LLM, two ways, on any manifest:

1. greedy: the frame-wise argmax (``voxlm.spelling.read_spelling``);
2. lexicon: a CTC prefix beam search over the head's characters (Hannun et al., 2014,
   "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional Recurrent
   DNNs") in which every word must be in a word list and each finished word adds
   ``alpha * log p(word) + beta``, p a Zipf prior over the list's order (most frequent first):
   p(rank r) proportional to 1 / r.

    python benchmarks/spelling_decode.py --model DIR --data MANIFEST --words LIST \
        [--alpha 0.5] [--beta 0] [--beam 16] [--rescore 2] [--output runs/spelling.json]

``--alpha`` and ``--beta`` take several values (a grid); every setting is scored. The defaults
are the best of a grid on a synthetic dev split (BENCHMARKS.md, "Letters first"). ``--rescore
0.25 0.5 ...`` adds, per weight, the final beam rescored by the model's own LLM (the audio, the
default instruction, each hypothesis teacher-forced): beam score + weight * log p_LLM.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import torch

from voxlm.audio import load_audio
from voxlm.data.manifest import read_manifest
from voxlm.evaluate import char_error_rate, word_error_rate
from voxlm.lexicon import Lexicon
from voxlm.model import AudioFeatures, VoxLM
from voxlm.spelling import ALPHABET, SPACE, read_spelling
from voxlm.text import normalize_text

BLANK = len(ALPHABET)
PRUNE = math.log(1e-4)  # characters less likely than this in a frame are not extended


def logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


class WordPrior:
    """A word list (most frequent first) as a lexicon and a Zipf log-probability per word."""

    def __init__(self, words: list[str]) -> None:
        self.lexicon = Lexicon(words)  # compares words as normalize_text writes them
        ranked = [w for text in words for w in normalize_text(text).split()]
        norm = math.log(sum(1.0 / (r + 1) for r in range(len(ranked))))
        self.log_p: dict[str, float] = {}
        for rank, word in enumerate(ranked):
            self.log_p.setdefault(word, -math.log(rank + 1) - norm)


def lexicon_beam(
    log_probs: torch.Tensor, prior: WordPrior, alpha: float, beta: float, beam: int
) -> list[tuple[str, float]]:
    """CTC prefix beam search over characters, words restricted to ``prior``'s list: the final
    beam as (text, score), best first."""
    lp = log_probs.tolist()  # [T][C]
    # prefix (text) -> [log p ending in blank, log p ending in a character, word score]
    beams: dict[str, list[float]] = {"": [0.0, -math.inf, 0.0]}
    for frame in lp:
        chars = [c for c in range(BLANK) if frame[c] > PRUNE]
        nxt: dict[str, list[float]] = defaultdict(lambda: [-math.inf, -math.inf, 0.0])
        for prefix, (pb, pnb, words) in beams.items():
            total = logsumexp(pb, pnb)
            entry = nxt[prefix]  # stay: a blank, or the last character repeated
            entry[0] = logsumexp(entry[0], total + frame[BLANK])
            if prefix:
                entry[1] = logsumexp(entry[1], pnb + frame[ALPHABET.index(prefix[-1])])
            entry[2] = words
            partial = prefix.rsplit(" ", 1)[-1]
            for c in chars:
                ch = ALPHABET[c]
                if c == SPACE:
                    if not partial:
                        continue  # no empty words
                    if partial not in prior.lexicon:
                        continue
                    score = words + alpha * prior.log_p[partial] + beta
                elif not prior.lexicon.is_prefix(partial + ch):
                    continue
                else:
                    score = words
                extended = prefix + ch
                # a repeated character needs a blank between: only pb extends it
                p = (pb if prefix and prefix[-1] == ch else total) + frame[c]
                entry = nxt[extended]
                entry[1] = logsumexp(entry[1], p)
                entry[2] = score
        ranked = sorted(nxt.items(), key=lambda kv: logsumexp(kv[1][0], kv[1][1]) + kv[1][2])
        beams = dict(ranked[-beam:])

    def final(item: tuple[str, list[float]]) -> float:
        prefix, (pb, pnb, words) = item
        last = prefix.rsplit(" ", 1)[-1]
        if last:
            if last not in prior.lexicon:
                return -math.inf
            words += alpha * prior.log_p[last] + beta
        return logsumexp(pb, pnb) + words

    ended = sorted(
        ((" ".join(p.split()), final((p, v))) for p, v in beams.items()), key=lambda x: -x[1]
    )
    return [(text, score) for text, score in ended if score > -math.inf] or [("", 0.0)]


@torch.no_grad()
def llm_log_prob(model: VoxLM, features: AudioFeatures, texts: list[str]) -> list[float]:
    """Each text's log-probability (its EOS included) under the model's LLM, given the audio:
    the teacher-forced pass of training, one row per text."""
    prompt = model.prompt()
    scores = []
    for ids in model.tokenize(texts):
        seq = model.assemble(features, [prompt], [ids])
        logits = model._run_llm(seq, use_cache=False).logits[0, :-1].float()
        labels = seq.labels[0, 1:]
        kept = labels != -100
        scores.append(logits[kept].log_softmax(-1).gather(1, labels[kept, None]).sum().item())
    return scores


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
    prior = WordPrior(args.words.read_text(encoding="utf-8").split())
    features = [encode(model, u.audio_path) for u in utterances]
    log_probs = [head_log_probs(f) for f in features]
    refs = [u.text for u in utterances]
    runs = {"greedy": [read_spelling(lp.argmax(-1).tolist()) for lp in log_probs]}
    for alpha in args.alpha:
        for beta in args.beta:
            nbest = [lexicon_beam(lp, prior, alpha, beta, args.beam) for lp in log_probs]
            runs[f"lexicon alpha={alpha} beta={beta}"] = [n[0][0] for n in nbest]
            if not args.rescore:
                continue
            llm = [
                llm_log_prob(model, f, [t for t, _ in n])
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
        "words": f"{args.words} ({len(prior.lexicon)} words)",
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
