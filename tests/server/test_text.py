"""Streamed text: deltas add up to the final text, an incomplete UTF-8 character and a possible stop string's
start are held back, and nothing from a stop string on is ever sent."""

from __future__ import annotations

from specdec.server.text import TextStream


def byte_decode(ids: list[int]) -> str:
    """Token id = one byte, decoded as a tokenizer does (invalid bytes as U+FFFD)."""
    return bytes(ids).decode("utf-8", errors="replace")


def tokens(text: str) -> list[list[int]]:
    return [[b] for b in text.encode()]


def run(text: str, stop=()) -> list[str]:
    stream = TextStream(byte_decode, tuple(stop))
    return [stream.add(t) for t in tokens(text)] + [stream.finish()]


def test_deltas_add_up_to_the_text_and_hold_back_incomplete_characters():
    deltas = run("héllo ☃!")
    assert "".join(deltas) == "héllo ☃!"
    assert all("\ufffd" not in d for d in deltas)
    assert deltas[1:3] == ["", "é"]                    # é is two bytes: nothing until both arrived


def test_text_from_a_stop_string_on_is_never_sent():
    deltas = run("one two STOP three", stop=["STOP"])
    assert "".join(deltas) == "one two "
    assert all("S" not in d for d in deltas)            # "S", "ST", "STO" were held back, then dropped


def test_a_false_start_of_a_stop_string_is_sent_once_it_cannot_match():
    deltas = run("a STAR b", stop=["STOP"])
    assert "".join(deltas) == "a STAR b"
    assert deltas[2:5] == ["", "", "STA"]               # "S", "ST" held; "STA" cannot start "STOP"


def test_the_earliest_of_several_stop_strings_wins_and_the_end_flushes_an_incomplete_character():
    assert "".join(run("x END y HALT", stop=["HALT", "END"])) == "x "
    stream = TextStream(byte_decode)
    assert stream.add([0xE2, 0x98]) == ""
    assert stream.finish() == "\ufffd"


def test_a_long_answer_is_decoded_a_few_tokens_at_a_time():
    seen = []

    def counting_decode(ids):
        seen.append(len(ids))
        return byte_decode(ids)

    text = "naïve café ☃ " * 200
    stream = TextStream(counting_decode)
    deltas = [stream.add(t) for t in tokens(text)] + [stream.finish()]
    assert "".join(deltas) == text
    assert max(seen) <= 4                               # the window, not the whole answer (2,600 bytes)


def sentencepiece_decode(ids: list[int]) -> str:
    """Pieces with a word-start marker, decoded as SentencePiece does: the sequence's leading space dropped."""
    pieces = ["\u2581the", "\u2581cat", "s", "\u2581sat", ".", "\u2581on", "\u2581a", "\u2581mat"]
    text = "".join(pieces[i] for i in ids).replace("\u2581", " ")
    return text.removeprefix(" ")


def test_windowed_deltas_equal_the_whole_decode_when_a_decoder_drops_a_leading_space():
    ids = [0, 1, 2, 3, 5, 6, 7, 4, 0, 1, 3]
    stream = TextStream(sentencepiece_decode)
    deltas = [stream.add([i]) for i in ids] + [stream.finish()]
    assert "".join(deltas) == sentencepiece_decode(ids) == "the cats sat on a mat. the cat sat"
    stream = TextStream(sentencepiece_decode, ("mat",))
    assert "".join([stream.add([i]) for i in ids] + [stream.finish()]) == "the cats sat on a "


def test_windowed_deltas_equal_a_byte_level_tokenizers_whole_decode():
    from tests.tiny import tiny_tokenizer
    tok = tiny_tokenizer()
    ids = tok.encode("the quick ☃ fox — naïve <|im_end|> jumps 日本語 over the lazy dog", add_special_tokens=False)
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True)
    for step in (1, 2, 3):
        stream = TextStream(decode)
        deltas = [stream.add(ids[i:i + step]) for i in range(0, len(ids), step)] + [stream.finish()]
        assert all("\ufffd" not in d for d in deltas)
        assert "".join(deltas) == decode(ids)
