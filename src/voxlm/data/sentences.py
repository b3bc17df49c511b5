"""A built-in generator of simple, grammatical English sentences for synthetic speech.

Grammatical sentences (rather than random word strings) give the LLM context to predict from,
so that it can learn the language of the transcripts as well as their sounds. Text is lowercase, without
punctuation: letters, spaces and apostrophes only, so the synthetic transcript is exactly what a
model should emit. Everything is deterministic from a seed (`random.Random`, stable across
platforms and Python versions).

The test split must only use words seen in training (an unseen word cannot be learned from
synthetic data, so it would measure the vocabulary, not the model): `generate_sentences` takes an
optional `vocabulary` to draw held-out sentences from the training words, and `split_disjoint`
keeps dev/test sentences whose words all occur in its training part.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence

# ---------------------------------------------------------------------------------------------
# Word lists. Nouns: "singular" (regular plural) or "singular plural" (irregular plural).
# ---------------------------------------------------------------------------------------------
_PEOPLE = """
man/men woman/women child/children boy girl baby friend teacher doctor nurse farmer driver
student king queen mother father sister brother uncle aunt cousin neighbour captain soldier
pilot singer painter writer cook baker guard worker player artist lawyer officer visitor
stranger family person/people
"""
_ANIMALS = """
dog cat horse cow sheep/sheep pig goat bird duck chicken fish/fish mouse/mice rabbit fox/foxes
wolf/wolves bear lion tiger monkey elephant snake frog bee ant owl eagle deer/deer whale
"""
_THINGS = """
book pen pencil paper letter box bag cup glass/glasses plate bowl spoon knife/knives fork table
chair bed lamp clock phone radio camera window door wall floor roof key coin ticket map picture
card ball toy kite bottle basket bucket blanket pillow shirt coat hat shoe sock dress jacket
ring watch/watches bell drum guitar piano candle rope stone brick wheel car bus/buses train
truck bicycle boat ship plane computer screen button engine machine tool hammer ladder umbrella
mirror brush/brushes comb towel
"""
_PLACES = """
house home room kitchen garden school office shop market city/cities town village street road
bridge river lake sea beach island mountain hill forest field farm park church library hospital
station airport hotel restaurant museum castle tower valley desert harbour garage corner
"""
_FOOD = """
apple orange banana lemon cake bread/bread cheese/cheese egg potato/potatoes tomato/tomatoes
carrot onion sandwich/sandwiches cookie pie pizza
"""
_NATURE = """
tree flower leaf/leaves rock cloud star moon sun storm
wave fire sky/skies shadow light song story/stories game idea dream question answer plan
gift message lesson problem
"""
_NOUN_LINES = (_PEOPLE, _ANIMALS, _THINGS, _PLACES, _FOOD, _NATURE)
# Uncountable nouns take no "a" and no number.
_MASS_NOUNS = [
    "bread",
    "cheese",
    "soup",
    "rice",
    "milk",
    "water",
    "tea",
    "coffee",
    "juice",
    "grass",
    "wind",
    "rain",
    "snow",
    "sand",
]

# Verbs: "base third-person past -ing".
_TRANSITIVE_VERBS = """
see sees saw seeing|take takes took taking|make makes made making|find finds found finding
give gives gave giving|hold holds held holding|bring brings brought bringing|buy buys bought buying
sell sells sold selling|catch catches caught catching|throw throws threw throwing
build builds built building|break breaks broke breaking|carry carries carried carrying
clean cleans cleaned cleaning|cook cooks cooked cooking|draw draws drew drawing|drive drives drove driving
eat eats ate eating|fix fixes fixed fixing|follow follows followed following|hear hears heard hearing
help helps helped helping|keep keeps kept keeping|kick kicks kicked kicking|know knows knew knowing
like likes liked liking|love loves loved loving|move moves moved moving|need needs needed needing
open opens opened opening|paint paints painted painting|pass passes passed passing|pick picks picked picking
pull pulls pulled pulling|push pushes pushed pushing|read reads read reading|remember remembers remembered remembering
send sends sent sending|show shows showed showing|start starts started starting|visit visits visited visiting
wash washes washed washing|watch watches watched watching|want wants wanted wanting|write writes wrote writing
call calls called calling|close closes closed closing|count counts counted counting|drop drops dropped dropping
enjoy enjoys enjoyed enjoying|fill fills filled filling|feed feeds fed feeding|hide hides hid hiding
lift lifts lifted lifting|lose loses lost losing|meet meets met meeting|miss misses missed missing
use uses used using|check checks checked checking|choose chooses chose choosing|borrow borrows borrowed borrowing
"""
_INTRANSITIVE_VERBS = """
sleep sleeps slept sleeping|run runs ran running|walk walks walked walking|sing sings sang singing
dance dances danced dancing|laugh laughs laughed laughing|cry cries cried crying|smile smiles smiled smiling
wait waits waited waiting|work works worked working|play plays played playing|swim swims swam swimming
jump jumps jumped jumping|fly flies flew flying|arrive arrives arrived arriving|sit sits sat sitting
stand stands stood standing|fall falls fell falling|rest rests rested resting|shout shouts shouted shouting
listen listens listened listening|travel travels travelled travelling|grow grows grew growing
rise rises rose rising|stay stays stayed staying|talk talks talked talking|climb climbs climbed climbing
hurry hurries hurried hurrying|return returns returned returning|leave leaves left leaving
"""

_ADJECTIVES = """
big small little large tiny huge tall short long old young new good bad happy sad angry quiet
loud busy lazy brave calm clever kind gentle friendly funny strange famous rich poor hungry
thirsty tired sleepy sick warm cold hot cool wet dry clean dirty soft hard heavy light bright
dark fresh sweet sour bitter empty full fast slow strong weak beautiful pretty ugly lovely
nice fine wild careful honest lucky polite proud red blue green yellow black white brown pink
purple orange grey golden silver wooden round flat sharp smooth rough deep shallow wide narrow
thin thick cheap expensive simple easy difficult early late modern ancient
"""
_ADVERBS = """
quickly slowly quietly loudly happily sadly carefully easily gently badly well suddenly softly
proudly bravely politely calmly angrily nervously patiently kindly together alone
"""
_TIME_PHRASES = """
today|yesterday|tomorrow|tonight|again|now|later|early|every day|every morning|every evening
last night|last week|next week|this morning|this afternoon|on monday|on tuesday|on wednesday
on thursday|on friday|on saturday|on sunday|in the morning|in the evening|at night|at noon
in the spring|in the summer|in the autumn|in the winter|after dinner|before lunch|after school
"""

# Function words.
_PREPOSITIONS = [
    "in",
    "on",
    "under",
    "near",
    "behind",
    "beside",
    "inside",
    "outside",
    "across",
    "along",
    "over",
    "into",
    "past",
]
_SUBJECT_PRONOUNS = {
    "i": "base",
    "you": "base",
    "we": "base",
    "they": "base",
    "he": "3sg",
    "she": "3sg",
}
_OBJECT_PRONOUNS = ["me", "you", "him", "her", "us", "them", "it"]
_POSSESSIVES = ["my", "your", "his", "her", "our", "their"]
_SINGULAR_DETERMINERS = ["the", "a", "this", "that", "every", "one"] + _POSSESSIVES
_PLURAL_DETERMINERS = ["the", "these", "those", "some", "many", "few", "all"] + _POSSESSIVES
_MASS_DETERMINERS = ["the", "this", "that", "some", "no"] + _POSSESSIVES
_NUMBERS = [
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
]
_MODALS = ["can", "could", "will", "would", "should", "must", "might"]
_CONJUNCTIONS = ["and", "but", "because", "while", "when", "so", "until", "although"]
_INTENSIFIERS = ["very", "really", "quite", "so", "too"]
_QUESTION_WORDS = ["where", "when", "why", "how"]

_VOWEL_SOUND_EXCEPTIONS = frozenset({"one", "university", "uniform", "useful"})


def _parse_nouns(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(singular, plural) pairs; a plural is spelled out when English does not just add -s."""
    pairs = []
    for line in lines:
        for entry in line.split():
            singular, _, plural = entry.partition("/")
            if not plural:
                if singular.endswith(("s", "x", "ch", "sh")):
                    plural = singular + "es"
                elif singular.endswith("y") and singular[-2] not in "aeiou":
                    plural = singular[:-1] + "ies"
                else:
                    plural = singular + "s"
            pairs.append((singular, plural))
    return tuple(pairs)


_VERB_FORMS = ("base", "3sg", "past", "ing")


def _parse_verbs(text: str) -> tuple[tuple[str, ...], ...]:
    """One (base, 3sg, past, ing) tuple per verb, in `_VERB_FORMS` order."""
    verbs = []
    for entry in text.replace("\n", "|").split("|"):
        if entry.strip():
            forms = tuple(entry.split())
            if len(forms) != len(_VERB_FORMS):
                raise ValueError(f"verb entry {entry!r} needs the forms {_VERB_FORMS}")
            verbs.append(forms)
    return tuple(verbs)


_NOUNS = _parse_nouns(_NOUN_LINES)
_TRANSITIVE = _parse_verbs(_TRANSITIVE_VERBS)
_INTRANSITIVE = _parse_verbs(_INTRANSITIVE_VERBS)
_ADJ = tuple(_ADJECTIVES.split())
_ADV = tuple(_ADVERBS.split())
_TIMES = tuple(t.strip() for t in _TIME_PHRASES.replace("\n", "|").split("|") if t.strip())
_SINGULARS = tuple(s for s, _ in _NOUNS)
_PLURALS = tuple(p for _, p in _NOUNS)
_FIXED_WORDS = ["am", "is", "are", "did", "an"]


def _all_words() -> frozenset[str]:
    words: set[str] = set(_FIXED_WORDS)
    for singular, plural in _NOUNS:
        words.update((singular, plural))
    words.update(_MASS_NOUNS)
    words.update(_MASS_DETERMINERS)
    for verb in _TRANSITIVE + _INTRANSITIVE:
        words.update(verb)
    for group in (
        _ADJ,
        _ADV,
        _PREPOSITIONS,
        _SUBJECT_PRONOUNS,
        _OBJECT_PRONOUNS,
        _SINGULAR_DETERMINERS,
        _PLURAL_DETERMINERS,
        _NUMBERS,
        _MODALS,
        _CONJUNCTIONS,
        _INTENSIFIERS,
        _QUESTION_WORDS,
    ):
        words.update(group)
    for phrase in _TIMES:
        words.update(phrase.split())
    return frozenset(words)


VOCABULARY: frozenset[str] = _all_words()
NOUNS: tuple[str, ...] = _SINGULARS + tuple(_MASS_NOUNS)  # what a sentence can be about


@functools.cache
def _verb_forms(verbs: tuple[tuple[str, ...], ...], form: str) -> tuple[str, ...]:
    index = _VERB_FORMS.index(form)
    return tuple(v[index] for v in verbs)


class _NoWord(Exception):
    """A grammar slot has no allowed word; the sentence is abandoned and another is drawn."""


class _Grammar:
    """Draws clauses from the word lists, restricted to an allowed vocabulary."""

    def __init__(self, rng: random.Random, allowed: frozenset[str]) -> None:
        self.rng = rng
        self.allowed = allowed
        self._allowed_options: dict[tuple[str, ...], list[str]] = {}

    def pick(self, options: Sequence[str]) -> str:
        key = tuple(options)
        choices = self._allowed_options.get(key)
        if choices is None:
            choices = [w for w in key if all(part in self.allowed for part in w.split())]
            self._allowed_options[key] = choices
        if not choices:
            raise _NoWord
        return self.rng.choice(choices)

    def verb(self, verbs: tuple[tuple[str, ...], ...], form: str) -> str:
        return self.pick(_verb_forms(verbs, form))

    def article(self, determiner: str, next_word: str) -> str:
        if (
            determiner == "a"
            and next_word[0] in "aeiou"
            and next_word not in _VOWEL_SOUND_EXCEPTIONS
        ):
            return self.pick(["an"])
        return determiner

    def noun_phrase(self) -> tuple[list[str], bool]:
        """(words, is_plural): determiner, optional adjective(s), noun."""
        r = self.rng.random()
        adjectives = [self.pick(_ADJ) for _ in range(self.rng.choice((0, 0, 1, 1, 2)))]
        if len(adjectives) == 2 and adjectives[0] == adjectives[1]:
            adjectives.pop()
        if r < 0.1:
            return [self.pick(_MASS_DETERMINERS), *adjectives, self.pick(_MASS_NOUNS)], False
        if r < 0.6:
            noun = self.pick(_SINGULARS)
            det = self.pick(_SINGULAR_DETERMINERS)
            first = (adjectives or [noun])[0]
            return [self.article(det, first), *adjectives, noun], False
        noun = self.pick(_PLURALS)
        det = self.pick(_NUMBERS if r < 0.75 else _PLURAL_DETERMINERS)
        return [det, *adjectives, noun], True

    def subject(self) -> tuple[list[str], str]:
        """(words, agreement): agreement is "base" or "3sg" for present-tense verbs."""
        if self.rng.random() < 0.3:
            pronoun = self.pick(list(_SUBJECT_PRONOUNS))
            return [pronoun], _SUBJECT_PRONOUNS[pronoun]
        words, plural = self.noun_phrase()
        return words, "base" if plural else "3sg"

    def obj(self) -> list[str]:
        if self.rng.random() < 0.15:
            return [self.pick(_OBJECT_PRONOUNS)]
        return self.noun_phrase()[0]

    def extras(self) -> list[str]:
        """Optional adverb, place phrase and time phrase after the verb phrase."""
        words: list[str] = []
        if self.rng.random() < 0.25:
            words.append(self.pick(_ADV))
        if self.rng.random() < 0.35:
            words += [self.pick(_PREPOSITIONS), *self.noun_phrase()[0]]
        if self.rng.random() < 0.3:
            words += self.pick(_TIMES).split()
        return words

    def clause(self) -> list[str]:
        subject, agreement = self.subject()
        be = self.pick(["am" if subject == ["i"] else {"base": "are", "3sg": "is"}[agreement]])
        kind = self.rng.random()
        if kind < 0.3:
            tense = self.rng.choice((agreement, "past"))
            verb = [self.verb(_TRANSITIVE, tense), *self.obj()]
        elif kind < 0.5:
            verb = [self.verb(_INTRANSITIVE, self.rng.choice((agreement, "past")))]
        elif kind < 0.65:
            verb = [self.pick(_MODALS), self.verb(_TRANSITIVE + _INTRANSITIVE, "base")]
        elif kind < 0.72:
            verb = [be, self.verb(_TRANSITIVE, "ing"), *self.obj()]
        elif kind < 0.8:
            verb = [be, self.verb(_INTRANSITIVE, "ing")]
        else:
            adjective = [self.pick(_ADJ)]
            if self.rng.random() < 0.3:
                adjective.insert(0, self.pick(_INTENSIFIERS))
            verb = [be, *adjective]
        return [*subject, *verb, *self.extras()]

    def question(self) -> list[str]:
        subject, _ = self.subject()
        if self.rng.random() < 0.5:
            return [self.pick(["did"]), *subject, self.verb(_TRANSITIVE, "base"), *self.obj()]
        wh = [self.pick(_QUESTION_WORDS), self.pick(["did"])]
        return [*wh, *subject, self.verb(_INTRANSITIVE, "base"), *self.extras()]

    def sentence(self) -> list[str]:
        r = self.rng.random()
        if r < 0.1:
            return self.question()
        words = self.clause()
        if r > 0.7:
            words += [self.pick(_CONJUNCTIONS), *self.clause()]
        return words


def generate_sentences(
    n: int,
    seed: int,
    min_words: int = 3,
    max_words: int = 15,
    *,
    vocabulary: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> list[str]:
    """`n` unique sentences of `min_words`..`max_words` words, deterministic from `seed`.

    `vocabulary` restricts the words used (default: all of `VOCABULARY`); `exclude` lists
    sentences that must not be produced (e.g. the training set, to keep splits disjoint).
    Raises ValueError when the grammar cannot produce `n` such sentences.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}..{max_words}")
    allowed = VOCABULARY if vocabulary is None else frozenset(vocabulary)
    grammar = _Grammar(random.Random(seed), allowed)
    seen = set(exclude)
    sentences: list[str] = []
    max_attempts = 200 * n + 2000
    for _ in range(max_attempts):
        if len(sentences) == n:
            break
        try:
            words = grammar.sentence()
        except _NoWord:
            continue
        text = " ".join(words)
        if min_words <= len(words) <= max_words and text not in seen:
            seen.add(text)
            sentences.append(text)
    if len(sentences) < n:
        raise ValueError(
            f"could only generate {len(sentences)} of {n} unique sentences with "
            f"{min_words}..{max_words} words from a vocabulary of {len(allowed)} words"
        )
    return sentences


def sentence_words(sentences: Iterable[str]) -> frozenset[str]:
    """All whitespace-separated words in `sentences`."""
    return frozenset(word for sentence in sentences for word in sentence.split())


def split_disjoint(
    sentences: Sequence[str], n_train: int, n_dev: int, n_test: int, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Split unique sentences into disjoint train/dev/test lists.

    Dev and test only take sentences whose words all occur in the training part, so every
    evaluated word was seen in training. Raises ValueError when there are too few sentences.
    """
    unique = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    if len(unique) < n_train + n_dev + n_test:
        raise ValueError(
            f"need {n_train + n_dev + n_test} unique sentences for train/dev/test "
            f"({n_train}/{n_dev}/{n_test}), got {len(unique)}"
        )
    random.Random(seed).shuffle(unique)
    train = unique[:n_train]
    known = sentence_words(train)
    covered = [s for s in unique[n_train:] if set(s.split()) <= known]
    if len(covered) < n_dev + n_test:
        raise ValueError(
            f"only {len(covered)} of the {len(unique) - n_train} non-training sentences use only "
            f"training words; dev/test need {n_dev + n_test}: add sentences or lower n_dev/n_test"
        )
    return train, covered[:n_dev], covered[n_dev : n_dev + n_test]
