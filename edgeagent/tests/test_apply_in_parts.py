"""A candidate without a baseline, validated in parts (apply.py's module docstring), against
a real nginx: accepted, refused with its offenders named, and refused for what only
`nginx -t` on the whole file sees."""

import dataclasses

import pytest
from agentlab import render_generation, replace_with_garbage
from edgeagent.apply import Applier, ApplyError, Outcome, _socket_address, conflicts
from edgeagent.cli import self_signed
from edgeagent.render import Rendered
from support_http import free_port


def test_a_large_candidate_is_validated_in_parts_and_applied(nginx):
    """2,001 host servers, parts of 1,000 (the default): three parts, every block in one."""
    applier = Applier(nginx.apply_settings())
    candidate = render_generation(nginx, "127.0.0.2", hosts=2001)
    parts = applier.parts(candidate)
    assert [sum(b.startswith("server ") for b in part) for part in parts] == [1000, 1000, 1]
    result = applier.apply(candidate)
    assert result.outcome is Outcome.APPLIED, result.detail
    why = "no generation validated by this process serves yet"
    assert result.validation == f"chunked: 3 parts: {why}"
    assert applier.serving_generation() == candidate.generation
    # The candidate counts as validated in full: the next change is a delta.
    more = render_generation(nginx, "127.0.0.2", hosts=2002)
    assert applier.apply(more).validation.startswith("delta: ")


def test_a_small_candidate_is_validated_whole(nginx):
    applier = Applier(nginx.apply_settings(chunk_servers=3))
    assert applier.parts(render_generation(nginx, "127.0.0.2", hosts=3)) == []
    result = applier.apply(render_generation(nginx, "127.0.0.2", hosts=3))
    assert result.validation == "full: no generation validated by this process serves yet"


def test_every_block_is_in_exactly_one_part(nginx):
    """An upstream no server uses still gets validated: it goes with the last part."""
    applier = Applier(nginx.apply_settings(chunk_servers=2))
    candidate = render_generation(nginx, "127.0.0.2", hosts=5)
    unused = "upstream 000000_default_unused_80"
    text = "upstream 000000_default_unused_80 {\n    server 127.0.0.9:80;\n}\n\n"
    candidate = with_blocks(candidate, {unused: text})
    parts = applier.parts(candidate)
    assert len(parts) == 3 and parts[-1][-1] == unused
    own = [block_id for part in parts for block_id in part]
    assert len(own) == len(set(own))
    assert set(own) == {b for b in candidate.blocks if b.startswith(("server h", "upstream 000"))}


def test_a_broken_server_in_a_later_part_is_found_and_named(nginx):
    """Twelve servers in parts of four; h9's certificate is garbage: its part is refused,
    the others pass, and the bisection over that part names h9's server alone."""
    applier = Applier(nginx.apply_settings(chunk_servers=4))
    pairs = {f"t{n}": self_signed(f"h{n}.example.com") for n in range(12)}
    candidate = render_generation(nginx, "127.0.0.2", hosts=12, tls_pairs=pairs)
    parts = applier.parts(candidate)
    number = next(n for n, part in enumerate(parts, 1) if "server h9.example.com" in part)
    assert number > 1
    staged = applier.stage(candidate)
    replace_with_garbage(staged / "certs" / "default_t9.pem")
    result = applier.apply(candidate)
    assert result.outcome is Outcome.REJECTED
    assert result.validation.startswith("chunked: 3 parts")
    assert result.offenders == ("server h9.example.com",)
    assert f"(part {number} of 3)" in result.detail
    rejected = nginx.agent_dir / f"rejected-{candidate.generation}"
    assert "default_t9.pem" in (rejected / "nginx-t.txt").read_text()
    assert "server_name h9.example.com;" in (rejected / "nginx-t-delta.conf").read_text()
    assert not (nginx.agent_dir / "current").exists() or applier.serving_generation() is None


def with_blocks(rendered: Rendered, changes: dict[str, str]) -> Rendered:
    """`rendered` with blocks replaced or added (before the status server), edge.conf
    rewritten from them: a candidate render() would not make."""
    blocks = dict(rendered.blocks)
    status = blocks.pop("status")
    for block_id, text in changes.items():
        old = blocks.get(block_id)
        blocks[block_id] = old._replace(text=text) if old else status._replace(text=text)
    blocks["status"] = status
    header = rendered.files["edge.conf"].decode().partition("\n")[0] + "\n"
    edge = header + "".join(block.text for block in blocks.values())
    files = {**rendered.files, "edge.conf": edge.encode()}
    return dataclasses.replace(rendered, files=files, blocks=blocks)


def _in_servers(rendered: Rendered, hosts: list[str], lines: str) -> dict[str, str]:
    return {
        f"server {host}": rendered.blocks[f"server {host}"].text.replace(
            f"    server_name {host};", f"{lines}    server_name {host};", 1
        )
        for host in hosts
    }


@pytest.mark.parametrize(
    ("kind", "nginx_says"),
    [
        ("upstream", "duplicate upstream"),
        ("default_server", "a duplicate default server"),
        ("socket options", "duplicate listen options"),
    ],
)
def test_what_only_the_whole_file_shows_is_refused(nginx, kind, nginx_says):
    """Two servers in different parts that each part accepts and the whole file does not:
    one upstream name twice, two default servers or two sets of socket options for one
    address. Refused before any part runs, as no one server's fault."""
    applier = Applier(nginx.apply_settings(chunk_servers=2))
    candidate = render_generation(nginx, "127.0.0.2", hosts=4)
    hosts = ["h0.example.com", "h3.example.com"]
    parts = applier.parts(candidate)
    assert [any(f"server {h}" in part for part in parts[:1]) for h in hosts] == [True, False]
    port = free_port()
    if kind == "upstream":
        changes = {
            block_id: f"upstream edgeagent_twice {{\n    server 127.0.0.9:80;\n}}\n\n{text}"
            for block_id, text in _in_servers(candidate, hosts, "").items()
        }
    elif kind == "default_server":
        changes = _in_servers(candidate, hosts, f"    listen 127.0.0.1:{port} default_server;\n")
    else:
        changes = _in_servers(candidate, hosts, f"    listen 127.0.0.1:{port} backlog=64;\n")
    candidate = with_blocks(candidate, changes)
    assert len(conflicts(candidate.blocks)) == 1

    result = applier.apply(candidate)
    assert (result.outcome, result.offenders) == (Outcome.REJECTED, ())
    assert "nginx -t would refuse the whole candidate" in result.detail
    assert "server h0.example.com and server h3.example.com" in result.detail
    # What nginx itself says: each part passes, the whole does not.
    rejected = nginx.agent_dir / f"rejected-{candidate.generation}"
    for part in parts:
        applier.validate(rejected, applier.delta_config(candidate, part))
    with pytest.raises(ApplyError, match=nginx_says):
        applier.validate(rejected)


def test_rendered_candidates_have_no_whole_file_conflicts(nginx):
    pairs = {f"t{n}": self_signed(f"h{n}.example.com") for n in range(3)}
    assert conflicts(render_generation(nginx, "127.0.0.2", hosts=6, tls_pairs=pairs).blocks) == []


def test_socket_addresses_compare_as_nginx_compares_them():
    assert {_socket_address(a) for a in ("80", "*:80", "0.0.0.0:80")} == {"*:80"}
    assert _socket_address("[::0]:443") == _socket_address("[::]:443") == "[::]:443"
    assert _socket_address("127.0.0.1") == "127.0.0.1:80"
    assert _socket_address("Example.com:80") == "example.com:80"
    assert _socket_address("unix:/run/x.sock") == "unix:/run/x.sock"


def test_a_reload_nginx_refuses_after_valid_parts_puts_current_back(nginx):
    """The parts' safety net is the delta's: here a certificate turns to garbage between
    the validation and the reload, so nginx refuses the reload; `current` stays, a full
    nginx -t names the candidate rejected, and the next validation is one whole nginx -t
    until a generation applies."""
    pairs = {f"t{n}": self_signed(f"h{n}.example.com") for n in range(3)}
    candidate = render_generation(nginx, "127.0.0.2", hosts=6, tls_pairs=pairs)
    certificate = nginx.agent_dir / f"gen-{candidate.generation}" / "certs" / "default_t1.pem"
    breaking = (  # for this candidate only
        f"if test -e {certificate}; then rm {certificate}; echo garbage > {certificate}; fi; "
        f"{nginx.reload_command}"
    )
    settings = nginx.apply_settings(chunk_servers=2, confirm_timeout=2.0)
    applier = Applier(dataclasses.replace(settings, reload_command=("sh", "-c", breaking)))
    result = applier.apply(candidate)
    assert result.outcome is Outcome.REJECTED, result.detail
    assert result.validation.startswith("chunked: 3 parts")
    assert "nginx -t on the whole candidate" in result.detail
    assert applier.serving_generation() is None  # the bootstrap config still serves
    fixed = render_generation(nginx, "127.0.0.3", hosts=6)
    again = applier.apply(fixed)
    assert again.outcome is Outcome.APPLIED, again.detail
    assert again.validation == "full: no generation validated by this process serves yet"
    assert applier.apply(render_generation(nginx, "127.0.0.4", hosts=6)).validation.startswith(
        "delta"
    )
