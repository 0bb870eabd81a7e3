"""Hot reload: replacing the body of a linked function in a live image.

``kitemu.reload.abi`` derives the ABI signature of a definition from its
DWARF (roadmap 1.3, the ABI compatibility gate).
"""
