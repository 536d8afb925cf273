"""Word lists: the Speech Commands v2 vocabulary, a default unknown-word pool, babble text."""

from __future__ import annotations

import re

from distill.errors import BadValueError

#: The 35 words of Speech Commands v2, in the dataset's documentation order.
_SPEECH_COMMANDS_V2 = (
    "yes no up down left right on off stop go "
    "zero one two three four five six seven eight nine "
    "bed bird cat dog happy house marvin sheila tree wow "
    "backward forward follow learn visual"
)
SPEECH_COMMANDS_V2: list[str] = _SPEECH_COMMANDS_V2.split()

#: Unknown-class pool used with a custom `--words` list when `--unknown-words` is not given.
_DEFAULT_UNKNOWN_WORDS = (
    "apple window music paper water yellow morning garden river number "
    "table orange pencil summer rocket silver doctor camera planet basket"
)
DEFAULT_UNKNOWN_WORDS = _DEFAULT_UNKNOWN_WORDS.split()

#: Common English words that babble talkers string into pseudo-sentences.
_BABBLE_WORDS = (
    "the a and of to in is it that was he for on are as with his they at be this from have or "
    "by one had not but what all were when we there can an your which their said if do will each "
    "about how up out them then she many some so these would other into has more her two like "
    "him see time could no make than first been its who now people my made over did down only "
    "way find use may water long little very after words called just where most know get "
    "through back much before go good new write our used me man too any day same right look "
    "think also around another came come work three word must because does part even place well "
    "such here take why things help put years different away again off went old number great "
    "tell men say small every found still between name should home big give air line set own "
    "under read last never us left end along while might next sound below saw something thought "
    "both few those always looked show large often together asked house world going want school "
    "important until form food keep children feet land side without boy once animals life enough "
    "took sometimes four head above kind began almost live page got earth need far hand high year "
    "mother light parts country father let night following picture being study second eyes soon "
    "times story boys since white days paper hard near sentence better best across during today "
    "others however sure means knew try told young miles sun ways thing whole hear example heard "
    "several change answer room sea against top turned learn point city play toward five using "
    "himself usually money seen car morning"
)
BABBLE_WORDS = _BABBLE_WORDS.split()

_LABEL_OK = re.compile(r"^[a-z0-9' -]+$")


def label_of(text: str) -> str:
    """Folder name for a word or short phrase: lower case, spaces as underscores.

    Raises ValueError for empty text or characters outside letters, digits, space, ' and -.
    """
    cleaned = " ".join(text.strip().lower().split())
    if not cleaned or not _LABEL_OK.match(cleaned):
        raise BadValueError(
            f"keyword {text!r}: expected a word or short phrase of letters, digits, spaces, "
            "apostrophes or hyphens"
        )
    return cleaned.replace(" ", "_")


def parse_word_list(items: list[str] | None) -> list[str]:
    """Words from the command line; each item may itself be comma-separated."""
    if not items:
        return []
    out: list[str] = []
    for item in items:
        out.extend(w.strip() for w in item.split(",") if w.strip())
    return out
