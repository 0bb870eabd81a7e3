"""kitemu's debugger: breakpoints, stepping and backtraces over a live JIT image."""
