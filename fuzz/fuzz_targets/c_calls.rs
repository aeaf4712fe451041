//! libFuzzer over a sequence of C calls (see `polyio_fuzz_harness::calls`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polyio_fuzz_harness::calls(data));
