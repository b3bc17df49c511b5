"""Training text beyond the grammar: the built-in grammar's sentences mixed with strings of
frequent English words, one per line, for `voxlm synth --text-file`.

A head trained only on the grammar's 1,084 words spells those words; strings of 3-12 words
drawn from the most frequent English words (probability ~ frequency^power, so common words
recur and rare ones are still heard) widen what it has heard without a text corpus. The word
frequencies come from wordfreq (`pip install wordfreq`; the `real` extra installs it). Same
arguments, same file.

    python benchmarks/word_strings.py --output mixed-text.txt [--grammar 2200] [--strings 2200]
        [--top 10000] [--power 0.7] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from voxlm.data.sentences import generate_sentences


def word_strings(n: int, top: int, power: float, seed: int) -> list[str]:
    """`n` unique strings of 3-12 words from the `top` most frequent alphabetic English words."""
    from wordfreq import top_n_list, word_frequency

    words = [w for w in top_n_list("en", 2 * top) if w.isascii() and w.isalpha()][:top]
    weights = [word_frequency(w, "en") ** power for w in words]
    rng = random.Random(seed)
    strings: dict[str, None] = {}
    while len(strings) < n:
        strings[" ".join(rng.choices(words, weights, k=rng.randint(3, 12)))] = None
    return list(strings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--grammar", type=int, default=2200, help="sentences of the grammar")
    parser.add_argument("--strings", type=int, default=2200, help="strings of frequent words")
    parser.add_argument("--top", type=int, default=10000, help="the most frequent words drawn")
    parser.add_argument("--power", type=float, default=0.7, help="p ~ frequency^power")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = generate_sentences(args.grammar, args.seed) + word_strings(
        args.strings, args.top, args.power, args.seed
    )
    random.Random(args.seed).shuffle(lines)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} lines -> {args.output}")


if __name__ == "__main__":
    main()
