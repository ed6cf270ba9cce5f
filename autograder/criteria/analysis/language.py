"""Which language a written answer is in, and how sure that is.

The reflection criterion judges themes with an English sentence-embedding model and keyword lists; a
Swedish answer scores low on both for reasons that have nothing to do with its content. So the answer's
language is detected first: themes are then matched against examples in that language, and a fail that
rests on a model not calibrated for it goes to a teacher instead (reflection.py).

The detector is py3langid (a maintained fork of langid.py: a naive Bayes model over byte n-grams, 97
languages, its model bundled in a 4.6 MB wheel that needs only numpy). Chosen because it is offline,
deterministic, small and fast (under a millisecond per answer once loaded, about 1 s to load); lingua is
more accurate on very short texts but a 96 MB wheel, fastText's detectors download their model at run
time, and a detector of our own for English and Swedish alone could not name a German answer, which must
be told apart from a Swedish one to be sent to a teacher rather than judged.

A classifier's probability is not certainty: langid is confidently wrong on a text of three words, and a
text half in Swedish and half in English gets one language with high probability. So `confidence` is the
least of three measures, each 0..1:

- the detector's probability for the whole text (py3langid's length-tempered softmax);
- the share of the words that lie in sentences it places in that language (of the sentences of at least
  four words whose own language it is fairly sure of): a mixed answer gets the share of its main language;
- the length: the number of words over `SURE_WORDS`, capped at 1 (a line of five words is never sure).

Below `SURE` the language is unsure, and whatever rests on it is too.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

from pydantic import BaseModel, Field

from autograder.criteria.analysis.text import WORD, sentences, tokens

PACKAGE = "py3langid"
SURE = 0.8  # a detection below this confidence is unsure
SURE_WORDS = 20  # texts shorter than this many words are never sure of their language
SENTENCE_WORDS = 4  # shorter sentences are not placed on their own (a term, a name, "Ok.")
SENTENCE_SURE = 0.5  # a sentence counts for a language when the detector gives it at least this
DETECTED_CAP = 20_000  # characters read: the language of an answer shows in its first pages
UNKNOWN = "und"  # ISO 639-2 "undetermined": no words, or nothing a language model can read

# What py3langid can name, as people read it. Codes not here are shown as themselves.
NAMES = {
    "af": "Afrikaans", "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "br": "Breton", "bs": "Bosnian", "ca": "Catalan",
    "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish",
    "fo": "Faroese", "fr": "French", "fy": "Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician",
    "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "ig": "Igbo", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lb": "Luxembourgish", "lg": "Ganda",
    "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "my": "Burmese",
    "ne": "Nepali", "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian", "oc": "Occitan", "om": "Oromo",
    "or": "Odia", "pa": "Punjabi", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua",
    "ro": "Romanian", "ru": "Russian", "rw": "Kinyarwanda", "sa": "Sanskrit", "se": "Northern Sami",
    "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali", "sq": "Albanian",
    "sr": "Serbian", "st": "Sotho", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu",
    "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar",
    "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "vo": "Volapük",
    "wa": "Walloon", "xh": "Xhosa", "yo": "Yoruba", "zh": "Chinese", "zu": "Zulu", "yue": "Cantonese",
    "pcm": "Nigerian Pidgin", UNKNOWN: "an undetermined language",
}
# Codes that staff write for a language but that name another one (or none) in ISO 639-1.
MISTAKEN = {"se": "sv", "swe": "sv", "eng": "en", "dk": "da", "gr": "el", "jp": "ja", "cz": "cs", "ger": "de",
            "deu": "de", "fra": "fr", "fre": "fr", "nor": "no", "fin": "fi", "ee": "et", "ua": "uk"}
# Invisible characters a hostile or pasted text may carry; they split words for the detector.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_TAG = re.compile(r"<[^>]{0,500}>")


class Detection(BaseModel):
    """An answer's language: `code` (ISO 639-1 where there is one; "und" when none could be told), its
    name, and how sure that is (0..1, see the module's docstring); `words` read."""

    code: str
    name: str
    confidence: float = Field(ge=0, le=1)
    words: int = Field(ge=0)
    probability: float = Field(ge=0, le=1, description="the detector's own probability for the whole text")
    share: float = Field(ge=0, le=1, description="of the words in sentences placed in a language, this one's share")

    @property
    def sure(self) -> bool:
        return self.code != UNKNOWN and self.confidence >= SURE

    def details(self, calibrated: frozenset[str]) -> dict[str, Any]:
        """What a result records: code, name, confidence, and whether the model in use is calibrated for it."""
        return {"code": self.code, "name": self.name, "confidence": self.confidence,
                "calibrated": self.sure and self.code in calibrated}


def name(code: str) -> str:
    return NAMES.get(code, code)


_lock = threading.Lock()
_identifier: Any = None


def _detector() -> Any:
    """py3langid's identifier with normalised probabilities, loaded once per process (about 1 s)."""
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def known_codes() -> frozenset[str]:
    """The language codes the detector can give (for checking a rubric's per-language examples)."""
    return frozenset(c for c in _detector().labels if c != "zxx")


def clean(text: str) -> str:
    """The text as a reader sees it: no tags, no invisible characters, compatibility forms folded."""
    text = _INVISIBLE.sub("", text[:DETECTED_CAP])
    return unicodedata.normalize("NFKC", _TAG.sub(" ", text))


def _top(ranked: list[tuple[str, float]]) -> tuple[str, float]:
    code, p = ranked[0]
    return (UNKNOWN, 0.0) if code == "zxx" else (code, float(p))


def detect(text: str) -> Detection:
    """The language of `text` and how sure that is. Deterministic; never raises on odd input."""
    text = clean(text)
    words = tokens(text)
    if not words:
        return Detection(code=UNKNOWN, name=name(UNKNOWN), confidence=0.0, words=0, probability=0.0, share=0.0)
    detector = _detector()
    code, probability = _top(detector.rank(" ".join(WORD.findall(text))))
    placed: dict[str, int] = {}
    for sentence in sentences(text):
        n = len(tokens(sentence))
        if n < SENTENCE_WORDS:
            continue
        own, p = _top(detector.rank(sentence))
        if p >= SENTENCE_SURE:
            placed[own] = placed.get(own, 0) + n
    share = placed.get(code, 0) / sum(placed.values()) if placed else 1.0
    length = min(1.0, len(words) / SURE_WORDS)
    confidence = 0.0 if code == UNKNOWN else min(probability, share, length)
    return Detection(code=code, name=name(code), confidence=round(confidence, 3), words=len(words),
                     probability=round(probability, 3), share=round(share, 3))
