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
