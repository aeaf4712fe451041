//! Runs one input file through a harness on stable: `cargo run -p polyio-fuzz-harness
//! --example replay -- c_calls|parsers FILE` (with `POLYIO_FUZZ_TRACE=1` to see each step).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = &args[..] else {
        eprintln!("usage: replay c_calls|parsers FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(file).expect("the input file");
    match target.as_str() {
        "c_calls" => polyio_fuzz_harness::calls(&data),
        "parsers" => polyio_fuzz_harness::parsers(&data),
        _ => panic!("unknown target {target}"),
    }
    println!("ok");
}
