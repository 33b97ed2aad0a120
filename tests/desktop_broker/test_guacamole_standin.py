"""The guacd protocol stand-in: its instruction parser, and guacd's side of the handshake."""

import socket
from collections.abc import Iterator

import pytest
from guacd_standin import ARGS, PROTOCOL_VERSION, GuacdStandIn, InstructionParser, ProtocolError, encode


def test_instruction_is_encoded_with_length_prefixes():
    assert encode("size", "0", "1024", "768") == "4.size,1.0,4.1024,3.768;"
    assert encode("nop") == "3.nop;"
    assert encode("", "ping") == "0.,4.ping;"


def test_parser_reads_several_instructions_from_one_chunk():
    parser = InstructionParser()
    assert parser.feed(b"4.size,1.0,4.1024,3.768;5.audio;") == [("size", "0", "1024", "768"), ("audio",)]


def test_lengths_count_code_points_not_bytes():
    parser = InstructionParser()
    text = encode("name", "张伟", "😀x")
    assert text == "4.name,2.张伟,2.😀x;"
    assert parser.feed(text.encode()) == [("name", "张伟", "😀x")]


def test_instruction_split_inside_a_multibyte_character_is_reassembled():
    data = encode("clipboard", "客服;,.中心").encode()
    parser = InstructionParser()
    received = [instruction for byte in data for instruction in parser.feed(bytes([byte]))]
    assert received == [("clipboard", "客服;,.中心")]


def test_delimiters_inside_a_value_are_data():
    assert InstructionParser().feed(b"3.key,5.1.2;,;") == [("key", "1.2;,")]


@pytest.mark.parametrize(
    "data",
    [b"x.size;", b"4.sizes;", b"-1.a;", b"4.size,1.0.", b"\xff\xfe", "٣.abc;".encode()],
    ids=["letter length", "value longer than declared", "negative", "bad separator", "not utf-8", "arabic digit"],
)
def test_malformed_stream_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        InstructionParser().feed(data)


def test_incomplete_instruction_waits_for_more():
    parser = InstructionParser()
    assert parser.feed(b"4.size,1.0,4.10") == []
    assert parser.feed(b"24,3.768;") == [("size", "0", "1024", "768")]


@pytest.fixture
def standin() -> Iterator[GuacdStandIn]:
    running = GuacdStandIn(frame_size=(320, 200)).start()
    try:
        yield running
    finally:
        running.stop()


def _exchange(port: int, *instructions: str) -> tuple[socket.socket, InstructionParser, list[tuple[str, ...]]]:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    parser = InstructionParser()
    received: list[tuple[str, ...]] = []
    client.sendall(instructions[0].encode())
    while not received:
        received.extend(parser.feed(client.recv(4096)))
    client.sendall("".join(instructions[1:]).encode())
    return client, parser, received


def test_standin_answers_select_with_args_then_ready_and_a_frame(standin):
    names = ARGS["vnc"]
    connect = encode("connect", "VERSION_1_1_0", "10.0.0.5", "5900", *[""] * (len(names) - 2))
    client, parser, received = _exchange(
        standin.port, encode("select", "vnc"), encode("size", "800", "600", "96"), encode("image", "image/png"), connect
    )
    with client:
        assert received == [("args", PROTOCOL_VERSION, *names)]
        while len(received) < 6:
            received.extend(parser.feed(client.recv(4096)))
    assert [instruction[0] for instruction in received[1:]] == ["ready", "size", "rect", "cfill", "sync"]
    assert received[2] == ("size", "0", "320", "200")
    record = standin.connections[0]
    assert standin.wait_for(lambda: record.connection_id == received[1][1])
    assert record.parameters["hostname"] == "10.0.0.5"
    assert record.handshake == {"size": ("800", "600", "96"), "image": ("image/png",)}


def test_standin_refuses_a_connect_that_does_not_answer_every_arg(standin):
    client, parser, _ = _exchange(standin.port, encode("select", "rdp"), encode("connect", "VERSION_1_1_0", "h"))
    with client:
        assert parser.feed(client.recv(4096))[0][0] == "error"
    assert standin.connections[0].refused.startswith("connect does not answer")
    assert standin.connections[0].connection_id is None


def test_standin_refuses_to_join_an_unknown_connection(standin):
    client, _, received = _exchange(standin.port, encode("select", "$no-such-connection"))
    client.close()
    assert received[0][0] == "error"
    assert standin.connections[0].refused == "no such protocol or connection: '$no-such-connection'"
