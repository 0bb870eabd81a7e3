"""The debugger core and its command line (issue 8).

* breakpoint kinds before and after a reload, on every target: ``*ADDR``
  stays (also in an old generation), ``FUNC`` is rebound to the active
  body, ``FILE:LINE`` is resolved again or marked stale; hit counts;
* faults reported with each host model's signal and each host adapter's
  exception record (POSIX siginfo vs Windows EXCEPTION_* with the access
  flag), and CONTEXT-like register records read and written;
* the REPL: bad commands are one line, scripts run with -x/--batch.
"""

from __future__ import annotations

import shutil

import pytest

from kitemu.dbg.core import Debugger, DebuggerError
from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session
from kitemu.targets import TARGETS

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

GAME = """\
int printf(const char *, ...);
__attribute__((noinline)) int score(int round)
{
    int s = round * 10;
    return s;
}
int main(int argc, char **argv)
{
    int total = 0;
    for (int round = 1; round <= 3; round++)
        total += score(round);
    printf("total %d\\n", total);
    return total & 0x7f;
}
"""
SCORE_LINE = 4             # `int s = round * 10;`
SCORE_V2 = "int score(int round) { return round * 1000; }\n"


@pytest.fixture
def game(tmp_path):
    (tmp_path / "game.c").write_text(GAME)
    (tmp_path / "v2.c").write_text(SCORE_V2)
    return tmp_path


def debugger(target, path, adapter="posix", **kw):
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"], opt="-O0", **kw)
    s.append(path)
    return Debugger(s, adapter=adapter)


@pytest.mark.parametrize("adapter", ["posix", "windows"])
@pytest.mark.parametrize("target", TARGETS)
def test_breakpoint_kinds_across_a_reload(target, adapter, game):
    dbg = debugger(target, game / "game.c", adapter=adapter)
    s = dbg.session
    old_body = s.reloadable("score").active.addr
    b_addr = dbg.break_at(f"*{old_body:#x}")
    b_func = dbg.break_at("score")
    b_line = dbg.break_at(f"game.c:{SCORE_LINE}")
    assert b_func.addrs == [old_body] and b_line.addrs and all(
        old_body <= a < old_body + 0x100 for a in b_line.addrs)
    stops = []

    def on_stop(event):
        stops.append((event.kind, event.pc, tuple(event.breakpoints),
                      event.where.symbol if event.where else None))
        if event.kind == "breakpoint":       # as the host adapter delivers it
            assert event.host.code == {"posix": "SIGTRAP",
                                       "windows": "EXCEPTION_BREAKPOINT"}[adapter]
            assert event.host.address == event.pc
        if event.kind == "breakpoint" and len(stops) == 2:
            # the first hits are in score's body 0; reload it while stopped
            dbg.reload("score", str(game / "v2.c"))

    final = dbg.run(on_stop=on_stop)
    assert final.kind == "exit" and final.exit_code == (10 + 2000 + 3000) & 0x7f
    body0 = "score$body$0"               # shown as a C name (no Mach-O _)
    # hit 1: address + function at entry of body 0; hit 2: the line inside it
    assert stops[0][0] == "breakpoint" and set(stops[0][2]) == {b_addr.number, b_func.number}
    assert stops[0][3] == body0
    assert stops[1][2] == (b_line.number,) and stops[1][3] == body0
    new_body = s.reloadable("score").active.addr
    # after the reload: the function breakpoint moved to body 1 (hit twice more),
    # the address one stayed in body 0 (never hit again), the line one went
    # stale (v2.c has no game.c:4) and keeps its old addresses
    later = stops[2:-1]
    assert [p for _, p, _, _ in later] == [new_body, new_body]
    assert all(n == (b_func.number,) for _, _, n, _ in later)
    assert b_func.addrs == [new_body] and b_func.generation == 1 and b_func.hits == 3
    assert b_addr.addrs == [old_body] and b_addr.hits == 1
    assert b_line.stale and b_line.hits == 1 and all(old_body <= a < old_body + 0x100
                                                     for a in b_line.addrs)
    text = "\n".join(dbg.info_breakpoints())
    assert "[stale]" in text and "gen 1" in text
    dbg.session.free()


def test_line_breakpoint_rebinds_when_the_file_is_reloaded(game):
    """A replacement built from the same file (edited) has the line again:
    the breakpoint moves to the new body instead of going stale."""
    dbg = debugger("elf-aarch64", game / "game.c")
    bp = dbg.break_at(f"game.c:{SCORE_LINE}")
    edited = game / "edit"
    edited.mkdir()
    (edited / "game.c").write_text(GAME.replace("round * 10", "round * 7")
                                   .split("int main")[0])
    dbg.reload("score", str(edited / "game.c"))
    dbg.info_breakpoints()
    new_body = dbg.session.reloadable("score").active
    assert not bp.stale and bp.generation == 1
    assert all(a in new_body for a in bp.addrs)
    assert dbg.run().exit_code == (7 + 14 + 21) & 0x7f
    assert bp.hits == 3
    dbg.session.free()


FAULTY = """\
int main(int argc, char **argv)
{
    volatile int *p = (int *)0x10;
    *p = argc;
    return 0;
}
"""


@pytest.mark.parametrize("target,adapter,code,detail", [
    ("elf-x64", "posix", "SIGSEGV", "SEGV_MAPERR"),
    ("macho-arm64", "posix", "SIGSEGV", "SEGV_ACCERR"),      # arm64 xnu: always ACCERR
    ("elf-rv64", "windows", "EXCEPTION_ACCESS_VIOLATION", "0xc0000005"),
    ("macho-x64", "windows", "EXCEPTION_ACCESS_VIOLATION", "0xc0000005"),
])
def test_faults_per_host_model_and_adapter(target, adapter, code, detail, tmp_path):
    (tmp_path / "faulty.c").write_text(FAULTY)
    dbg = debugger(target, tmp_path / "faulty.c", adapter=adapter)
    events = []
    final = dbg.run(on_stop=events.append)
    assert final.kind == "fault" and events == [final]
    host = final.host
    assert (host.code, host.detail) == (code, detail)
    if adapter == "windows":
        assert host.info["ExceptionInformation"] == [1, 0x10]       # a write at 0x10
    else:
        assert host.address == 0x10
    assert final.where.symbol.split("$")[0].endswith("main") and final.where.line == 4
    with pytest.raises(DebuggerError):
        dbg.continue_()
    dbg.session.free()


@pytest.mark.parametrize("adapter", ["posix", "windows"])
def test_context_records_read_and_written(adapter, game):
    dbg = debugger("elf-x64", game / "game.c", adapter=adapter)
    dbg.break_at("score")
    seen = {}

    def on_stop(event):
        if event.kind != "breakpoint":
            return
        ctx = dbg.context()
        arg = "Rdi" if adapter == "windows" else "rdi"
        pc = "Rip" if adapter == "windows" else "rip"
        seen.setdefault("pcs", []).append(ctx[pc])
        # SetThreadContext / writing mcontext: round 1's argument becomes 5
        if ctx[arg] == 1:
            dbg.set_context({arg: 5})
        assert event.host.code == ("EXCEPTION_BREAKPOINT" if adapter == "windows" else "SIGTRAP")

    final = dbg.run(on_stop=on_stop)
    assert final.exit_code == (50 + 20 + 30) & 0x7f
    assert len(seen["pcs"]) == 3
    with pytest.raises(Exception):
        dbg.set_context({"NoSuchRegister": 1})
    dbg.session.free()


def test_bad_breakpoint_specs_are_errors(game):
    dbg = debugger("elf-x64", game / "game.c")
    for spec, msg in (("nosuch", "not defined"), ("game.c:999", "no code at"),
                      ("*zz", "bad address"), ("game.c:x", "bad line")):
        with pytest.raises(DebuggerError, match=msg):
            dbg.break_at(spec)
    with pytest.raises(DebuggerError, match="no breakpoint number 7"):
        dbg.delete(7)
    dbg.session.free()


def test_repl_script_and_bad_commands(game, tmp_path, capsys):
    from kitemu.cli import main as cli_main
    script = tmp_path / "cmds"
    script.write_text("frobnicate\nbreak\nbreak score\ncontinue\ninfo nothing\nrun\n"
                      "print $pc\nx/2xw $sp\ninfo breakpoints\nset $a0 = 5\nset nonsense\n"
                      "delete 1\ncontinue\n")
    rc = cli_main(["dbg", str(game / "game.c"), "--target", "elf-rv64", "--base", "0x200000",
                   "-x", str(script), "--batch"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Undefined command: 'frobnicate'" in out
    assert "error: break: give *ADDR, FUNC or FILE:LINE" in out
    assert "error: continue: the program is not being run" in out
    assert "error: info nothing" in out
    assert "Breakpoint 1, 0x200000 in score$body$0 at" in out
    assert "$pc = 0x200000" in out
    assert "error: set: expected $REG = EXPR or *ADDR = EXPR" in out
    # round 1's argument was set to 5: 50 + 20 + 30
    assert "[program exited with code 100]" in out
    assert "Traceback" not in out


RECURSIVE = """\
int printf(const char *, ...);
__attribute__((noinline)) int fact(int n)
{
    if (n <= 1)
        return 1;
    return n * fact(n - 1);
}
__attribute__((noinline)) int leaf(int x) { return x + 1; }
int main(int argc, char **argv)
{
    int a = fact(5);
    int b = leaf(a);
    printf("%d %d\\n", a, b);
    return b & 0x7f;
}
"""


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64", "macho-arm64"])
def test_next_over_recursion_a_breakpoint_inside_and_finish(target, tmp_path):
    """`next` over a recursive call lands on the next line of the outer
    frame (the temporary breakpoint is reached by inner frames first); a
    user breakpoint inside a stepped-over call stops there; `finish` returns
    to the caller; a motion cut short by the exit leaves nothing armed."""
    (tmp_path / "rec.c").write_text(RECURSIVE)
    dbg = debugger(target, tmp_path / "rec.c")
    main_bp = dbg.break_at("rec.c:11")
    log = []

    def on_stop(event):
        # as the REPL does: a motion that finishes while the program stays
        # stopped returns its event; one that must run raises out of here
        while event is not None:
            event = act(event)

    def act(event):
        log.append((event.kind, event.where.line if event.where else None,
                    event.where.symbol.split("$")[0] if event.where and event.where.symbol
                    else None))
        if len(log) == 1:
            assert event.breakpoints == [main_bp.number]
            return dbg.next()                            # over fact(5): 5 nested frames
        if len(log) == 2:
            assert event.kind == "step" and event.where.line == 12
            dbg.break_at("leaf")
            return dbg.next()                            # over leaf(), which has a breakpoint
        if len(log) == 3:
            assert event.kind == "breakpoint" and log[-1][2] == "leaf"
            return dbg.finish()
        if len(log) == 4:
            assert event.kind == "step" and log[-1][2] == "main" and log[-1][1] == 12
            return dbg.finish()                          # out of main: runs to the exit
        return None

    final = dbg.run(on_stop=on_stop)
    assert final.kind == "exit" and final.exit_code == 121
    assert [k for k, _, _ in log] == ["breakpoint", "step", "breakpoint", "step", "exit"]
    assert dbg._temp == set() and set(dbg._armed) == {a for b in dbg.breakpoints.values()
                                                       for a in b.addrs}
    # and the program runs again with the same breakpoints
    log.clear()
    assert dbg.run(on_stop=lambda e: log.append(e.kind)).exit_code == 121
    assert log == ["breakpoint", "breakpoint", "exit"]
    dbg.session.free()


def _native_session_transcript(path: str) -> str:
    import io
    from kitemu.dbg.repl import Repl
    s = Session("elf-x64", backend="native", indirect=INDIRECT_EXPORTED_FUNCS,
                cflags=["-g", "-fasynchronous-unwind-tables"], opt="-O0")
    try:
        s.append(path)
        out = io.StringIO()
        repl = Repl(Debugger(s), out=out, echo=True)
        repl.lines = ["break main", "run", "next", "next", "next", "step", "bt", "next",
                      "stepi", "finish", "delete", "continue"]
        repl.loop()
        return out.getvalue()
    finally:
        s.free()


def test_native_backend_debugging(game):
    """The debugger on real memory: int3 breakpoints, in-place steps,
    line steps over and into calls, a CFI backtrace, finish."""
    from kitemu.backends.native import native_host_problem, run_isolated
    if native_host_problem():
        pytest.skip(native_host_problem())
    text = run_isolated(_native_session_transcript, str(game / "game.c"), timeout=60)
    lines = [line for line in text.splitlines() if not line.startswith("(kitemu)")]
    assert lines[0].startswith("Breakpoint 1 at ")
    assert lines[1].startswith("Breakpoint 1, ") and "game.c:8" in lines[1]
    assert ["game.c:9" in lines[2], "game.c:10" in lines[3], "game.c:11" in lines[4]] == \
        [True] * 3
    assert "in score$body$0 at" in lines[5] and "game.c:3" in lines[5]       # step into score
    assert lines[6].startswith("#0 ") and "score$body$0" in lines[6]
    assert lines[7].startswith("#1 ") and "main$body$0" in lines[7] and "game.c:11" in lines[7]
    assert "game.c:4" in lines[8]                                              # next in score
    assert "in main$body$0" in lines[10] and "game.c:11" in lines[10]          # finish
    assert lines[-1] == "[program exited with code 60]"


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64"])
def test_line_steps_never_stop_on_line_zero(target):
    """At -O2 clang writes line-0 rows (code of no particular line); `next`
    steps through them, as gdb does, and only stops on real lines."""
    from pathlib import Path
    src = Path(__file__).resolve().parent.parent / "corpus" / "args" / "main.c"
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"], opt="-O2")
    s.append(src)
    dbg = Debugger(s)
    dbg.break_at("main")
    lines = []

    def on_stop(event):
        while event is not None and event.kind in ("breakpoint", "step"):
            lines.append(event.where.line)
            if len(lines) > 40:
                return
            event = dbg.next()

    dbg.run("main", ["one", "two"], on_stop=on_stop)
    assert len(lines) > 3 and 0 not in lines, lines
    s.free()
