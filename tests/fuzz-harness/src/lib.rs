//! Fuzz harnesses for polyio's C ABI: each turns arbitrary bytes into a sequence of C calls
//! and panics when the contract breaks. cargo-fuzz (`fuzz/`, `make fuzz`) drives them under
//! libFuzzer and AddressSanitizer; `tests/corpus.rs` replays the committed corpus on stable.

#![deny(unsafe_op_in_unsafe_fn)]

mod input;

pub mod calls;

pub mod parsers;

pub use calls::calls;
pub use parsers::parsers;
