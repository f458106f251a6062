import asyncio

import pytest

from drill import httpwire


def read(data: bytes) -> httpwire.Response:
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await httpwire.read_response(reader)

    return asyncio.run(go())


def test_build_request_names_the_host_and_the_connection_mode():
    assert httpwire.build_request("web1", "/", keep_alive=False) == (
        b"GET / HTTP/1.1\r\nHost: web1\r\nUser-Agent: edge-drill\r\nAccept: */*\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert b"Connection: keep-alive" in httpwire.build_request("web1", "/x", keep_alive=True)


def test_content_length_body_and_headers():
    response = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Edge-Node: edge1\r\n\r\nhelloEXTRA")
    assert response.status == 200
    assert response.headers["x-edge-node"] == "edge1"
    assert response.body == b"hello"
    assert response.keeps_alive


def test_chunked_body():
    response = read(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    )
    assert (response.status, response.body) == (404, b"abcde")


@pytest.mark.parametrize(
    ("data", "keeps_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil eof", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
    ],
)
def test_a_close_the_server_announced_is_not_keep_alive(data, keeps_alive):
    assert read(data).keeps_alive is keeps_alive


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "closed before a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed inside the body"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "closed inside"),
    ],
)
def test_broken_responses_are_protocol_errors(data, reason):
    with pytest.raises(httpwire.ProtocolError, match=reason):
        read(data)
