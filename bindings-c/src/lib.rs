//! polyio's C ABI: thin `extern "C"` shims over `polyio-core`, one per core call, one module
//! per kind as `include/polyio.h` groups them. Every function goes through `ffi_boundary!`
//! (no panic crosses into C) and checks its pointers; out-params are written only on success.
//! cbindgen generates the header from these modules (`make header`); their doc comments are
//! the header's documentation.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

#[macro_use]
mod macros;

// The header's sections, in this order: cbindgen emits functions in the order it reads the
// modules (blank lines keep rustfmt from sorting them).
pub mod runtime;

pub mod completion;

pub mod cancel;

pub mod status;

pub mod stream;

pub mod tcp;

pub mod unix;

pub mod dns;

pub mod timer;

pub mod udp;

pub mod fs;

#[cfg(test)]
mod tests {
    /// Every source file of this crate, by name.
    const SOURCES: &[(&str, &str)] = &[
        ("cancel.rs", include_str!("cancel.rs")),
        ("completion.rs", include_str!("completion.rs")),
        ("dns.rs", include_str!("dns.rs")),
        ("fs.rs", include_str!("fs.rs")),
        ("lib.rs", include_str!("lib.rs")),
        ("macros.rs", include_str!("macros.rs")),
        ("runtime.rs", include_str!("runtime.rs")),
        ("status.rs", include_str!("status.rs")),
        ("stream.rs", include_str!("stream.rs")),
        ("tcp.rs", include_str!("tcp.rs")),
        ("timer.rs", include_str!("timer.rs")),
        ("udp.rs", include_str!("udp.rs")),
        ("unix.rs", include_str!("unix.rs")),
    ];

    #[test]
    fn every_source_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SOURCES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, listed);
    }

    /// The rule `macros.rs` cannot enforce by itself: every exported function is
    /// `#[unsafe(no_mangle)]` and its body opens with `ffi_boundary!`.
    #[test]
    fn every_c_function_goes_through_the_panic_boundary() {
        let mut seen = 0;
        for (file, text) in SOURCES {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.contains("extern \"C\" fn ") || line.trim_start().starts_with("//") {
                    continue;
                }
                seen += 1;
                assert_eq!(
                    lines[i - 1].trim(),
                    "#[unsafe(no_mangle)]",
                    "{file}:{}: {line}",
                    i + 1
                );
                let body = lines[i..]
                    .iter()
                    .position(|l| l.trim_end().ends_with('{'))
                    .map(|k| lines[i + k + 1].trim_start());
                assert!(
                    body.is_some_and(|b| b.starts_with("ffi_boundary!(")),
                    "{file}:{}: `{line}` does not open with ffi_boundary!",
                    i + 1
                );
            }
        }
        assert!(seen > 20, "found only {seen} C functions");
    }
}
