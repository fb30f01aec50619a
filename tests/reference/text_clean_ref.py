"""text_clean_ref.py - stdlib reference for the family text cleaning (src/text/clean.c).

open_clip_clean(text): open_clip HFTokenizer clean='whitespace' = ftfy.fix_text, html.unescape twice,
strip, " ".join(text.split()), with ftfy restricted to the steps medvlp reproduces (ftfy itself is not
installed here; the steps follow ftfy 6's fix_text order and tables as documented in clean.c).
himl_clean(text): hi-ml's prompt.rstrip("!?.").
"""
import html
import re
import unicodedata

LIGATURES = "\u0132\u0133\u0149\u01c4\u01c5\u01c6\u01c7\u01c8\u01c9\u01ca\u01cb\u01cc\u01f1\u01f2\u01f3" \
            "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
TERMINAL_ESCAPE = re.compile("\x1b\\[[0-9;]*[a-zA-Z]")
CONTROL = set(range(0x00, 0x09)) | {0x0B} | set(range(0x0E, 0x20)) | {0x7F} | set(range(0x206A, 0x2070)) \
    | {0xFEFF} | set(range(0xFFF9, 0xFFFD))


def ftfy_subset(text):
    text = TERMINAL_ESCAPE.sub("", text)
    text = "".join(unicodedata.normalize("NFKD", ch) if ch in LIGATURES else ch for ch in text)  # ftfy: "ﬅ" -> "ſt"
    text = text.replace("\u3000", " ")
    text = "".join(unicodedata.normalize("NFKC", ch) if 0xFF01 <= ord(ch) <= 0xFFEF else ch for ch in text)
    text = re.sub("[\u02bc\u2018-\u201b]", "'", text)
    text = re.sub("[\u201c-\u201f]", '"', text)
    text = text.replace("\r\n", "\n")
    text = re.sub("[\r\u2028\u2029\u0085]", "\n", text)
    text = "".join(ch for ch in text if ord(ch) not in CONTROL)
    return unicodedata.normalize("NFC", text)


def open_clip_clean(text):
    text = html.unescape(html.unescape(ftfy_subset(text))).strip()
    return " ".join(text.split())


def himl_clean(text):
    return text.rstrip("!?.")
