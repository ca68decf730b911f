"""The simulator's own `css.wasm`: the token junk positions for its table, as a WebAssembly module.

Written here in WebAssembly text for the simulator's table and compiled by wasmtime when the app
starts (no network, no binary checked in). Nothing of NEPSE's module is copied: only its interface is
kept, the one the public clients rely on: exports `cdx rdx bdx ndx mdx`, each `(i32 x5) -> i32`,
each answering from its second argument (the salt the clients put there).
"""

from __future__ import annotations

import wasmtime

_WAT = """(module
  (memory 1)
  (data (i32.const 0) "{table}")
  ;; a salt's hundreds, tens and units digits, and k = table[a + b + c]
  (func $a (param $x i32) (result i32) (i32.rem_u (i32.div_u (local.get $x) (i32.const 100)) (i32.const 10)))
  (func $b (param $x i32) (result i32) (i32.rem_u (i32.div_u (local.get $x) (i32.const 10)) (i32.const 10)))
  (func $c (param $x i32) (result i32) (i32.rem_u (local.get $x) (i32.const 10)))
  (func $k (param $x i32) (result i32)
    (i32.load8_u (i32.add (i32.add (call $a (local.get $x)) (call $b (local.get $x))) (call $c (local.get $x)))))
  (func (export "cdx") (param i32 i32 i32 i32 i32) (result i32)
    (i32.add (call $k (local.get 1)) (i32.const 22)))
  (func (export "rdx") (param i32 i32 i32 i32 i32) (result i32)
    (i32.add (i32.add (i32.add (call $a (local.get 1)) (call $b (local.get 1))) (call $k (local.get 1)))
             (i32.const 32)))
  (func (export "bdx") (param i32 i32 i32 i32 i32) (result i32)
    (i32.add (i32.add (i32.add (call $a (local.get 1)) (call $b (local.get 1))) (call $k (local.get 1)))
             (i32.const 60)))
  (func (export "ndx") (param i32 i32 i32 i32 i32) (result i32)
    (i32.add (i32.add (call $b (local.get 1)) (call $k (local.get 1))) (i32.const 88)))
  (func (export "mdx") (param i32 i32 i32 i32 i32) (result i32)
    (i32.add (i32.add (call $a (local.get 1)) (call $k (local.get 1))) (i32.const 110)))
)
"""


def wat_text(table: tuple[int, ...]) -> str:
    """The module's WebAssembly text, with `table` as its data segment (one byte per entry)."""
    return _WAT.format(table="".join(f"\\{value:02x}" for value in table))


def build(table: tuple[int, ...]) -> bytes:
    """The binary module the simulator serves at /assets/prod/css.wasm."""
    return bytes(wasmtime.wat2wasm(wat_text(table)))
