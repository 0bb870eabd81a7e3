"""The inspector over a live image: :func:`view`, :func:`addr_to_sym`,
:func:`sym_iter` (see :mod:`kitemu.inspect.view`)."""

from .view import (AddrInfo, HostBinding, ImageView, Inspector, PendingView, SegmentView,
                   SymbolView, inspector)

__all__ = ["AddrInfo", "HostBinding", "ImageView", "Inspector", "PendingView", "SegmentView",
           "SymbolView", "inspector"]
