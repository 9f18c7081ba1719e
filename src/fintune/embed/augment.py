"""Query augmentation for robustness: case changes and keyboard misspellings, deterministic by seed."""

from __future__ import annotations

import random

NEIGHBOURS = {
    "a": "qwsz",
    "b": "vghn",
    "c": "xdfv",
    "d": "serfcx",
    "e": "wsdr",
    "f": "drtgvc",
    "g": "ftyhbv",
    "h": "gyujnb",
    "i": "ujko",
    "j": "huikmn",
    "k": "jiolm",
    "l": "kop",
    "m": "njk",
    "n": "bhjm",
    "o": "iklp",
    "p": "ol",
    "q": "wa",
    "r": "edft",
    "s": "awedxz",
    "t": "rfgy",
    "u": "yhji",
    "v": "cfgb",
    "w": "qase",
    "x": "zsdc",
    "y": "tghu",
    "z": "asx",
}


def misspell(text: str, rng: random.Random, rate: float = 0.08) -> str:
    """Swap, drop or replace letters in about `rate` of the words longer than three letters."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) <= 3 or not word.isalpha() or rng.random() > rate:
            continue
        j = rng.randrange(len(word) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        elif kind == 1:
            word = word[:j] + word[j + 1 :]
        else:
            near = NEIGHBOURS.get(word[j].lower())
            word = word[:j] + (rng.choice(near) if near else word[j]) + word[j + 1 :]
        words[i] = word
    return " ".join(words)


def change_case(text: str, rng: random.Random) -> str:
    return rng.choice((str.lower, str.upper, str.title))(text)


def augment_queries(queries: list[str], seed: int, fraction: float = 0.3) -> list[tuple[int, str]]:
    """(index, noisy copy) for about `fraction` of the queries; the caller keeps the originals."""
    rng = random.Random(seed)
    out = []
    for i, query in enumerate(queries):
        if rng.random() >= fraction:
            continue
        noisy = change_case(query, rng) if rng.random() < 0.3 else misspell(query, rng, 0.25)
        if noisy == query:
            noisy = misspell(query, rng, rate=1.0)
        if noisy != query:  # a copy identical to the original would only duplicate a pair
            out.append((i, noisy))
    return out
