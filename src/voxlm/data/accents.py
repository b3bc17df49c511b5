"""Features of English accents, as phoneme replacements for espeak-ng's voices.

espeak-ng has eight English accents, so a model trained on them meets any other accent as
noise: on the held-out voice, word error was ten times that of the training voices
(BENCHMARKS.md). A share of training utterances is therefore spoken with one to three
well-known features of English accents (after J. C. Wells, "Accents of English", 1982),
applied as phoneme replacements: espeak-ng's own mechanism for its accents (the `replace`
lines of a voice file), through a private voice variant (``Espeak.accent_voice``).
"""

from __future__ import annotations

# Each feature as espeak-ng `replace` lines ("<flags> <phoneme> <replacement>"; flags: 1 = only
# at the end of a word, 2 = only unstressed; NULL deletes). Every replacement is a phoneme of
# the English tables: espeak-ng silently drops an unknown one (tested).
ACCENT_FEATURES: dict[str, tuple[str, ...]] = {
    "h-dropping": ("00 h NULL",),  # 'ouse: most urban accents of England, Wales
    "g-dropping": ("03 N n",),  # walkin': widespread, informal
    "th-fronting": ("00 T f",),  # fink: London, Estuary
    "th-stopping": ("00 T t", "00 D d"),  # tink, dis: Irish, Caribbean, New York
    "t-glottalling": ("01 t ?",),  # wha': British urban accents
    "foot-strut": ("00 V U",),  # no FOOT-STRUT split: north of England, Midlands
    "trap-raising": ("00 a E",),  # New Zealand, South Africa, New York
    "price-backing": ("00 aI OI",),  # London, Australia
    "price-monophthong": ("00 aI A:",),  # southern United States
    "face-monophthong": ("00 eI e:",),  # Scotland, north of England, Wales
    "goat-monophthong": ("00 oU o:",),  # Scotland, north of England, Wales
    "happy-laxing": ("03 i I",),  # conservative RP, north of England
}
