"""``kitemu inspect``: link inputs (and appends) in a session and print what
the image holds, or what is at given addresses."""

from __future__ import annotations

import json

from ..targets import TARGETS


def _int(text: str) -> int:
    return int(text, 0)


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".o objects, .a archives or .c sources: the first link")
    p.add_argument("--target", "-t", choices=sorted(TARGETS),
                   help="target (default: from the first input's machine)")
    p.add_argument("--append", action="append", default=[], metavar="INPUT",
                   help="append INPUT as a later generation (repeatable, in order)")
    p.add_argument("--defer", action="store_true",
                   help="let undefined names stay pending until an append defines them")
    p.add_argument("--define", action="append", default=[], metavar="NAME=ADDR",
                   help="an absolute symbol, defined before the first link (repeatable)")
    p.add_argument("--base", type=_int, default=None, help="image region base address")
    p.add_argument("--capacity", type=_int, default=None, help="image region capacity")
    p.add_argument("--strategy", default=None, help="exec-memory strategy")
    p.add_argument("--addr", action="append", default=[], type=_int, metavar="ADDR",
                   help="print what is at ADDR instead of the whole view (repeatable)")
    p.add_argument("--internal", action="store_true",
                   help="also list local symbols, stubs and islands")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--cflags", action="append", default=[], metavar="FLAG",
                   help="extra clang flag for C inputs (repeatable; -g gives file:line)")


def main(ns) -> int:
    from ..driver import gather
    from ..errors import ConfigError
    from ..runtime import DEFAULT_BASE, DEFAULT_CAPACITY
    from ..session import Session

    first = gather(ns.inputs, target=ns.target, cflags=ns.cflags)
    s = Session(first.target.name, base=DEFAULT_BASE if ns.base is None else ns.base,
                capacity=DEFAULT_CAPACITY if ns.capacity is None else ns.capacity,
                strategy=ns.strategy, cflags=ns.cflags)
    try:
        for d in ns.define:
            name, sep, value = d.partition("=")
            if not sep or not name:
                raise ConfigError(f"--define {d!r}: expected NAME=ADDR")
            try:
                s.define(name, int(value, 0))
            except ValueError:
                raise ConfigError(f"--define {d!r}: {value!r} is not an address") from None
        s.add(*first.objects, *first.archives)
        s.link(defer=ns.defer)
        for path in ns.append:
            s.append(path, defer=ns.defer)
        if ns.addr:
            infos = [s.addr_to_sym(a) for a in ns.addr]
            if ns.json:
                print(json.dumps([i.__dict__ for i in infos], indent=2))
            else:
                for i in infos:
                    print(i.render())
            return 0
        view = s.view()
        if ns.json:
            data = view.to_json()
            if not ns.internal:
                data["symbols"] = [x for x in data["symbols"] if not x["internal"]]
            print(json.dumps(data, indent=2))
        else:
            print(view.render(internal=ns.internal))
        return 0
    finally:
        s.free()
