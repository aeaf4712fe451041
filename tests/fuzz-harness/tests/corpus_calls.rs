//! Replays the committed corpus of the C-call fuzzer (`fuzz/corpus/c_calls`) through the
//! harness on stable Rust: every input that once found a bug, or new coverage, stays a test.

mod common;

#[test]
fn c_calls_corpus() {
    let n = common::replay("c_calls", polyio_fuzz_harness::calls);
    assert!(n > 0, "an empty corpus");
}
