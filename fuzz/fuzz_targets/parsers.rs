//! libFuzzer over the C ABI's argument checks (see `polyio_fuzz_harness::parsers`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polyio_fuzz_harness::parsers(data));
