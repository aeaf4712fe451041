//! Corpus replay shared by the two corpus tests.

use std::path::Path;

/// Runs every file of `fuzz/corpus/<target>` through `f`, naming the file if one panics;
/// returns how many ran.
pub fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    for path in &files {
        let data = std::fs::read(path).expect("a corpus file");
        let r = std::panic::catch_unwind(|| f(&data));
        if let Err(e) = r {
            eprintln!("corpus input {} failed", path.display());
            std::panic::resume_unwind(e);
        }
    }
    files.len()
}
