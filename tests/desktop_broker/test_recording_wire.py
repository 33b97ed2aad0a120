"""The Guacamole instruction syntax as the recorder and the guacd wire taps of the tests read it
(`desktop_broker.recording.wire`): lengths in code points, delimiters inside values, malformed input refused."""

import pytest

from desktop_broker.recording.wire import InstructionReader, WireError, encode


def test_instruction_is_encoded_with_length_prefixes() -> None:
    assert encode("size", "0", "1024", "768") == b"4.size,1.0,4.1024,3.768;"
    assert encode("nop") == b"3.nop;"
    assert encode("", "ping") == b"0.,4.ping;"


def test_several_instructions_from_one_chunk() -> None:
    reader = InstructionReader()
    assert reader.feed(b"4.size,1.0,4.1024,3.768;5.audio;") == [("size", "0", "1024", "768"), ("audio",)]


def test_lengths_count_code_points_not_bytes() -> None:
    data = encode("name", "张伟", "😀x")
    assert data == "4.name,2.张伟,2.😀x;".encode()
    assert InstructionReader().feed(data) == [("name", "张伟", "😀x")]


def test_an_instruction_split_inside_a_multibyte_character_is_reassembled() -> None:
    data = encode("clipboard", "客服;,.中心")
    reader = InstructionReader()
    received = [instruction for byte in data for instruction in reader.feed(bytes([byte]))]
    assert received == [("clipboard", "客服;,.中心")]


def test_delimiters_inside_a_value_are_data() -> None:
    assert InstructionReader().feed(b"3.key,5.1.2;,;") == [("key", "1.2;,")]


@pytest.mark.parametrize(
    "data",
    [b"x.size;", b"4.sizes;", b"-1.a;", b"4.size,1.0.", b"\xff\xfe", "٣.abc;".encode(), b"99999999999.a;"],
    ids=["letter length", "longer than declared", "negative", "bad separator", "not utf-8", "arabic digit", "absurd"],
)
def test_a_malformed_stream_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        InstructionReader().feed(data)


def test_an_incomplete_instruction_waits_for_more() -> None:
    reader = InstructionReader()
    assert reader.feed(b"4.size,1.0,4.10") == []
    assert reader.feed(b"24,3.768;") == [("size", "0", "1024", "768")]
