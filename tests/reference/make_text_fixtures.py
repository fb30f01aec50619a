"""make_text_fixtures.py - corpus, synthetic vocabularies and expected ids for tests/text.

Run from the repository root:  /usr/bin/python3 tests/reference/make_text_fixtures.py

Writes tests/fixtures/text/:
  corpus.jsonl                 one JSON string per line (control chars, NUL, lone \\r survive)
  vocab_uncased.txt            specials at 0..4 ([PAD] [UNK] [CLS] [SEP] [MASK], like CXR-BERT/PubMedBERT)
  vocab_cased.txt              specials at bert-base positions (0, 100, 101, 102, 103)
  expected_uncased_256.jsonl   ids per corpus line (BertTokenizerRef, do_lower_case=True, max_len 256)
  expected_cased_256.jsonl     ids per corpus line (do_lower_case=False, max_len 256)
  expected_uncased_16.jsonl    ids per corpus line (do_lower_case=True, max_len 16: truncation)
  cli_corpus.txt, cli_expected_*.jsonl   the corpus lines without "\\n", as raw stdin for the CLI test
  clean_cases.jsonl            {"text", "open_clip", "himl"} from tests/reference/text_clean_ref.py

Real model vocabularies cannot be committed, so the vocabularies are built from the corpus: whole
words, "##" pieces, punctuation, some accented and CJK entries, and deliberate holes so [UNK] (unknown
character, unknown word, > 100 characters) is exercised.

Unicode versions: transformers uses Python's unicodedata (14.0 on Python 3.11) while medvlp uses
utf8proc (15.0 for 2.8). The corpus only holds code points on which both agree (category checked
against libutf8proc through ctypes when it is available); code points assigned after Unicode 14 would
be Cn (dropped) for Python but letters for utf8proc.
"""
import ctypes
import json
import os
import random
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_tokenizer_ref import BertTokenizerRef, SPECIAL_TOKENS  # noqa: E402
from text_clean_ref import himl_clean, open_clip_clean  # noqa: E402

OUT = os.path.join("tests", "fixtures", "text")

HANDWRITTEN = [
    "No acute cardiopulmonary process.",
    "Heart size is normal. Lungs are clear. No pneumothorax or pleural effusion.",
    "PA and lateral views of the chest: mild cardiomegaly, no focal consolidation.",
    "Small left pleural effusion with adjacent atelectasis; no pneumothorax.",
    "ET tube tip 3.5 cm above the carina; NG tube courses below the diaphragm.",
    "Right IJ CVC terminates in the SVC. s/p CABG with median sternotomy wires.",
    "COPD w/ hyperinflation, flattened hemidiaphragms (c/w emphysema).",
    "Mass measures 3.5x4.2cm on T2-weighted MRI; previously 3.1 x 3.9 cm.",
    "BP 120/80 mmHg, HR 88 bpm, SpO2 97% on 2L NC, T 38.2°C.",
    "Dose: 5 mg/kg q8h IV x 7d; WBC 12.3 x10^9/L; Hb 9.8 g/dL.",
    "CT A/P w/o contrast: 1.2-cm hypodense lesion in segment VII (likely cyst).",
    "Follow-up in 6-8 weeks ± repeat CXR; ~50% reduction vs. prior (2019-03-14).",
    "pt c/o SOB & CP x3 days -> r/o PE; D-dimer >500 ng/mL.",
    "The patient's café-au-lait spots; Sjögren's syndrome; Ménière's disease.",
    "Crème brûlée, naïve, coöperate, façade, Ångström, Øresund, Łódź.",
    "İstanbul İzmir DİYARBAKIR ıi Iİ",
    "Straße Fußgänger GROSSE große ß ẞ",
    "ΟΔΟΣ Σίσυφος σοφός ΣΟΦΟΣ ς σ Σ",
    "ﬁbrosis ﬂuid eﬀusion oﬃce ﬄuid ﬅ ﬆ Ĳssel ǅ ǈ",
    "ＣＴ　ｓｃａｎ：　ＮＯ　ＡＣＵＴＥ　１２３　ｶﾞｲﾄﾞ",
    "肺炎 胸腔积液 心脏扩大 no acute",
    "胸部X線写真で異常なし。心拡大なし",
    "폐렴 흉수 (Korean) 폐렴",
    "\u1100\u1161\u11a8 decomposed hangul jamo",
    "e\u0301 combining acute, a\u0308, n\u0303, cafe\u0301, CAFE\u0301",
    "\u0130\u0307 dotted I with extra dot, I\u0307 decomposed",
    "emoji 😀 😷 🫁 🩺 ❤️ 👍🏽 👨‍⚕️ done",
    "control\x01chars\x02here\x7f and \x1b[31mred\x1b[0m",
    "nul\x00inside\x00word and \x00 alone",
    "replacement \ufffd char\ufffdhere",
    "zero\u200bwidth\u200cjoiner\u200dmark\ufeffbom\u2060wj",
    "soft\u00adhyphen bi\u00addi\u200erectional\u200f marks",
    "tab\tseparated\tvalues\t\tend",
    "vertical\x0btab and form\x0cfeed",
    "file\x1csep group\x1dsep record\x1esep unit\x1fsep",
    "next\x85line line\u2028sep para\u2029sep",
    "no\u00a0break space\u2009thin\u3000ideographic\u202fnarrow",
    "carriage\rreturn",
    "crlf\r\nline",
    "multi\nline\ntext",
    "",
    "   ",
    "\t\n\r",
    "[MASK]",
    "[SEP]",
    "Findings: [MASK] pleural effusion.",
    "left [MASK] effusion [SEP] right lung clear",
    "x[MASK]y[SEP]z[CLS]w[UNK]v[PAD]u",
    "[[MASK]] [MASK [MASK] ] [mask] [Mask] [ MASK ]",
    "[MA\u200bSK] [MASK\u200b] [\u200bMASK]",
    "[MASK][MASK][MASK]",
    "[UNK] is unknown, [CLS] starts, [PAD] pads",
    "ＭＡＳＫ [ＭＡＳＫ] ［MASK］",
    "$100 + 50% = <value> ^ `code` | ~approx {braces} \\ back",
    "¡Hola! ¿Qué tal? «quoted» „low“ ‘single’ “double” — dash – en … ellipsis",
    "a…b a—b a–b a·b a•b a§b a¶b a†b",
    "x²+y³=z₁ ½ ¼ ™ © ® ° µ",
    "1,000 1.000,5 -3.2e-5 +7 10^6 0.5mm 12mm 5mL",
    "URL http://example.org/a?b=c&d=e#frag email a.b@c.de",
    "Nǐ hǎo; Tiếng Việt; ภาษาไทย; हिन्दी; العربية; עברית",
    "Ⅻ ⅻ ① ⑴ ℃ ℉ Å K",
    "\U00020000\U0002a700 extension CJK \U0002f800 compat",
    "\uf900\uf901 compatibility ideographs",
    "ǅungla ǲ ǈ title case digraphs",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789",
    "pneumothorax pneumothoraces pneumonia pneumonitis pneumomediastinum",
    "unknownword xyzzy qwertyuiop",
    "unaffordable superabundantly antidisestablishmentarianism",
    "\u0301 leading combining mark \u0308\u0301",
    "Ⱥ Ⱦ ẞ ǅ ᾈ ᾼ ῼ",
    "\ue000 private use \U000f0000 plane 15",
    "\u0378 unassigned \u0380",
    "&amp; &lt;b&gt; &#39;html&#39; entities stay literal for BERT",
]

FINDINGS = ["opacity", "consolidation", "effusion", "pneumothorax", "atelectasis", "edema", "cardiomegaly",
            "nodule", "mass", "fracture", "emphysema", "fibrosis", "infiltrate", "granuloma", "hernia"]
LOCATIONS = ["right upper lobe", "left lower lobe", "lingula", "right middle lobe", "bilateral bases",
             "retrocardiac region", "left apex", "costophrenic angle", "hilum", "mediastinum"]
MODIFIERS = ["mild", "moderate", "severe", "small", "large", "trace", "new", "stable", "unchanged",
             "worsening", "improving", "subtle", "possible", "no evidence of", "resolving"]
EXTRAS = ["", ".", " since prior study.", " (compared with 2021-04-02).", " - recommend CT.",
          "; clinical correlation advised.", " ~2.3 cm.", " ×3.", "!", " ??", " [MASK]."]


def make_corpus():
    rng = random.Random(1234)
    lines = list(HANDWRITTEN)
    for _ in range(200):
        sentence = f"{rng.choice(MODIFIERS)} {rng.choice(FINDINGS)} in the {rng.choice(LOCATIONS)}" \
                   f"{rng.choice(EXTRAS)}"
        if rng.random() < 0.3:
            sentence = sentence.upper()
        elif rng.random() < 0.3:
            sentence = sentence.capitalize()
        lines.append(sentence)
    for n in range(30):  # numbers, units, hyphenation
        lines.append(f"{rng.randint(1, 99)}.{rng.randint(0, 9)}x{rng.randint(1, 9)}.{rng.randint(0, 9)}cm "
                     f"T{rng.randint(1, 2)}-weighted lesion #{n} at {rng.randint(1, 12)} o'clock")
    lines.append("a" * 100)
    lines.append("b" * 101)
    lines.append("pneumo" * 17)  # 102 characters
    lines.append("x" * 1000 + " tail")
    lines.append("é" * 100 + " " + "é" * 101)
    lines.append("e\u0301" * 60)  # 120 code points before NFC, 60 after
    long_report = " ".join(rng.choice(FINDINGS + MODIFIERS + ["the", "of", "and", ",", "."]) for _ in range(400))
    lines.append(long_report)
    lines.append(" ".join(["[MASK]"] * 300))
    lines.append("word " * 20)
    lines.append("no\n".join(["acute"] * 5))
    return lines


def utf8proc_agrees(lines):
    """Every code point has the same general category in Python's unicodedata and libutf8proc."""
    try:
        lib = ctypes.CDLL("libutf8proc.so.2")
    except OSError:
        print("libutf8proc not found: Unicode version check skipped", file=sys.stderr)
        return
    lib.utf8proc_category_string.restype = ctypes.c_char_p
    for line in lines:
        for ch in line:
            ours = lib.utf8proc_category_string(ord(ch)).decode()
            if ours != unicodedata.category(ch):
                raise SystemExit(f"U+{ord(ch):04X}: Python says {unicodedata.category(ch)}, utf8proc {ours}")


def basic_words(lines, do_lower_case):
    """The whitespace/punctuation words BasicTokenizer produces, to build vocabularies from."""
    probe = BertTokenizerRef.__new__(BertTokenizerRef)
    probe.do_lower_case, probe.strip_accents, probe.tokenize_chinese_chars = do_lower_case, None, True
    words = []
    for line in lines:
        text = "".join(ch.lower() for ch in line) if do_lower_case else line
        words.extend(probe._basic_tokenize(text))
    return words


def build_vocab(words, seed, missing):
    rng = random.Random(seed)
    tokens = []
    seen = set(SPECIAL_TOKENS)

    def add(token):
        if token and token not in seen:
            seen.add(token)
            tokens.append(token)

    chars = sorted({ch for w in words for ch in w})
    for ch in chars:
        if ch in missing:
            continue
        add(ch)
        if rng.random() < 0.9:
            add("##" + ch)
    for word in sorted(set(words)):
        if word in missing or word in SPECIAL_TOKENS or len(word) > 100:
            continue
        roll = rng.random()
        if roll < 0.45:
            add(word)
        elif roll < 0.8 and len(word) > 3:
            cut = rng.randint(2, len(word) - 1)
            add(word[:cut])
            add("##" + word[cut:])
    return tokens


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = make_corpus()
    utf8proc_agrees(corpus)
    uncased_missing = {"😷", "🫁", "폐", "xyzzy", "qwertyuiop", "unknownword", "ภ", "\u2603"}
    cased_missing = {"😷", "흉", "xyzzy", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Ł", "ß"}
    uncased = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    uncased += build_vocab(basic_words(corpus, True), 1, uncased_missing)
    cased = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cased += build_vocab(basic_words(corpus, False), 2, cased_missing)
    write_lines(os.path.join(OUT, "vocab_uncased.txt"), uncased)
    write_lines(os.path.join(OUT, "vocab_cased.txt"), cased)
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="ascii") as f:
        for line in corpus:
            f.write(json.dumps(line) + "\n")

    configs = {
        "uncased_256": (os.path.join(OUT, "vocab_uncased.txt"), True, 256),
        "cased_256": (os.path.join(OUT, "vocab_cased.txt"), False, 256),
        "uncased_16": (os.path.join(OUT, "vocab_uncased.txt"), True, 16),
    }
    cli_lines = [line for line in corpus if "\n" not in line]
    with open(os.path.join(OUT, "cli_corpus.txt"), "wb") as f:
        for line in cli_lines:
            f.write(line.encode("utf-8") + b"\n")
    for name, (vocab, lower, max_len) in configs.items():
        tok = BertTokenizerRef(vocab, do_lower_case=lower)
        with open(os.path.join(OUT, f"expected_{name}.jsonl"), "w") as f:
            for line in corpus:
                f.write(json.dumps(tok.encode(line, max_len), separators=(",", ":")) + "\n")
        with open(os.path.join(OUT, f"cli_expected_{name}.jsonl"), "w") as f:
            for line in cli_lines:
                f.write(json.dumps(tok.encode(line, max_len), separators=(",", ":")) + "\n")

    clean_inputs = corpus[:90] + [
        "  A &amp; B &lt;3 &gt; &quot;quoted&quot; &#39;single&#39; &#x41;&#66; &amp;amp; &amp;lt;  ",
        "&copy &copyx &notin; &notit; &ampx &AMP; &Amp; &#0; &#x80; &#x9f; &#xD800; &#1114112; &#99999999999;",
        "&#x; &#; & ; &nosuchentity; &lt &gt= &#65 &#x42q &NotANumber; &nbsp;x&NoBreak;y",
        "&" + "a" * 40 + "; &longleftrightarrow; &CounterClockwiseContourIntegral; &fjlig; &ThickSpace;",
        "“Curly” ‘quotes’ ‛reversed‟ ʼapostrophe ŉ ﬁnal ﬅ Ǆ ǆ",
        "Ｆｕｌｌ－ｗｉｄｔｈ　ＣＴ：１２３ ﾊﾟﾝ ｶﾞ ￥￦",
        "line\r\nbreaks\rhere\u2028and\u2029there\x85end",
        "bom\ufeff and \u206a deprecated \ufff9annot\ufffb \x7f del \x1b[1;31mred\x1b[0m \x1b[ not",
        "e\u0301 → NFC; Å vs A\u030a; 한 vs \u1112\u1161\u11ab",
        "No acute process!!!", "Is there effusion??", "Pneumothorax...", "Mixed.?!.", "!?.", "keep. this",
        "trailing space. ", "&amp;amp;", "a&#10;b&#9;c", "\u00a0\u00a0nbsp\u00a0\u00a0",
    ]
    with open(os.path.join(OUT, "clean_cases.jsonl"), "w", encoding="ascii") as f:
        for text in clean_inputs:
            f.write(json.dumps({"text": text, "open_clip": open_clip_clean(text), "himl": himl_clean(text)}) + "\n")
    print(f"{len(corpus)} corpus lines ({len(cli_lines)} for the CLI), vocab sizes "
          f"{len(uncased)} uncased / {len(cased)} cased, {len(clean_inputs)} cleaning cases")


if __name__ == "__main__":
    main()
