"""bert_tokenizer_ref.py - an independent Python port of Hugging Face's slow BertTokenizer.

The reference the C tokenizer (src/text/) is tested against. Written from a reading of transformers'
`models/bert/tokenization_bert.py` (load_vocab, BasicTokenizer, WordpieceTokenizer, BertTokenizer._tokenize)
and `tokenization_utils.py` (_is_whitespace, _is_control, _is_punctuation, PreTrainedTokenizer.tokenize,
Trie.split), current main branch (BasicTokenizer NFC-normalises before splitting). Only the stdlib is
used (unicodedata), so it runs under Debian's /usr/bin/python3 without transformers.

    from bert_tokenizer_ref import BertTokenizerRef
    tok = BertTokenizerRef("vocab.txt", do_lower_case=True, strip_accents=None)
    ids = tok.encode("No acute cardiopulmonary process.", max_len=256)  # [CLS] ... [SEP], truncated

Behaviour reproduced (each line is a fact of the transformers source):
- vocab: file read in text mode (universal newlines: "\\r\\n" and "\\r" end lines too), each line
  rstrip("\\n"), id = line number; a repeated token maps to its LAST line.
- PreTrainedTokenizer.tokenize: with do_lower_case, every character outside a verbatim special token is
  lowercased ONE CHARACTER AT A TIME (a regex `(special|...)|(.+?)` with .lower() per match, so no
  final-sigma context); the text is then split on the special tokens (a trie: leftmost match), which
  become single tokens; the other pieces go to _tokenize.
- BasicTokenizer.tokenize: clean_text, CJK spacing, NFC, whitespace split, per token (unless it is a
  special token): lower + strip accents (NFD, drop Mn) as configured, punctuation split; then
  whitespace split again.
- WordpieceTokenizer: > 100 code points -> [UNK]; greedy longest match with "##"; no match -> [UNK].
- encode: [CLS] + pieces[:max_len-2] + [SEP].
"""
import unicodedata

SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
MAX_INPUT_CHARS_PER_WORD = 100


def load_vocab(path):
    vocab = {}
    with open(path, "r", encoding="utf-8") as f:
        for index, line in enumerate(f.readlines()):
            vocab[line.rstrip("\n")] = index
    return vocab


def is_whitespace(ch):
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def whitespace_split(text):
    text = text.strip()
    return text.split() if text else []


def strip_accents(text):
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


class BertTokenizerRef:
    def __init__(self, vocab_path, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True):
        self.vocab = load_vocab(vocab_path)
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        for name in ("[CLS]", "[SEP]", "[UNK]", "[PAD]"):
            if name not in self.vocab:
                raise ValueError(f"{vocab_path}: vocabulary has no {name}")
        # Special tokens split the text only when they are real tokens of the vocabulary.
        self.split_tokens = [t for t in SPECIAL_TOKENS if t in self.vocab]

    # --- PreTrainedTokenizer.tokenize ---
    def _split_on_specials(self, text):
        """[(piece, is_special)] with every leftmost occurrence of a special token cut out."""
        pieces, start, pos = [], 0, 0
        while pos < len(text):
            hit = next((t for t in self.split_tokens if text.startswith(t, pos)), None)
            if hit is None:
                pos += 1
                continue
            if pos > start:
                pieces.append((text[start:pos], False))
            pieces.append((hit, True))
            pos += len(hit)
            start = pos
        if start < len(text):
            pieces.append((text[start:], False))
        return pieces

    def tokenize(self, text):
        tokens = []
        for piece, special in self._split_on_specials(text):
            if special:
                tokens.append(piece)
                continue
            if self.do_lower_case:
                piece = "".join(ch.lower() for ch in piece)
            for word in self._basic_tokenize(piece):
                tokens.extend(self._wordpiece(word))
        return tokens

    # --- BasicTokenizer.tokenize ---
    def _basic_tokenize(self, text):
        text = "".join(" " if is_whitespace(ch) else ch for ch in text
                       if ord(ch) != 0 and ord(ch) != 0xFFFD and not is_control(ch))
        if self.tokenize_chinese_chars:
            text = "".join(f" {ch} " if is_cjk(ord(ch)) else ch for ch in text)
        text = unicodedata.normalize("NFC", text)
        split = []
        for token in whitespace_split(text):
            if token in SPECIAL_TOKENS:
                split.append(token)
                continue
            if self.do_lower_case:
                token = token.lower()
                if self.strip_accents is not False:
                    token = strip_accents(token)
            elif self.strip_accents:
                token = strip_accents(token)
            split.extend(self._split_on_punctuation(token))
        return whitespace_split(" ".join(split))

    @staticmethod
    def _split_on_punctuation(token):
        out, current = [], []
        for ch in token:
            if is_punctuation(ch):
                if current:
                    out.append("".join(current))
                    current = []
                out.append(ch)
            else:
                current.append(ch)
        if current:
            out.append("".join(current))
        return out

    # --- WordpieceTokenizer.tokenize (one whitespace-free word) ---
    def _wordpiece(self, word):
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            match = None
            while start < end:
                candidate = ("##" if start > 0 else "") + word[start:end]
                if candidate in self.vocab:
                    match = candidate
                    break
                end -= 1
            if match is None:
                return ["[UNK]"]
            pieces.append(match)
            start = end
        return pieces

    def convert_tokens_to_ids(self, tokens):
        unk = self.vocab["[UNK]"]
        return [self.vocab.get(t, unk) for t in tokens]

    def encode(self, text, max_len):
        if max_len < 2:
            raise ValueError("max_len must leave room for [CLS] and [SEP]")
        ids = self.convert_tokens_to_ids(self.tokenize(text))[:max_len - 2]
        return [self.vocab["[CLS]"]] + ids + [self.vocab["[SEP]"]]
