//! Gives libpolyio.so its SONAME, `libpolyio.so.MAJOR`, so a program linked against one release
//! loads any later one with the same major version (`make dist` ships the
//! `libpolyio.so.MAJOR.MINOR.PATCH` file and its two symlinks).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpolyio.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
