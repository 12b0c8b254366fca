"""Sentences for the synthetic corpus, composed here from templates and word lists.

All text is the project's own: short templates with slots filled from word
lists written for phonetic spread. The lists lean on the sounds that plain
sentences rarely give often enough to learn (the /ʒ/ of "measure", /ɔɪ/,
/ʊ/, /θ/ and /ð/, /ŋ/, /tʃ/ and /dʒ/, /aʊ/, lip-closing p b m against f v),
so every viseme is seen in many contexts. Draws come from a seeded
``random.Random``, so a seed gives the same sentences on every machine.
"""
from __future__ import annotations

import random

WORDS: dict[str, tuple[str, ...]] = {
    "name": (
        "Bob", "Peggy", "Martha", "Theo", "Judith", "Charles", "Zoe", "Vivian", "Hugh", "Joy",
        "Roger", "Yusuf", "Ngozi", "Wendy", "Gus", "Fiona", "Keith", "Beth", "Moira", "Shaun",
        "Quentin", "Lloyd", "Xavier", "Oscar", "Ruth", "Doug", "Paula", "Igor", "Nathan", "Ella",
    ),
    "noun": (
        "puppy", "bubble", "mirror", "thimble", "feather", "voucher", "garage", "treasure", "cushion", "jacket",
        "cabbage", "oyster", "pillow", "wagon", "needle", "vision", "hook", "mouth", "thunder", "bottle",
        "rhythm", "sausage", "lantern", "pudding", "jigsaw", "beige rug", "leather boot", "cookbook", "zebra", "yoghurt",
        "fountain", "marble", "whistle", "cloud", "engine", "ocean", "coin", "toy boat", "bridge", "chimney",
        "kitchen", "measure", "umbrella", "violin", "mushroom", "pumpkin", "oven", "boulder", "thermos", "wheel",
    ),
    "adjective": (
        "purple", "shiny", "heavy", "smooth", "rough", "cheap", "huge", "tiny", "wooden", "frozen",
        "crooked", "gorgeous", "noisy", "thick", "thin", "brown", "golden", "usual", "muddy", "velvet",
        "joyful", "rusty", "soggy", "bumpy", "plump", "fuzzy", "sharp", "hollow", "jagged", "bright",
    ),
    "verb_past": (
        "grabbed", "pushed", "found", "threw", "bought", "carried", "fixed", "dropped", "measured", "painted",
        "washed", "juggled", "borrowed", "polished", "wrapped", "choked on", "chased", "buried", "lifted", "stroked",
        "shook", "hugged", "weighed", "mended", "sketched", "cooked", "took", "hid", "wove", "squeezed",
    ),
    "verb_ing": (
        "singing", "jumping", "thinking", "looking", "bathing", "mumbling", "waving", "pouring", "chewing", "juggling",
        "fishing", "breathing", "bouncing", "whispering", "shouting", "humming", "pushing", "cooking", "rowing", "voting",
    ),
    "place": (
        "the beach", "the garage", "the church", "the jungle", "the moor", "the harbour", "the bathroom", "the village",
        "the mountain", "the pool", "the market", "the cathedral", "the bakery", "the valley", "the shed",
        "the zoo", "the forest", "the museum", "the barn", "the south bank",
    ),
    "preposition": ("beside", "behind", "under", "near", "above", "through", "toward", "within", "past", "without"),
    "time": (
        "at noon", "on Thursday", "this morning", "in June", "last August", "at dawn", "before lunch", "by midnight",
        "every evening", "on the fifth of July", "yesterday", "at half past three",
    ),
    "number": (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirty", "forty-four", "ninety-nine", "a hundred", "a thousand", "zero",
    ),
    "adverb": (
        "quietly", "rather", "quickly", "smoothly", "boldly", "usually", "thoroughly", "joyfully", "awkwardly",
        "cautiously", "gently", "rapidly", "lazily", "eagerly", "patiently",
    ),
    "feeling": ("happy", "puzzled", "annoyed", "thrilled", "worried", "bored", "amazed", "sheepish", "jealous", "calm"),
}

# A slot is {kind}; the same kind may appear twice and gets two draws.
TEMPLATES: tuple[str, ...] = (
    "{name} {verb_past} the {adjective} {noun} {preposition} {place}.",
    "{name} {verb_past} a {noun} {time}.",
    "Did {name} really see the {adjective} {noun} {preposition} {place}?",
    "Why was {name} {verb_ing} {preposition} {place} {time}?",
    "The {noun} looked {adjective}, so {name} {verb_past} it {adverb}.",
    "{name} and {name} were {verb_ing} {adverb} {time}.",
    "I think {number} {adjective} things fell {preposition} {place}.",
    "We counted {number} of them, then {number} more.",
    "Please put the {noun} {preposition} the {noun}.",
    "Oh no, the {noun} is {adjective} again!",
    "{name} felt {feeling} when the {noun} broke.",
    "Nobody knows why {name} {verb_past} the {noun}.",
    "Bring me the {adjective} {noun}, and the {noun} too.",
    "Was it the {noun} or the {noun} that {name} {verb_past}?",
    "After {verb_ing} {time}, {name} was {feeling}.",
    "My {noun} is {adjective}, but yours is {adjective}.",
    "{name} said the {noun} cost {number} pounds.",
    "Look at that {adjective} {noun}!",
    "Hmm, maybe {name} left the {noun} {preposition} {place}.",
    "{name} sat {preposition} the {noun}, {verb_ing} {adverb}.",
    "Where did you put my {adjective} {noun}?",
    "They {verb_past} the {noun} {adverb}, then went to {place}.",
    "Yes, {name}, the {noun} was {adjective} {time}.",
    "Both boys enjoyed the usual pleasure of {verb_ing} {time}.",
    "{name} thought of the {adjective} {noun} through the whole journey.",
    "Few voices were heard {preposition} {place} {time}.",
    # Short ones: exclamations, questions and answers, as dialogue has.
    "Watch the {noun}!",
    "Is that {name}'s {noun}?",
    "No, {name}, not the {noun}.",
    "{name} is {verb_ing} again.",
    "Who {verb_past} my {noun}?",
    "What a {adjective} {noun}!",
    "Just {number}, {name}.",
    "Thanks, {name}, that's {adjective}.",
    "Go to {place} {time}.",
    "Well, the {noun} was {adjective}.",
)


def compose_sentence(rng: random.Random) -> str:
    """One sentence: a random template with each slot drawn from its word list."""
    template = rng.choice(TEMPLATES)
    out, rest = [], template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        kind, _, rest = tail.partition("}")
        out.append(head)
        out.append(rng.choice(WORDS[kind]))
    out.append(rest)
    text = "".join(out)
    return text[0].upper() + text[1:]


def compose_text(rng: random.Random, n_sentences: int = 1) -> str:
    return " ".join(compose_sentence(rng) for _ in range(n_sentences))
