//! Replays the committed corpus of the argument-check fuzzer (`fuzz/corpus/parsers`). Its own
//! test binary with one test: the harness sets an environment variable once.

mod common;

#[test]
fn parsers_corpus() {
    let n = common::replay("parsers", polyio_fuzz_harness::parsers);
    assert!(n > 0, "an empty corpus");
}
