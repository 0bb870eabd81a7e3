"""Calling guest functions with integer, pointer and double arguments, per
each target's calling convention (registers, then stack)."""

import pytest

from helpers import ELF_TARGETS


@pytest.mark.parametrize("target", ELF_TARGETS)
def test_integer_and_double_arguments_and_returns(target):
    from objbuild import ObjBuilder
    from kitemu.loader.model import SectionKind
    from kitemu.runtime import JitProcess
    # hand-written: f(a..j ints) returns the 10th (a stack argument on every
    # target: 6 GPRs on x64, 8 on aarch64/rv64); g(x, y) returns x - y in double
    code = {
        "elf-x64": (b"\x48\x8b\x44\x24\x20\xc3",                   # mov rax, [rsp+32]; ret
                    b"\xf2\x0f\x5c\xc1\xc3"),                      # subsd xmm0, xmm1; ret
        "elf-aarch64": ((0xF94007E0).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little"),
                        (0x1E613800).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")),
        "elf-rv64": ((0x00813503).to_bytes(4, "little") + (0x00008067).to_bytes(4, "little"),
                     (0x0AB57553).to_bytes(4, "little") + (0x00008067).to_bytes(4, "little")),
    }[target]
    b = ObjBuilder(target, "args.o")
    t = b.section(".text", SectionKind.TEXT, code[0] + code[1], align=4)
    b.symbol("tenth", t, 0)
    b.symbol("dsub", t, len(code[0]))
    proc = JitProcess(target)
    proc.link([b.build()])
    g = proc.image.globals
    stack_index = {"elf-x64": 6, "elf-aarch64": 8, "elf-rv64": 8}[target]
    args = list(range(100, 100 + stack_index + 4))
    value, fault = proc.call(g["tenth"], args)
    # x64: [rsp+32] after the return address = 4th stack slot (index 6+3)
    # aarch64: ldr x0, [sp, #8] = 2nd stack slot; rv64: ld a0, 8(sp) = 2nd
    want = {"elf-x64": args[stack_index + 3], "elf-aarch64": args[stack_index + 1],
            "elf-rv64": args[stack_index + 1]}[target]
    assert fault is None and value == want
    value, fault = proc.call(g["dsub"], [7.25, 0.5], returns="double")
    assert fault is None and value == 6.75
