"""Function-level hot reload (roadmap §1, §3.4) on every target.

* indirection: every global function (exported-funcs mode) or a marked one
  gets a stable entry -> slot -> body; the entries decode (capstone) to a
  jump through the slot; nothing references a body's first byte directly;
  INDIRECT_NONE leaves images exactly as a plain link makes them;
* a reload keeps lookup addresses, makes new calls and saved function
  pointers reach the new body, keeps the old body mapped and described by
  addr_to_sym with its generation, and bumps the generation by one;
* static functions reload under their ``file.c::name`` identity;
* refusals, each with its reason, leave the image unchanged.
"""

from __future__ import annotations

import shutil
import struct

import capstone
import pytest

from kitemu.reload.function import ReloadError
from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session
from kitemu.targets import TARGETS, get_target

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

NOINLINE = "__attribute__((noinline))"

PROGRAM = f"""
{NOINLINE} int value(int x) {{ return x + 1; }}
int (*saved)(int) = value;
int call_saved(int x) {{ return saved(x); }}
int call_value(int x) {{ return value(x) * 2; }}
{NOINLINE} static int helper(int x) {{ return x * 3; }}
int use_helper(int x) {{ return helper(x) + 100; }}
long address_of_value(void) {{ return (long)&value; }}
"""

VALUE_V2 = "int value(int x) { return x + 1000; }\n"
VALUE_V3 = "static int twice(int x) { return 2 * x; }\n" \
           "int value(int x) { return twice(x) + 7; }\n"
HELPER_V2 = "int helper(int x) { return x * 5; }\n"


@pytest.fixture
def src(tmp_path):
    def write(name: str, text: str):
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


def session(target: str, src, **kw) -> Session:
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"], **kw)
    s.mark_reloadable("prog.c::helper")
    s.append(src("prog.c", PROGRAM))
    return s


def snapshot(s: Session):
    image = s.image
    return (image.generation,
            [(c.addr, c.perm, s.read(c.addr, c.size)) for c in s.proc.mem.chunks],
            {n: (p.addr, p.generation) for n, p in image.published.items()},
            {k: [(b.addr, b.state) for b in rf.bodies] for k, rf in image.reloadables.items()},
            len(image.records))


@pytest.mark.parametrize("target", TARGETS)
def test_reload_keeps_addresses_and_redirects_every_caller(target, src):
    s = session(target, src)
    try:
        entry = s.lookup("value")
        rf = s.reloadable("value")
        assert rf.entry == entry and rf.active.addr != entry
        assert s.call("address_of_value") == entry          # &value is the entry
        assert (s.call("value", 1), s.call("call_saved", 1), s.call("call_value", 1)) == (2, 2, 4)

        assert s.reload_function("value", src("v2.c", VALUE_V2)) == 1
        assert s.lookup("value") == entry and s.call("address_of_value") == entry
        assert s.call("value", 1) == 1001                   # new calls: new body
        assert s.call("call_saved", 1) == 1001              # a pointer saved before
        assert s.call("call_value", 1) == 2002              # a direct call site
        old, new = rf.bodies
        assert (old.state, new.state, new.generation) == ("replaced", "active", 1)
        assert struct.unpack("<Q", s.read(rf.slot, 8))[0] == new.addr
        # the old body stays mapped, callable and described with its generation
        assert s.call(old.addr, 1) == 2
        info = s.addr_to_sym(old.addr)
        assert info.symbol == f"{rf.name}$body$0" and info.generation == 0
        assert s.addr_to_sym(new.addr).symbol == f"{rf.name}$body$1"
        assert s.addr_to_sym(entry).symbol == rf.name

        # a replacement with a private helper, then a third generation
        assert s.reload_function("value", src("v3.c", VALUE_V3)) == 2
        assert s.call("call_saved", 5) == 17 and len(rf.bodies) == 3
        # the public view shows the entry; bodies only with internal symbols
        names = {x.name for x in s.sym_iter()}
        assert rf.name in names and not any("$body$" in n for n in names)
        assert {f"{rf.name}$body${i}" for i in range(3)} <= {x.name for x in s.sym_iter(True)}
    finally:
        s.free()


@pytest.mark.parametrize("target", TARGETS)
def test_static_function_reloads_under_its_tu_identity(target, src):
    s = session(target, src)
    try:
        assert s.call("use_helper", 2) == 106
        rf = s.reloadable("prog.c::helper")
        assert not rf.public and s.lookup("prog.c::helper") == rf.entry
        # DWARF cannot vouch for a static's ABI (clang may rewrite it): the
        # checked reload is refused, an unchecked one goes through
        with pytest.raises(ReloadError) as info:
            s.reload_function("prog.c::helper", src("h2.c", HELPER_V2))
        assert info.value.reason == "abi-unknown" and "static" in str(info.value)
        s.reload_function("prog.c::helper", src("h2.c", HELPER_V2), unchecked=True)
        assert s.call("use_helper", 2) == 110              # its caller in prog.c goes via the entry
    finally:
        s.free()


@pytest.mark.parametrize("target", TARGETS)
def test_stable_entries_decode_to_a_jump_through_the_slot(target, src):
    """x64 `jmp qword ptr [rip + d]`; aarch64 `adrp x16; ldr x16, [x16, #lo];
    br x16`; rv64 `auipc t1; ld t1, lo(t1); jr t1` - decoded by capstone, the
    address they load from is the slot."""
    s = session(target, src)
    try:
        arch = get_target(target).arch
        md = capstone.Cs(arch.cs_arch, arch.cs_mode)
        for rf in s.image.reloadables.values():
            code = s.read(rf.entry, arch.indirect_jump_size)
            insns = list(md.disasm(code, rf.entry))
            ops = [(i.mnemonic, i.op_str) for i in insns]
            if arch.name == "x64":
                jmp = insns[0]
                assert jmp.mnemonic == "jmp" and "rip" in jmp.op_str
                disp = int(jmp.op_str.split("+")[1].strip(" ]"), 16)
                assert jmp.address + jmp.size + disp == rf.slot
            elif arch.name == "aarch64":
                assert [m for m, _ in ops[:3]] == ["adrp", "ldr", "br"], ops
                page = int(ops[0][1].split("#")[1], 16)
                lo = int(ops[1][1].split("#")[1].rstrip("]"), 16)
                assert ops[0][1].startswith("x16") and ops[2][1] == "x16"
                assert page + lo == rf.slot
            else:
                assert [m for m, _ in ops[:3]] == ["auipc", "ld", "jr"], ops
                hi = int(ops[0][1].split(",")[1], 0)
                lo = int(ops[1][1].split(",")[1].split("(")[0], 0)
                assert rf.entry + (hi << 12) + lo == rf.slot
            assert struct.unpack("<Q", s.read(rf.slot, 8))[0] == rf.active.addr
            assert rf.slot % 8 == 0
            assert s.proc.mem.chunk_at(rf.slot).perm.name != "RX"
    finally:
        s.free()


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64", "macho-arm64"])
def test_no_reference_bypasses_a_stable_entry(target, src):
    """Patch-site index: the only records aiming at a body's first byte are
    its slot stores (and unwind tables, which describe bodies)."""
    s = session(target, src)
    try:
        s.reload_function("value", src("v2.c", VALUE_V2))
        starts = {b.addr: rf for rf in s.image.reloadables.values() for b in rf.bodies}
        for r in s.image.records:
            if r.target in starts:
                assert r.kind == "SLOT" or "eh_frame" in r.section, r.describe()
        slots = [r for r in s.sites(s.reloadable("value").identity) if r.kind == "SLOT"]
        assert [r.generation for r in slots] == [1]
    finally:
        s.free()


def test_indirect_none_is_a_plain_link(src):
    """The default mode makes no entries: every address and byte is what a
    link without sessions makes."""
    from kitemu.runtime import JitProcess
    plain = JitProcess("elf-aarch64")
    s = Session("elf-aarch64", cflags=["-g"])
    try:
        path = src("prog.c", PROGRAM)
        s.append(path)
        obj = s.image.inputs[0]
        plain.link([obj])
        assert s.image.reloadables == {}
        assert plain.image.globals == s.image.globals
        for c1, c2 in zip(plain.mem.chunks, s.proc.mem.chunks):
            assert (c1.addr, c1.size) == (c2.addr, c2.size)
            assert plain.mem.read(c1.addr, c1.size) == s.read(c2.addr, c2.size)
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", src("v2.c", VALUE_V2))
        assert info.value.reason == "not-reloadable"
    finally:
        s.free()
        plain.free()


BAD = {
    "writable-data": "int value(int x) { static int calls; calls++; return x + calls; }\n",
    "constructor": "int value(int x) { return x; }\nint call_saved(int);\n"
                   "__attribute__((constructor)) static void init(void) { call_saved(1); }\n",
    "public-definition": "int value(int x) { return x; }\nint extra(int x) { return x; }\n",
    "duplicate": "int value(int x) { return x; }\nint call_saved(int x) { return x; }\n",
    "unresolved": "int nowhere(int);\nint value(int x) { return nowhere(x); }\n",
    "no-definition": "int other(int x);\nint other(int x) { return x; }\n",
}


@pytest.mark.parametrize("target", ["elf-x64", "macho-arm64", "elf-rv64"])
@pytest.mark.parametrize("reason", sorted(BAD))
def test_refused_replacements_leave_the_image_unchanged(target, reason, src):
    s = session(target, src)
    try:
        before = snapshot(s)
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", src(f"{reason}.c", BAD[reason]))
        assert info.value.reason == reason, str(info.value)
        assert snapshot(s) == before
        assert s.call("call_saved", 1) == 2                 # the old body is active
    finally:
        s.free()


def test_tls_replacement_is_refused(src):
    s = session("elf-x64", src)
    try:
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", src("tls.c", "_Thread_local int t;\n"
                                           "int value(int x) { return x + t; }\n"))
        assert info.value.reason == "tls" and "thread-local" in str(info.value)
    finally:
        s.free()


def test_mark_after_link_and_unknown_names_are_refused(src):
    s = Session("elf-x64", cflags=["-g"])
    try:
        s.append(src("prog.c", PROGRAM))
        with pytest.raises(ReloadError, match="already linked without a stable entry"):
            s.mark_reloadable("value")
        with pytest.raises(ReloadError) as info:
            s.reload_function("nope", src("v2.c", VALUE_V2))
        assert info.value.reason == "not-reloadable"
    finally:
        s.free()


def test_marked_function_in_indirect_none_mode(src):
    s = Session("elf-rv64", cflags=["-g"])
    try:
        s.mark_reloadable("value")
        s.append(src("prog.c", PROGRAM))
        assert set(s.image.reloadables) == {"value"}
        s.reload_function("value", src("v2.c", VALUE_V2))
        assert s.call("call_value", 1) == 2002
    finally:
        s.free()


def test_native_backend_reload(src):
    from kitemu.backends.native import native_host_problem
    if native_host_problem():
        pytest.skip(native_host_problem())
    s = session("elf-x64", src, backend="native")
    try:
        entry = s.lookup("value")
        assert s.call("call_saved", 1) == 2
        s.reload_function("value", src("v2.c", VALUE_V2))
        assert s.lookup("value") == entry
        assert (s.call("value", 1), s.call("call_saved", 1), s.call("call_value", 1)) == \
            (1001, 1001, 2002)
        assert s.call(s.reloadable("value").bodies[0].addr, 1) == 2
    finally:
        s.free()


# -- a state machine over calls, good reloads and bad reloads --------------------------

from hypothesis import settings                                              # noqa: E402
from hypothesis import strategies as st                                      # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule       # noqa: E402

VERSIONS = 4


def _compiled(target: str, name: str, text: str):
    from kitemu.cc import compile_c
    from kitemu.loader import load_object
    from kitemu.targets import get_target as tgt
    path, data = compile_c(None, tgt(target), "-O2", ["-g"], text=text.encode(), name=name)
    return load_object(path, data)


def i32(v: int) -> int:
    """An ``int`` return value (the low 32 bits of the register)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class ReloadMachine(RuleBasedStateMachine):
    """Random calls (by name, through a pointer saved before any reload,
    into old bodies directly), good reloads to one of a few versions, and
    refused reloads; after every step: the entry never moves, the active
    body is the last good version, every old body still returns its own
    version's value, refused reloads changed nothing."""

    target = "elf-aarch64"

    def __init__(self):
        super().__init__()
        t = self.target
        cls = type(self)
        if "_objects" not in cls.__dict__:          # compiled once per target
            cls._program = _compiled(t, "prog.c", PROGRAM)
            cls._objects = [_compiled(t, f"v{k}.c", f"int value(int x) {{ return x + {100 * k}; }}\n")
                            for k in range(1, VERSIONS + 1)]
            cls._bad = {r: _compiled(t, f"{r}.c", text) for r, text in BAD.items()}
        self.s = Session(t, indirect=INDIRECT_EXPORTED_FUNCS)
        self.s.append(cls._program)
        self.entry = self.s.lookup("value")
        self.versions = [1]           # body i returns x + versions[i]
        self.gen = 0

    def teardown(self):
        self.s.free()

    @rule(x=st.integers(-1000, 1000), how=st.sampled_from(["value", "call_saved"]))
    def call(self, x, how):
        assert i32(self.s.call(how, x)) == x + self.versions[-1]

    @rule(k=st.integers(1, VERSIONS))
    def good_reload(self, k):
        self.gen = self.s.reload_function("value", self._objects[k - 1])
        self.versions.append(100 * k)

    @rule(reason=st.sampled_from(sorted(BAD)))
    def bad_reload(self, reason):
        before = snapshot(self.s)
        with pytest.raises(ReloadError) as info:
            self.s.reload_function("value", self._bad[reason])
        assert info.value.reason == reason
        assert snapshot(self.s) == before

    @rule(data=st.data())
    def call_old_body(self, data):
        bodies = self.s.reloadable("value").bodies
        i = data.draw(st.integers(0, len(bodies) - 1))
        assert self.s.call(bodies[i].addr, 5) == 5 + self.versions[i]

    @invariant()
    def entry_is_stable_and_slot_is_active(self):
        rf = self.s.reloadable("value")
        assert self.s.lookup("value") == self.entry == rf.entry
        assert struct.unpack("<Q", self.s.read(rf.slot, 8))[0] == rf.active.addr
        assert self.s.generation == self.gen == len(rf.bodies) - 1
        assert [b.state for b in rf.bodies] == ["replaced"] * (len(rf.bodies) - 1) + ["active"]


def _machine_for(target: str, examples: int):
    machine = type(f"ReloadMachine_{target.replace('-', '_')}", (ReloadMachine,),
                   {"target": target})
    machine.TestCase.settings = settings(max_examples=examples, stateful_step_count=12,
                                         deadline=None)
    return machine.TestCase


test_reload_state_machine_elf_aarch64 = _machine_for("elf-aarch64", 12)
test_reload_state_machine_elf_x64 = _machine_for("elf-x64", 5)
test_reload_state_machine_elf_rv64 = _machine_for("elf-rv64", 5)
test_reload_state_machine_macho_x64 = _machine_for("macho-x64", 5)
test_reload_state_machine_macho_arm64 = _machine_for("macho-arm64", 5)


@pytest.mark.parametrize("target", TARGETS)
def test_abi_mismatch_shows_both_signatures(target, src):
    s = session(target, src)
    try:
        before = snapshot(s)
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", src("long.c", "long value(long x) { return x + 5; }\n"))
        e = info.value
        assert e.reason == "abi-mismatch"
        assert "live:" in str(e) and "replacement:" in str(e)
        assert "int:4" in str(e) and "int:8" in str(e)        # the two signatures
        assert snapshot(s) == before
        # no DWARF for the replacement: refused, unless unchecked
        s.cflags.remove("-g")
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", src("nog.c", VALUE_V2))
        assert info.value.reason == "abi-unknown" and "-g" in str(info.value)
        assert snapshot(s) == before
        s.reload_function("value", src("nog.c", VALUE_V2), unchecked=True)
        assert s.call("call_saved", 1) == 1001
    finally:
        s.free()


@pytest.mark.parametrize("target", TARGETS)
def test_direct_call_patching_gives_the_slot_baselines_results(target, src):
    """Fast mode (§1.8) re-aims direct call sites at the new body; a later
    slot-only reload re-aims them at the entry. Every call returns what the
    slot baseline returns, step by step."""
    versions = [src(f"w{k}.c", f"int value(int x) {{ return x * {k} + {k}; }}\n")
                for k in range(2, 6)]
    plan = [True, True, False, True]              # fast, fast, slot, fast
    results = {}
    for fast_mode in (False, True):
        s = session(target, src)
        try:
            seen = []
            for v, fast in zip(versions, plan):
                s.reload_function("value", v, patch_call_sites=fast and fast_mode)
                seen.append(tuple(s.call(f, 3) for f in ("value", "call_saved", "call_value")))
                rf = s.reloadable("value")
                direct = [r for r in s.image.records if r.via == "direct-patch"
                          and s.image.index.wrote(r.place) is r]
                if fast and fast_mode:
                    # the call in call_value now goes straight to the body
                    assert direct and {r.target - r.addend for r in direct} == {rf.active.addr}
                else:
                    assert all(r.target - r.addend == rf.entry for r in direct)
            results[fast_mode] = seen
        finally:
            s.free()
    assert results[True] == results[False]
    assert results[False][-1] == (3 * 5 + 5, 20, 40)


# -- frames stopped in an old body -----------------------------------------------------

NESTED = f"""
{NOINLINE} int inner(int x) {{ return x * 2; }}
{NOINLINE} int value(int x) {{ return inner(x) + 1; }}
int call_value(int x) {{ return value(x) + 0; }}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_frame_stopped_in_the_old_body_returns_through_it(target, src):
    """Stop in inner() called from value's body 0, reload value, resume: the
    stopped frame returns into body 0 (old result), while it is stopped
    body 0 cannot be reclaimed; new calls use body 1; afterwards body 0 can
    be retired and reclaimed."""
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"])
    try:
        s.append(src("nested.c", NESTED))
        inner = s.reloadable("inner").active.addr
        m = s.proc.machine
        m.add_breakpoint(inner)
        out = s.proc.start_call(s.lookup("call_value"), [5])
        assert out.stopped and out.pc == inner
        gen = s.reload_function("value", src("v2.c", "int inner(int);\n"
                                             "int value(int x) { return inner(x) + 1000; }\n"))
        assert gen == 1
        assert s.body_state("value", 0) == "replaced"
        assert not s.can_reclaim("value", 0)       # a return address points into body 0
        assert not s.can_reclaim("value", 1)       # the active body
        s.retire("value", 0)
        assert s.body_state("value", 0) == "retired"   # retired, but a frame is in it
        m.remove_breakpoint(inner)
        out = s.proc.resume()
        assert out.returned and out.value == 11    # finished in the old body
        assert s.can_reclaim("value", 0) and s.body_state("value", 0) == "reclaimable"
        assert s.call("call_value", 5) == 1010     # new calls: the new body
    finally:
        s.free()


@pytest.mark.parametrize("target", TARGETS)
def test_cli_reload_scenario(target, src, capsys):
    from kitemu.cli import main as cli_main
    game = src("game.c", """
int printf(const char *, ...);
__attribute__((noinline)) int score(int round) { return round * 10; }
int main(void) {
    int total = 0;
    for (int round = 1; round <= 4; round++) {
        int s = score(round);
        printf("round %d: %d\\n", round, s);
        total += s;
    }
    return total & 0x7f;
}
""")
    v2 = src("score2.c", "int score(int round) { return round * 1000; }\n")
    rc = cli_main(["reload", str(game), "--target", target, "--break", "score", "--hit", "2",
                   "--replace", f"score={v2}"])
    out, err = capsys.readouterr()
    # round 2 was stopped inside the old body and finishes there
    assert out == "round 1: 10\nround 2: 20\nround 3: 3000\nround 4: 4000\n"
    assert rc == (10 + 20 + 3000 + 4000) & 0x7f
    assert "stopped at score (hit 2)" in err and "generation 1" in err
    assert "gen 0 replaced" in err and "gen 1 active" in err


def test_cli_reload_refusal_keeps_the_old_body_and_exits_2(src, capsys):
    from kitemu.cli import main as cli_main
    game = src("game.c", f"{NOINLINE} int score(int r) {{ return r * 3; }}\n"
                         "int main(int argc, char **argv) { return score(argc) + score(argc + 1); }\n")
    bad = src("bad.c", "int score(int r) { static int n; return r * 3 + n++; }\n")
    rc = cli_main(["reload", str(game), "--target", "elf-x64", "--break", "score",
                   "--replace", f"score={bad}"])
    err = capsys.readouterr().err
    assert rc == 2 and "reload refused (writable-data)" in err
    assert "program exited with status 9" in err           # old body: 3 + 6


@pytest.mark.parametrize("target", ["elf-aarch64", "macho-arm64", "elf-x64"])
def test_checked_reload_at_O0(target, src):
    """At -O0, AArch64 signatures are trusted only when clang used
    SelectionDAG (kitemu.reload.abi); sessions compile reloadable AArch64
    code that way, so a checked -O0 reload goes through."""
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"], opt="-O0")
    try:
        s.append(src("prog.c", PROGRAM))
        s.reload_function("value", src("v2.c", VALUE_V2))          # checked
        assert s.call("call_value", 1) == 2002
    finally:
        s.free()


def test_out_of_capacity_reload_is_refused_and_changes_nothing(src):
    s = session("elf-x64", src, capacity=1 << 20)
    try:
        before = snapshot(s)
        big = src("big.c", "static const char table[2 << 20] = {1};\n"
                           "int value(int x) { return x + table[x & 1]; }\n")
        with pytest.raises(ReloadError) as info:
            s.reload_function("value", big)
        assert info.value.reason == "capacity" and "needs" in str(info.value)
        assert snapshot(s) == before and s.call("call_saved", 1) == 2
    finally:
        s.free()
