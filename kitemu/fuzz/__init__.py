"""``kitemu fuzz``: fuzzing relocation records.

Generated *relocation cases* (objects built in memory around one relocation
kind: the real instruction or data word at the site, the target symbol at a
chosen distance - near, at the edge of the field's range, beyond it - an image
base, sometimes a malformed extra relocation) are linked by kitemu and checked
against the psABI, independently of kitemu's own tables, and, for ELF targets,
against ld.lld linking the same objects at the same addresses.

Modules (hypothesis is imported only by the ones that need it):

``model``       the case (objects as plain data, JSON, kitemu's object model) and
                the relocation-kind catalogue of each target
``oracle``      formulas, ranges, alignments, stub eligibility and field masks from
                the psABI documents
``isa``         instruction/data templates per relocation kind
``fields``      decoding the patched fields from the ISA manuals (not kitemu's decoders)
``strategies``  hypothesis strategies: ``reloc_cases(target, kinds)``
``linking``     linking a case cheaply (one machine per target, a fresh region each)
``check``       the properties (``check_case``)
``stubs``       following a stub to its cell with capstone
``elfwriter``   an ELF64 relocatable-object writer for cases
``lld``         the ld.lld differential oracle
``mutate``      a deliberately broken fixup, to show the fuzzer fails
``runner``      work items, shards, budgets, example databases, replay files
``cli``         ``kitemu fuzz``
"""
