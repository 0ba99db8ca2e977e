"""Language identification for short hotline messages.

Statistical detectors are unreliable on two- or three-word texts ("je suis en danger" is
Afrikaans to langdetect, "我需要帮助" Korean), and a contact's first message is usually that
short. `CombinedLanguageDetector` therefore decides in layers, and only among the languages the
hotline can answer in:

1. Writing system. Han is Chinese, Hangul Korean, Cyrillic Russian, Arabic script Arabic;
   Vietnamese-only letters (ư ơ ă đ ạ ệ ...) are strong evidence for Vietnamese. A script no
   configured language uses (Thai, Hebrew, Japanese kana ...) gives `und`.
2. Among the Latin-script languages: py3langid restricted to the candidates (normalised
   probabilities), combined with keyword evidence (help/ayuda/aide/ajuda/tulong/èd and the short
   function words of each language), which is what decides two-word texts.
3. Optionally (`tie_breaker=True`; off by default, as on the labelled corpus it changed no answer
   while costing milliseconds) langdetect, restricted to the two front runners when they are close.

Confidence is meant to be read literally: `und` with 0.0 when there is nothing to go on (empty
text, digits, emoji, binary noise, a language the hotline does not list), and below 0.5 when the
answer is a guess ("ok", "no", "ok?"). It is capped by the evidence: keyword coverage on short
texts, the other language's words in mixed texts, letters none of our alphabets use (ł ż ß ğ).
py3langid's full model (all its languages) is consulted when few words are recognised, so that
German or Indonesian is `und` rather than English or Tagalog.

Models load lazily, once, under a lock; afterwards `detect` only reads shared state, so one
detector can serve every thread.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "pt", "zh", "vi", "ko", "ru", "ht", "tl", "ar")
DEFAULT_MAX_CHARS = 2_000


@dataclass(frozen=True)
class Language:
    code: str
    confidence: float


UNDETERMINED = Language("und", 0.0)

# --- writing systems -------------------------------------------------------------------------

_LATIN = "latin"
_OTHER = "other"
_SCRIPT_PATTERNS: dict[str, re.Pattern[str]] = {
    _LATIN: re.compile(r"[A-Za-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"),
    "kana": re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
    "hangul": re.compile(r"[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]"),
    "cyrillic": re.compile(r"[\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f]"),
    "arabic": re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]"),
}
# One ideograph or Hangul block carries about as much as two or three alphabetic letters.
_SCRIPT_WEIGHT = {"han": 2.5, "kana": 1.5, "hangul": 2.5}
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+")

_SCRIPT_OF_LANGUAGE: dict[str, str] = {
    "zh": "han", "yue": "han", "ja": "kana", "ko": "hangul",
    **dict.fromkeys(("ru", "uk", "bg", "mk", "sr", "be", "kk", "ky", "mn", "tg", "tt", "ba"), "cyrillic"),
    **dict.fromkeys(("ar", "fa", "ur", "ps", "ug", "sd", "ku"), "arabic"),
    **dict.fromkeys(("el", "he", "hy", "ka", "th", "lo", "km", "my", "am", "hi", "mr", "ne", "bn", "pa",
                     "gu", "or", "ta", "te", "kn", "ml", "si", "dz"), _OTHER),
}

# Letters that the single configured language of a script does not use: a text containing them is
# in a neighbouring language (Ukrainian, Serbian, Kazakh; Persian, Urdu), so the script hint only
# earns a low confidence.
_FOREIGN_LETTERS: dict[str, re.Pattern[str]] = {
    "ru": re.compile(r"[іїєґўјљњћђџѓќѕәғқңөұүһІЇЄҐЎЈЉЊЋЂЏЃЌЅӘҒҚҢӨҰҮҺ]"),
    "ar": re.compile(r"[پچژگکیٹڈڑںےھۀۃ]"),
}

# Letters only Vietnamese uses (horn, breve, stroke, dot below, hook above, tone on a circumflex).
_VIETNAMESE = re.compile(
    "[ăắằẳẵặâấầẩẫậđêếềểễệôốồổỗộơớờởỡợưứừửữựạảẹẻẽịỉĩọỏụủũỳỵỷỹ"
    "ĂẮẰẲẴẶẤẦẨẪẬĐẾỀỂỄỆỐỒỔỖỘƠỚỜỞỠỢƯỨỪỬỮỰẠẢẸẺẼỊỈĨỌỎỤỦŨỲỴỶỸ]"
)

# Accented letters each Latin-script language uses. A letter none of the configured languages uses
# (ł ż ß ä ö ğ ş ř ...) says the text is in some other language, however well its words fit ours.
_LATIN_ALPHABET_EXTRAS: dict[str, str] = {
    "en": "éïëç",
    "es": "áéíóúüñ",
    "fr": "àâæçéèêëîïôœùûüÿ",
    "pt": "áâãàçéêíóôõúü",
    "ht": "àèòé",
    "tl": "ñéáíóú",
    "vi": "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ",
}
_NON_ASCII_LATIN = re.compile(r"[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")

# Code points that do not occur in a typed message: C0/C1 controls (tab and newlines aside),
# the replacement character, private use and lone surrogates.
_NOISE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff\ud800-\udfff]")
_MAX_NOISE_SHARE = 0.05
_URLISH = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\S+|@\w+", re.IGNORECASE)
_INNER_CAPITAL = re.compile(r"[a-z][A-Z]")
# No word in our languages is this long: a run like this is padding or junk, dropped before analysis.
_ENDLESS_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff\u0400-\u052f\u0600-\u06ff]{40,}")
_STRETCHED = re.compile(r"(.)\1{2,}")  # "ayudaaaa", "helppp", "pleaseeee"

# --- keywords ----------------------------------------------------------------------------------
# Accent-free, lower case (messages are often typed without accents; tokens are folded the same
# way). Words shared by several languages are listed under each of them: they then cancel out
# between those and still count against the others. Weights: strong words are the help requests
# and words almost nobody else writes; weak ones are borrowed everywhere ("ok").

_STRONG, _NORMAL, _WEAK = 2.0, 1.0, 0.35

_KEYWORDS_SOURCE: dict[str, dict[float, str]] = {
    "en": {
        _STRONG: "help helpme pls plz please need needs scared afraid hotline passport anyone someone "
                 "the my im cant wont dont didnt doesnt isnt what where think",
        _NORMAL: "i me am is are and you your u ur to of in it its this that with for not can do does did "
                 "how who why when hi hello hey thanks thank yes yeah stop work working job boss money pay "
                 "paid house home danger safe call text now they he she we will have has been was from at "
                 "out let leave friend number there get go hurt info befree owe him her them our us would "
                 "could should about know want just back here right place no police hours day free good morning "
                 "evening night",
        _WEAK: "ok okay",
    },
    "es": {
        _STRONG: "hola ayuda ayudame ayudenme ayudeme auxilio socorro necesito necesitamos porfa xfa gracias peligro "
                 "miedo pasaporte jefe estoy tengo quiero puedo dejan llamen llamenme hablan hablo espanol "
                 "ingles donde",
        _NORMAL: "el la los las un una unos unas que y yo mi mis me no si con para pero por favor es esta estan "
                 "soy hay como cuando cuanto quien nos les lo le del al muy mucho tambien ahora nada "
                 "nadie dinero casa trabajo trabajar trabajando pagan paga pago sueldo salir hacer se su sus "
                 "otro otra todo dia ya q tiene tienen ayudar hermana hermano esposo hijo hija familia amiga "
                 "amigo documentos policia telefono numero mensaje aqui patron o buenos buenas dias tardes noches en "
                 "bien",
    },
    "pt": {
        _STRONG: "ajuda ajude ajudem ajudar socorro preciso precisamos obrigado obrigada nao voce voces vc "
                 "estou perigo medo passaporte patrao meu minha pra pro consigo alguem",
        _NORMAL: "eu ele ela eles elas com um uma o os as do da dos das no na num numa em isso isto aqui agora "
                 "trabalho trabalhar dinheiro casa deixam sair onde como quando quem posso podem quero muito "
                 "tambem tenho tem estao sou ta to ninguem nada que por favor me se e oi ola pf pfv obg gente "
                 "familia filha filho marido liga ligar liguem meus minhas ou policia telefone numero para bom boa dia "
                 "tarde noite bem",
    },
    "fr": {
        _STRONG: "aide aidez aider besoin secours je suis moi svp stp merci bonjour passeport peur jai cest",
        _NORMAL: "j mon ma mes vous tu nous il elle ils elles est et le les des du un une pas ne n avec pour "
                 "dans sur oui non ou comment quand qui pourquoi peux peut veux ai c ce ca ici maintenant "
                 "personne rien tres aussi police appeler appelez quelqu mari femme enfants travail travailler "
                 "argent maison partir sortir patron chez rentrer danger salaire papiers au aux qu que si es y "
                 "on sont fait faire leur leurs mais la me se m numero telephone bonsoir en bien",
    },
    "ht": {
        _STRONG: "mwen bezwen ed ede tanpri souple mesi bonjou kounye kounyea kijan kisa poukisa genyen pral "
                 "konn kapab pesonn anyen isit yon danje sekou anpil kreyol ayisyen travay patwon lajan kob "
                 "lapolis paspo rele eske epi janm peye manje zanmi nimewo",
        _NORMAL: "m wi pa pou nan ak kote ki ye gen ap te ka vle moun fanm mari pitit timoun malad grangou sove "
                 "tou byen kay soti kite yo li nou se la sa ou non si e fe ba bay tout papye telefon",
    },
    "tl": {
        _STRONG: "tulong tulungan tulungin saklolo kailangan po opo salamat natatakot takot hindi ako ko mo nyo "
                 "niyo ninyo ikaw siya kami tayo kayo sila nila namin amin akin ang ng nang mga",
        _NORMAL: "ka sa na at ay oo wala walang may meron ito yan yun yung dito doon diyan saan nasaan paano ano "
                 "bakit kailan sino gusto ayaw ayoko pwede puwede trabaho amo pera sahod bahay umuwi uwi "
                 "pasaporte pulis tumawag tawagan kasi lang din rin naman pa ba nga kapatid anak asawa tao dahil "
                 "para pero wag huwag kaibigan ngayon mag nag ni si iba pala parang lahat gamit magandang umaga "
                 "gabi hapon",
    },
    "vi": {
        _STRONG: "toi giup cuu khong duoc nguoi viec tien cua nhung muon phai chieu canh dien thoai xin nhieu "
                 "chung minh nhe roi ngay tieng nguy hiem",
        _NORMAL: "lam nha chu oi dinh gia dang gap biet noi chuyen tot bao cao ma sao ai em anh chi gi dau nay "
                 "voi cam cho bi ve ra co khi thi ngoai trong tra luong mot hai va ho chao can do on so ban to an "
                 "hon the lo nam",
    },
}


def _fold(word: str) -> str:
    """Lower case without accents or stretched letters: 'Ayúdameee' -> 'ayudame', 'đỡ' -> 'do'."""
    word = word.lower().replace("đ", "d")
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
    return _STRETCHED.sub(r"\1", word)


def _build_keywords(source: Mapping[str, Mapping[float, str]]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for lang, tiers in source.items():
        words: dict[str, float] = {}
        for weight, text in tiers.items():
            for word in text.split():
                folded = _fold(word)
                words[folded] = max(weight, words.get(folded, 0.0))
        table[lang] = words
    return table


_KEYWORDS = _build_keywords(_KEYWORDS_SOURCE)

# --- py3langid's full model: related varieties that count as the candidate -----------------------
# The 140-language model splits probability between a language and its dialects and neighbours
# (Moroccan/Egyptian Arabic, Cantonese, Guadeloupean Creole, Bikol ...). For the "is this one of
# ours at all?" question these count as the candidate; zxx (no linguistic content) counts as nothing.
_RELATED: dict[str, str] = {
    "ary": "ar", "arz": "ar", "yue": "zh", "wuu": "zh", "gcf": "ht", "gcr": "ht", "bcl": "tl",
    "pcm": "en", "ext": "es", "an": "es", "gl": "es", "wa": "fr", "oc": "fr",
}
_NEUTRAL = frozenset({"zxx", "la"})

# --- tuning ------------------------------------------------------------------------------------
_KEYWORD_LOG_ODDS = math.log(6.0)      # one normal keyword: 6:1 for each language listing it
_VIETNAMESE_LOG_ODDS = math.log(40.0)  # each Vietnamese-only letter (counted up to three)
_PROB_FLOOR = 1e-6
_MIN_LETTERS_FOR_MODEL = 8             # below this the full model's opinion on "other language" is noise
_SHORT_LETTERS = 20                    # below this keyword coverage caps the confidence
_OUT_OF_SET_PROB = 0.8                 # full model this sure of languages we do not list -> not ours
_OUT_OF_SET_PROB_SHORT = 0.9
_UND_BELOW = 0.2                       # an answer less sure than this is reported as und
_TIE_MARGIN = 0.15
_ORDER_LOG_ODDS = 0.02                 # earlier in `languages` = more common here; decides exact ties only


@dataclass(frozen=True)
class _Models:
    restricted: Any      # py3langid LanguageIdentifier limited to the candidates it knows
    full: Any            # the same model over all its languages
    known: frozenset[str]


class CombinedLanguageDetector:
    """Script hints + keywords + py3langid restricted to `languages` (+ langdetect on close calls).

    `detect` never raises on odd input and never guesses with high confidence: see the module
    docstring. Only the first `max_chars` characters of a text are analysed.
    """

    def __init__(self, languages: Iterable[str] = DEFAULT_LANGUAGES, *, max_chars: int = DEFAULT_MAX_CHARS,
                 tie_breaker: bool = False, seed: int = 0) -> None:
        langs = tuple(dict.fromkeys(code.strip().lower() for code in languages))
        if not langs or any(not code for code in langs):
            raise ValueError("languages must be a non-empty tuple of language codes such as ('en', 'es')")
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.languages: tuple[str, ...] = langs
        self.max_chars = max_chars
        self.tie_breaker = tie_breaker
        self._seed = seed
        self._lock = threading.Lock()
        self._models: _Models | None = None
        self._langdetect: Any = None
        self._by_script: dict[str, tuple[str, ...]] = {}
        for code in langs:
            script = _SCRIPT_OF_LANGUAGE.get(code, _LATIN)
            self._by_script[script] = (*self._by_script.get(script, ()), code)
        latin = self._by_script.get(_LATIN, ())
        # None: some configured language's alphabet is not on record, so no letter counts as foreign
        self._latin_alphabet: frozenset[str] | None = None
        if latin and all(code in _LATIN_ALPHABET_EXTRAS for code in latin):
            self._latin_alphabet = frozenset("".join(_LATIN_ALPHABET_EXTRAS[code] for code in latin))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(languages={self.languages!r})"

    # -- lazy model loading ----------------------------------------------------------------------

    def _get_models(self) -> _Models:
        models = self._models
        if models is not None:
            return models
        with self._lock:
            if self._models is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                known = frozenset(full.labels)
                restricted = copy.copy(full)  # shares the model arrays; set_languages replaces, never mutates
                restricted.set_languages([code for code in self.languages if code in known] or None)
                self._models = _Models(restricted=restricted, full=full, known=known)
            return self._models

    def _get_langdetect(self) -> Any:
        if self._langdetect is not None:
            return self._langdetect
        with self._lock:
            if self._langdetect is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(self._seed)
                self._langdetect = factory
            return self._langdetect

    # -- detection -------------------------------------------------------------------------------

    def detect(self, text: str | None) -> Language:
        if not text or not isinstance(text, str):
            return UNDETERMINED
        sample = unicodedata.normalize("NFC", text[: self.max_chars])
        noise = len(_NOISE.findall(sample))
        if noise >= 3 and noise > _MAX_NOISE_SHARE * len(sample):
            return UNDETERMINED
        sample = _ENDLESS_WORD.sub(" ", _URLISH.sub(" ", _NOISE.sub("", sample)))

        counts = {script: len(pattern.findall(sample)) for script, pattern in _SCRIPT_PATTERNS.items()}
        letters = len(_LETTER.findall(sample))
        if letters == 0:
            return UNDETERMINED
        counts[_OTHER] = max(0, letters - sum(counts.values()))
        weights = {script: n * _SCRIPT_WEIGHT.get(script, 1.0) for script, n in counts.items()}
        if counts["kana"] and counts["kana"] * 10 >= counts["han"]:  # kana among ideographs: Japanese
            weights["kana"] += weights.pop("han")
        script = max(weights, key=lambda s: (weights[s], s))
        share = weights[script] / sum(weights.values())
        candidates = self._by_script.get(script, ())
        if not candidates:
            return UNDETERMINED

        if script != _LATIN and len(candidates) == 1:
            return self._single_script_language(candidates[0], sample, counts[script], share)
        return self._statistical(candidates, sample, letters, share)

    def _single_script_language(self, code: str, sample: str, n_letters: int, share: float) -> Language:
        confidence = 0.97 if n_letters >= 2 else 0.75
        foreign = _FOREIGN_LETTERS.get(code)
        if foreign is not None and foreign.search(sample):
            confidence = 0.3
        elif n_letters >= 8:
            full = self._get_models().full.rank(sample)
            if self._out_of_set(full, n_letters):
                confidence = 0.3
        return self._finish(code, confidence * share)

    def _statistical(self, candidates: tuple[str, ...], sample: str, letters: int, share: float) -> Language:
        tokens = [w for w in _WORD.findall(sample) if _SCRIPT_PATTERNS[_LATIN].match(w)]
        if letters < 2 or (not tokens and len(candidates) > 1 and letters < 4):
            return UNDETERMINED
        if len(_INNER_CAPITAL.findall(sample)) > max(2, len(tokens) // 3):
            return UNDETERMINED  # base64 and the like: not a language
        words = [_fold(w) for w in tokens]
        models = self._get_models()

        # (c) py3langid, renormalised over the candidates of this script
        ranked = dict(models.restricted.rank(sample)) if any(c in models.known for c in candidates) else {}
        total = sum(ranked.get(c, 0.0) for c in candidates)
        prior = {c: ranked.get(c, 0.0) / total if total > 0 else 1.0 / len(candidates) for c in candidates}
        # (b) keywords, (a) Vietnamese-only letters
        hits = {c: sum(_KEYWORDS.get(c, {}).get(w, 0.0) for w in words) for c in candidates}
        vietnamese = min(3, len(_VIETNAMESE.findall(sample)))

        scores = {}
        for rank, c in enumerate(candidates):
            score = math.log(max(prior[c], _PROB_FLOOR)) + _KEYWORD_LOG_ODDS * hits[c] - _ORDER_LOG_ODDS * rank
            if c == "vi":
                score += _VIETNAMESE_LOG_ODDS * vietnamese
            scores[c] = score
        top_score = max(scores.values())
        exp = {c: math.exp(score - top_score) for c, score in scores.items()}
        posterior = {c: v / sum(exp.values()) for c, v in exp.items()}
        order = sorted(candidates, key=lambda c: (-posterior[c], c))
        best, second = order[0], (order[1] if len(order) > 1 else None)

        confidence = posterior[best]
        if second is not None and posterior[best] - posterior[second] < _TIE_MARGIN:
            decided = self._break_tie(sample, best, second, letters)
            if decided == second:
                best, second = second, best
            if decided in (best, second):
                confidence = min(0.6, (posterior[best] + posterior[second]) / 2)
            elif hits[best] == hits[second] and abs(prior[best] - prior[second]) < 1e-3:
                return UNDETERMINED  # a genuine tie: "no" is English, Spanish and Portuguese

        coverage = sum(1 for w in words if w in _KEYWORDS.get(best, {})) / max(1, len(words))
        confidence = min(confidence, self._evidence_cap(best, candidates, words, letters, coverage, hits[best],
                                                        vietnamese))
        if self._foreign_letters(sample, letters):
            confidence = min(confidence, 0.3)
        if letters >= _MIN_LETTERS_FOR_MODEL and coverage < 0.35:
            if self._out_of_set(models.full.rank(sample), letters):
                return UNDETERMINED  # German, Italian, Indonesian ...: not one of ours
        return self._finish(best, confidence * share)

    @staticmethod
    def _evidence_cap(best: str, candidates: tuple[str, ...], words: list[str], letters: int, coverage: float,
                      hits: float, vietnamese: int) -> float:
        """How sure the evidence allows us to be, whatever the posterior says."""
        cap = 0.45 + 0.1 * letters  # a word or two cannot be more than this sure
        mine = _KEYWORDS.get(best)
        if not mine:
            return min(cap, 0.99)
        if letters < _SHORT_LETTERS:
            cap = min(cap, 0.45 + 0.55 * coverage)
        if hits == 0 and not (best == "vi" and vietnamese):
            cap = min(cap, 0.6 if len(words) > 3 else 0.4)  # nothing but n-grams to go on
        elif hits < 1.0:
            cap = min(cap, 0.45)  # only a borrowed word such as "ok"
        if best == "vi" and vietnamese >= 2:
            return cap
        # mixed messages: the words only another language uses temper the answer
        for other in candidates:
            theirs = _KEYWORDS.get(other)
            if other == best or not theirs:
                continue
            own = sum(theirs.get(w, 0.0) for w in words if w not in mine)
            ours = sum(mine.get(w, 0.0) for w in words if w not in theirs)
            if own >= 2.0 and hits > 0:
                cap = min(cap, 0.5 + 0.5 * (ours - own) / max(ours + own, 1.0))
        return cap

    def _foreign_letters(self, sample: str, letters: int) -> bool:
        """Letters (ł ż ß ğ ř ...) that none of the configured Latin-script languages writes."""
        if self._latin_alphabet is None:
            return False
        foreign = sum(1 for ch in _NON_ASCII_LATIN.findall(sample) if ch.lower() not in self._latin_alphabet)
        return foreign > 0 and foreign >= 0.02 * letters

    def _out_of_set(self, full_ranking: list[tuple[str, float]], letters: int) -> bool:
        """The full model puts (nearly) all its probability on languages we do not list.

        Summed, not just the top one: Indonesian is split between id and ms, Romanian between ro,
        it and la. Short texts need a surer model, as it spreads them over many languages.
        """
        other = sum(prob for lang, prob in full_ranking
                    if lang not in _NEUTRAL and lang not in self.languages and _RELATED.get(lang) not in self.languages)
        return other >= (_OUT_OF_SET_PROB if letters >= _SHORT_LETTERS else _OUT_OF_SET_PROB_SHORT)

    def _break_tie(self, sample: str, first: str, second: str, letters: int) -> str | None:
        """langdetect, limited to the two front runners, on texts long enough for it to mean something."""
        if not self.tie_breaker or letters < 10:
            return None
        aliases = {"zh": ("zh-cn", "zh-tw")}
        prior: dict[str, float] = {}
        for code in (first, second):
            for alias in aliases.get(code, (code,)):
                prior[alias] = 1.0
        factory = self._get_langdetect()
        if not all(alias in factory.langlist for alias in prior):
            return None
        from langdetect.lang_detect_exception import LangDetectException

        try:
            detector = factory.create()
            detector.set_prior_map(prior)
            detector.append(sample)
            probs = detector.get_probabilities()
        except LangDetectException:
            return None
        if not probs:
            return None
        winner = probs[0].lang
        return "zh" if winner.startswith("zh") else winner

    @staticmethod
    def _finish(code: str, confidence: float) -> Language:
        confidence = max(0.0, min(1.0, confidence))
        if confidence < _UND_BELOW:
            return UNDETERMINED
        return Language(code, round(confidence, 3))
