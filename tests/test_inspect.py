"""The inspector on every target: view (segments with current permissions,
symbols with kind, binding, input, generation, GOT entry and stub, host
bindings, pending names), rebuilt per generation; addr_to_sym with
file:line from DWARF; sym_iter in address order; `kitemu inspect`."""

from __future__ import annotations

import json
import shutil

import pytest

from kitemu.cli import main as cli_main
from kitemu.session import Session
from kitemu.targets import TARGETS

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

A_C = """\
unsigned long strlen(const char *);
extern int b_scale(int);
int *table_ptr;
static int hidden(int x) { return x * 3; }
int a_twice(int x) {
    return 2 * x;
}
int a_calls(int x) { return b_scale(x) + hidden(x) + (int)strlen("abc"); }
"""

B_C = """\
int a_twice(int);
int b_scale(int x) {
    return a_twice(x) * 10;
}
"""


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "a.c").write_text(A_C)
    (tmp_path / "b.c").write_text(B_C)
    return tmp_path


@pytest.mark.parametrize("target", TARGETS)
def test_view_addr_to_sym_and_sym_iter(target, sources):
    s = Session(target, cflags=["-g"])
    try:
        sym = s.symbol_name
        s.append(sources / "a.c", defer=True)
        v0 = s.view()
        assert v0.generation == 0 and [p.name for p in v0.pending] == [sym("b_scale")]
        assert v0.pending[0].referenced_by == (str(sources / "a.c"),)
        assert s.view() is v0                                   # same generation: kept

        s.append(sources / "b.c")
        v1 = s.view()
        assert v1 is not v0 and v1.generation == 1 and v1.pending == ()
        by_name = {x.name: x for x in v1.symbols}
        a, b = by_name[sym("a_twice")], by_name[sym("b_scale")]
        assert (a.generation, a.input, a.kind, a.binding) == (0, str(sources / "a.c"), "func", "global")
        assert (b.generation, b.input) == (1, str(sources / "b.c"))
        assert a.addr == s.lookup("a_twice") and b.addr == s.lookup("b_scale")
        # b_scale was called from generation 0 through its pending stub
        assert b.stub is not None and b.stub != b.addr
        hidden = by_name[sym("hidden")] if sym("hidden") in by_name else None
        if hidden is not None:                                   # not inlined away
            assert hidden.binding == "local" and hidden.internal
        # the host function strlen is bound through a canonical stub
        host = {h.name: h for h in v1.host}
        assert sym("strlen") in host
        assert s.image.mem.chunk_at(host[sym("strlen")].stub).kind == "code"
        # segments: both generations, with the permissions they have now
        gens = {(seg.name, seg.generation) for seg in v1.segments}
        assert ("code", 0) in gens and ("code", 1) in gens
        for seg in v1.segments:
            want = {"code": "r-x", "rodata": "r--", "data": "rw-"}[seg.name]
            assert seg.perm.startswith(want), seg

        # addr_to_sym: symbol+offset, section, input, generation, file:line
        info = s.addr_to_sym(b.addr + 4)
        assert (info.symbol, info.offset, info.input, info.generation) == \
            (sym("b_scale"), 4, str(sources / "b.c"), 1)
        assert info.section in (".text", "__TEXT,__text")
        assert info.file is not None and info.file.endswith("b.c") and info.line in (2, 3)
        assert s.addr_to_sym(a.addr).line in (5, 6)             # a_twice's first rows
        assert s.addr_to_sym(0x10).symbol is None

        # sym_iter: address order; public only unless asked
        public = list(s.sym_iter())
        assert [x.addr for x in public] == sorted(x.addr for x in public)
        assert all(not x.internal for x in public)
        assert {sym("a_twice"), sym("b_scale"), sym("a_calls"), sym("table_ptr")} <= \
            {x.name for x in public}
        everything = list(s.sym_iter(internal=True))
        assert len(everything) > len(public)
        assert any(x.name.endswith("@stub") for x in everything)   # strlen's stub
    finally:
        s.free()


def test_view_is_rebuilt_only_on_a_new_generation(sources):
    from kitemu.inspect import inspector
    s = Session("elf-x64")
    s.append(sources / "b.c", defer=True)
    ins = inspector(s.image)
    ins.view()
    ins.view()
    assert ins.rebuilds == 1
    s.define("a_twice", 0x1000)           # resolves the pending name: a new generation
    v = ins.view()
    assert ins.rebuilds == 2 and v.generation == 1 and v.pending == ()
    s.free()


def test_cli_inspect_text_json_and_addr(sources, capsys):
    args = [str(sources / "a.c"), "--defer", "--append", str(sources / "b.c"),
            "--target", "elf-aarch64", "--base", "0xfff00000", "--cflags=-g"]
    assert cli_main(["inspect", *args]) == 0
    out = capsys.readouterr().out
    assert "generation 1" in out and "b_scale" in out and "gen 1" in out
    assert cli_main(["inspect", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {x["name"]: x for x in data["symbols"]}
    assert names["a_twice"]["addr"] == 0xFFF00000 and names["b_scale"]["generation"] == 1
    assert all(not x["internal"] for x in data["symbols"])
    assert cli_main(["inspect", *args, "--addr", "0xfff00004"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("0xfff00004: a_twice+0x4 in .text of")
    assert line.endswith(("a.c:6", "a.c:7"))                 # its return statement or brace


def test_cli_inspect_bad_define_is_one_error_line(sources, capsys):
    assert cli_main(["inspect", str(sources / "b.c"), "--define", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kitemu: error: --define 'nope': expected NAME=ADDR")
