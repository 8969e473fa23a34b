"""Token sequences of one tokenizer turned into another's through bytes (for draft models with a different
tokenizer; universal assisted decoding, Timor et al. 2025).

Every token of a byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM) or byte-fallback SentencePiece tokenizer stands
for a fixed byte string; a special token stands for its text. Byte-level tokens may split a UTF-8 character, so
text is the wrong unit: sequences are joined as bytes, and bytes are encoded back into tokens by the tokenizer on
their valid UTF-8 runs, with a single-byte token for each byte of a split character.

- `Vocabulary`: a tokenizer's bytes per token id, its single-byte tokens and its word boundaries.
- `TokenMap`: token ids of one vocabulary to the other's by exact byte strings (used where the two vocabularies
  share most tokens, e.g. one is a permutation of the other).
- `check_pair`: the round trip a pair must pass before it is used.
"""

from __future__ import annotations

import json
from functools import lru_cache

from specdec.errors import ConfigError


class Untranslatable(Exception):
    """These bytes have no token sequence in this vocabulary (the step drafts nothing)."""


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (Radford et al. 2019): printable Latin-1 bytes stand for themselves, the
    other 68 bytes for the characters 256, 257, ... in byte order. Character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _decoder_types(tokenizer) -> set[str]:
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except AttributeError:                         # a slow (Python) tokenizer
        return set()
    parts = spec.get("decoders", [spec]) if spec.get("type") == "Sequence" else [spec]
    return {p.get("type") for p in parts}


class Vocabulary:
    """The bytes each token id stands for (None: none, e.g. an id past the tokenizer), and encoding of bytes."""

    def __init__(self, tokenizer, size: int | None = None):
        self.tokenizer = tokenizer
        n = max(len(tokenizer), size or 0)
        vocab = tokenizer.get_vocab()                                  # token string -> id (added tokens too)
        self.special = {t.content: i for i, t in tokenizer.added_tokens_decoder.items()}
        self.special_ids = set(self.special.values())
        kinds = _decoder_types(tokenizer)
        self.scheme = ("byte-level" if "ByteLevel" in kinds else
                       "byte-fallback" if "ByteFallback" in kinds else "text")
        alphabet = _byte_level_alphabet()
        self.bytes: list[bytes | None] = [None] * n
        for piece, i in vocab.items():
            if i >= n:
                continue
            if i in self.special_ids:
                self.bytes[i] = piece.encode()
            elif self.scheme == "byte-level":
                try:
                    self.bytes[i] = bytes(alphabet[c] for c in piece)
                except KeyError:                  # not in the alphabet: a token the decoder cannot produce
                    self.bytes[i] = None
            elif self.scheme == "byte-fallback" and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                self.bytes[i] = bytes([int(piece[3:5], 16)])
            elif self.scheme == "byte-fallback":
                self.bytes[i] = piece.replace("\u2581", " ").encode()
            else:
                self.bytes[i] = tokenizer.decode([i]).encode()
        # one token per byte value, for bytes of a character split across tokens (the plainest id if several)
        self.byte_token: dict[int, int] = {}
        for i, b in enumerate(self.bytes):
            if b is not None and len(b) == 1 and i not in self.special_ids and b[0] not in self.byte_token:
                self.byte_token[b[0]] = i
        pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
        self._pre = pre

    def __len__(self) -> int:
        return len(self.bytes)

    def join(self, ids) -> bytes:
        out = []
        for i in ids:
            b = self.bytes[i] if 0 <= i < len(self.bytes) else None
            if b is None:
                raise Untranslatable(f"token {i} has no bytes")
            out.append(b)
        return b"".join(out)

    def encode(self, data: bytes) -> list[int]:
        """Token ids whose bytes are exactly `data`: the tokenizer on each valid UTF-8 run, a single-byte token
        for each stray byte. Untranslatable when a byte has no token or the tokenizer changes the text."""
        ids, pos = [], 0
        while pos < len(data):
            try:
                text = data[pos:].decode("utf-8")
                run = len(data) - pos
            except UnicodeDecodeError as e:
                text = data[pos:pos + e.start].decode("utf-8")
                run = e.start
            if run:
                got = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                if self.join(got) != data[pos:pos + run]:
                    raise Untranslatable(f"the tokenizer does not reproduce {text[:40]!r}")
                ids += got
                pos += run
            if pos < len(data):                                        # a byte of a split character
                byte = data[pos]
                if byte not in self.byte_token:
                    raise Untranslatable(f"no token for byte 0x{byte:02x}")
                ids.append(self.byte_token[byte])
                pos += 1
        return ids

    def last_word_start(self, data: bytes) -> int:
        """Byte offset where the last word (pre-token) of `data` starts: a continuation cut at the end of `data`
        may still change how that word is tokenized, never the words before it. len(data) if unknown."""
        if self._pre is None:
            return len(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return len(data)
        pieces = self._pre.pre_tokenize_str(text)
        if len(pieces) < 2:
            return 0
        return len(text[:pieces[-1][1][0]].encode())


class TokenMap:
    """Ids of `src` to ids of `dst` with the same bytes (specials by their text)."""

    def __init__(self, src: Vocabulary, dst: Vocabulary):
        by_bytes: dict[bytes, int] = {}
        for i, b in enumerate(dst.bytes):
            if b is not None and (b not in by_bytes or by_bytes[b] in dst.special_ids):
                by_bytes[b] = i                                        # plain tokens before specials
        self.ids = {i: by_bytes[b] for i, b in enumerate(src.bytes) if b is not None and b in by_bytes
                    and ((i in src.special_ids) == (by_bytes[b] in dst.special_ids))}
        known = sum(b is not None for b in src.bytes)
        self.coverage = len(self.ids) / known if known else 0.0

    def __call__(self, ids) -> list[int] | None:
        """The mapped ids, or None if one of them has no counterpart."""
        out = []
        for i in ids:
            j = self.ids.get(i)
            if j is None:
                return None
            out.append(j)
        return out


PROBE = ("Speculative decoding, explained:\n\tdef f(x):\n        return x ** 2  # 42 < 100 >= 7\n"
         "Größe, café, naïve; 東京は晴れ。 Emoji: 🙂🚀 — “quotes” & 'apostrophes' {json: [1, 2.5e-3]}")


def check_pair(target: Vocabulary, draft: Vocabulary, target_name: str, draft_name: str) -> None:
    """Refuse a pair whose tokenizers cannot carry text between them: each must reproduce the other's text of a
    probe (code, accents, CJK, emoji) byte for byte through the other's tokens."""
    data = PROBE.encode()
    for name, vocab in ((target_name, target), (draft_name, draft)):
        try:
            if vocab.join(vocab.encode(data)) != data:
                raise Untranslatable("bytes differ")
        except (Untranslatable, IndexError) as e:
            raise ConfigError(
                f"the tokenizer of {name!r} cannot reproduce text byte for byte ({e}); accepted for a draft model "
                f"with another tokenizer: byte-level BPE or byte-fallback tokenizers without a lossy normalizer "
                f"on both sides") from None
