//! polyio-loadgen: the vmbench-style ping-pong load generator behind the echo benchmarks.
//! C connections (TCP, or a Unix stream socket with `--unix`) each send an M-byte message and
//! wait for its whole echo, verifying every byte; with `--udp`, C sockets each send an M-byte
//! datagram and wait for its echo (`udp.rs`). One mio event loop drives them all and one
//! JSON line on stdout reports the result.
//!
//! Exit status: 0 on success, 1 when connections failed (the JSON line is still printed),
//! 2 on bad arguments, 3 when an echo did not match what was sent.

mod pattern;
mod udp;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

use pattern::{Pattern, verify};

const USAGE: &str = "\
usage: polyio-loadgen (--port PORT [--host HOST] [--udp] | --unix PATH) [--conns C]
                      [--size BYTES] [--secs D] [--warmup-secs W]

  --host HOST         server address (default 127.0.0.1)
  --port PORT         server port (required for TCP)
  --unix PATH         connect to the Unix stream socket at PATH instead of TCP
  --udp               UDP instead of TCP: C sockets, one datagram in flight each
                      (--size up to 65507)
  --conns C           concurrent connections, one request in flight each (default 1)
  --size BYTES        message size in bytes (default 1024)
  --secs D            measured duration in seconds, fractions allowed (default 5)
  --warmup-secs W     unmeasured warm-up before it (default 1)

Prints one JSON line: rps, p50_us, p99_us, requests, bytes, errors, secs, cpu_secs, ...";

/// Largest read issued at once; echoes larger than this arrive in several reads.
const READ_CHUNK: usize = 128 * 1024;

/// How long one connect may take before the run gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A TCP address, resolved when the run starts.
    Tcp { host: String, port: u16 },
    /// The filesystem path of a Unix stream socket.
    Unix(PathBuf),
    /// A UDP address, resolved when the run starts.
    Udp { host: String, port: u16 },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Udp { host, port } => write!(f, "udp:{host}:{port}"),
        }
    }
}

/// Command-line options.
#[derive(Debug, Clone)]
struct Args {
    target: Target,
    conns: u32,
    size: usize,
    secs: f64,
    warmup_secs: f64,
}

/// Parses `--key value` / `--key=value` options; `Ok(None)` means help was asked for.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut host, mut port, mut unix) = (None, None, None);
    let mut udp = false;
    let (mut conns, mut size, mut secs, mut warmup_secs) = (1u32, 1024usize, 5.0f64, 1.0f64);
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || match &inline {
            Some(v) => Ok(v.clone()),
            None => it.next().ok_or_else(|| format!("{key} needs a value")),
        };
        match key.as_str() {
            "--host" => host = Some(value()?),
            "--port" => port = Some(parse_num::<u16>(&key, &value()?)?),
            "--unix" => unix = Some(value()?),
            "--udp" if inline.is_none() => udp = true,
            "--conns" => conns = parse_num(&key, &value()?)?,
            "--size" => size = parse_num(&key, &value()?)?,
            "--secs" => secs = parse_num(&key, &value()?)?,
            "--warmup-secs" => warmup_secs = parse_num(&key, &value()?)?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let target = match (unix, port) {
        (Some(_), _) if host.is_some() || port.is_some() || udp => {
            return Err("--unix excludes --host, --port and --udp".to_owned());
        }
        (Some(path), _) if path.is_empty() => return Err("--unix needs a path".to_owned()),
        (Some(path), _) => Target::Unix(PathBuf::from(path)),
        (None, Some(0)) => return Err("--port must be 1..65535".to_owned()),
        (None, Some(port)) if udp => Target::Udp {
            host: host.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port,
        },
        (None, Some(port)) => Target::Tcp {
            host: host.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port,
        },
        (None, None) => return Err("--port (or --unix) is required".to_owned()),
    };
    if conns == 0 || conns > 10_000 {
        return Err(format!("--conns must be 1..10000, got {conns}"));
    }
    if size == 0 || size > 64 * 1024 * 1024 {
        return Err(format!("--size must be 1..67108864 bytes, got {size}"));
    }
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("--secs must be in (0, 86400], got {secs}"));
    }
    if !(warmup_secs.is_finite() && (0.0..=3_600.0).contains(&warmup_secs)) {
        return Err(format!(
            "--warmup-secs must be in [0, 3600], got {warmup_secs}"
        ));
    }
    Ok(Some(Args {
        target,
        conns,
        size,
        secs,
        warmup_secs,
    }))
}

/// Parses one numeric option value, naming the option on failure.
fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("{key}: invalid value {value:?}: {e}"))
}

/// Why a connection stopped.
#[derive(Debug)]
enum ConnError {
    /// A socket error, or the server closed the connection mid-request.
    Io(io::Error),
    /// The echo differed from what was sent: the run is invalid.
    Mismatch(String),
}

/// Counts and latencies of the measured window.
#[derive(Debug)]
struct Recorder {
    measure_start: Instant,
    measure_end: Instant,
    /// Per-request latency in microseconds, for requests that completed in the window.
    latencies_us: Vec<u32>,
}

impl Recorder {
    /// Records a request that completed at `now` after `latency`, if `now` is in the window.
    fn record(&mut self, now: Instant, latency: Duration) {
        if now >= self.measure_start && now < self.measure_end {
            let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
            self.latencies_us.push(us);
        }
    }
}

/// One client connection: its socket (a mio TCP or Unix stream), its messages and the
/// request in flight.
#[derive(Debug)]
struct Conn<S> {
    id: u32,
    stream: S,
    pattern: Pattern,
    /// Number of the request in flight (also picks its message).
    req: u64,
    /// Bytes of the current message written so far.
    sent: usize,
    /// Bytes of its echo read and verified so far.
    recvd: usize,
    /// When the current request's first byte was written (or queued to be).
    started: Instant,
    /// Edge-triggered readiness: set by events, cleared when a call would block.
    read_ready: bool,
    write_ready: bool,
}

impl<S: Read + Write> Conn<S> {
    /// Writes and reads as far as the socket allows, completing and starting requests.
    fn drive(&mut self, scratch: &mut [u8], rec: &mut Recorder) -> Result<(), ConnError> {
        let size = self.pattern.size();
        loop {
            let mut progressed = false;
            if self.write_ready && self.sent < size {
                let msg = self.pattern.message(self.req);
                match self.stream.write(&msg[self.sent..]) {
                    Ok(0) => {
                        return Err(ConnError::Io(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "write returned 0",
                        )));
                    }
                    Ok(n) => {
                        self.sent += n;
                        progressed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write_ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                    Err(e) => return Err(ConnError::Io(e)),
                }
            }
            // A correct server never echoes more than was sent, so read only then.
            if self.read_ready && self.recvd < self.sent {
                let want = (size - self.recvd).min(scratch.len());
                match self.stream.read(&mut scratch[..want]) {
                    Ok(0) => {
                        return Err(ConnError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "server closed the connection after {} of {size} echoed bytes",
                                self.recvd
                            ),
                        )));
                    }
                    Ok(n) => {
                        let expected = &self.pattern.message(self.req)[self.recvd..self.recvd + n];
                        if let Err(m) = verify(expected, &scratch[..n]) {
                            return Err(ConnError::Mismatch(format!(
                                "echo mismatch on connection {} request {} at byte {} of {size}: \
                                 sent 0x{:02x}, got 0x{:02x}",
                                self.id,
                                self.req,
                                self.recvd + m.index,
                                m.expected,
                                m.got
                            )));
                        }
                        self.recvd += n;
                        progressed = true;
                        if self.recvd == size {
                            let now = Instant::now();
                            rec.record(now, now - self.started);
                            self.req += 1;
                            self.sent = 0;
                            self.recvd = 0;
                            self.started = now;
                            // The whole echo is in; the next echo's arrival raises a new edge.
                            self.read_ready = false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                    Err(e) => return Err(ConnError::Io(e)),
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }
}

/// Opens one non-blocking TCP_NODELAY connection to the first of `addrs` that accepts.
fn connect_tcp(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match StdTcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                return Ok(TcpStream::from_std(s));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens one non-blocking connection to the Unix stream socket at `path`.
fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    let s = StdUnixStream::connect(path)?;
    s.set_nonblocking(true)?;
    Ok(UnixStream::from_std(s))
}

/// User plus system CPU seconds this process has used, from getrusage(RUSAGE_SELF).
fn cpu_secs() -> Option<f64> {
    // SAFETY: rusage is a plain C struct of integers, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage that outlives the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return None;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// The nearest-rank percentile `p` (0..=100) of sorted values, 0 when there are none.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Formats an optional float for JSON (`null` when absent).
fn json_f64(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.6}"),
        _ => "null".to_owned(),
    }
}

/// Runs the benchmark against `args.target`; returns the process exit code.
fn run(args: &Args) -> ExitCode {
    match &args.target {
        Target::Tcp { host, port } => {
            let addrs: Vec<SocketAddr> = match (host.as_str(), *port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    eprintln!("polyio-loadgen: cannot resolve {}: {e}", args.target);
                    return ExitCode::from(1);
                }
            };
            run_with(args, || connect_tcp(&addrs))
        }
        Target::Unix(path) => run_with(args, || connect_unix(path)),
        Target::Udp { host, port } => match (host.as_str(), *port).to_socket_addrs() {
            Ok(mut a) => match a.next() {
                Some(addr) => udp::run(args, addr),
                None => {
                    eprintln!("polyio-loadgen: {} resolves to no address", args.target);
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprintln!("polyio-loadgen: cannot resolve {}: {e}", args.target);
                ExitCode::from(1)
            }
        },
    }
}

/// Runs the benchmark over connections that `connect` opens; returns the process exit code.
fn run_with<S, F>(args: &Args, mut connect: F) -> ExitCode
where
    S: Read + Write + Source,
    F: FnMut() -> io::Result<S>,
{
    let target = &args.target;
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("polyio-loadgen: cannot create the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    let mut conns: Vec<Option<Conn<S>>> = Vec::with_capacity(args.conns as usize);
    let now = Instant::now();
    for id in 0..args.conns {
        let mut stream = match connect() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("polyio-loadgen: cannot connect connection {id} to {target}: {e}");
                return ExitCode::from(1);
            }
        };
        let token = Token(id as usize);
        if let Err(e) =
            poll.registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            eprintln!("polyio-loadgen: cannot register connection {id}: {e}");
            return ExitCode::from(1);
        }
        conns.push(Some(Conn {
            id,
            stream,
            pattern: Pattern::new(id, args.size),
            req: 0,
            sent: 0,
            recvd: 0,
            started: now,
            read_ready: false,
            write_ready: true,
        }));
    }

    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(args.warmup_secs);
    let measure_end = measure_start + Duration::from_secs_f64(args.secs);
    let mut rec = Recorder {
        measure_start,
        measure_end,
        latencies_us: Vec::with_capacity(1 << 20),
    };
    let mut scratch = vec![0u8; READ_CHUNK.min(args.size)];
    let mut events = Events::with_capacity(1024);
    let mut errors = 0u64;
    let mut alive = conns.len();
    let mut cpu_start: Option<Option<f64>> = None;

    // Start every request, then let readiness events drive the rest.
    for slot in conns.iter_mut() {
        if let Some(c) = slot {
            c.started = start;
            if let Err(e) = c.drive(&mut scratch, &mut rec) {
                if let Some(code) = conn_failed(c.id, e, &mut errors) {
                    return code;
                }
                *slot = None;
                alive -= 1;
            }
        }
    }

    let mut now = Instant::now();
    while now < measure_end && alive > 0 {
        if cpu_start.is_none() && now >= measure_start {
            cpu_start = Some(cpu_secs());
        }
        let wake = if cpu_start.is_none() {
            measure_start
        } else {
            measure_end
        };
        if let Err(e) = poll.poll(&mut events, Some(wake - now)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("polyio-loadgen: poll failed: {e}");
                return ExitCode::from(1);
            }
        }
        for ev in events.iter() {
            let Some(slot) = conns.get_mut(ev.token().0) else {
                continue;
            };
            let Some(c) = slot else { continue };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.read_ready = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.write_ready = true;
            }
            if let Err(e) = c.drive(&mut scratch, &mut rec) {
                if let Some(code) = conn_failed(c.id, e, &mut errors) {
                    return code;
                }
                *slot = None;
                alive -= 1;
            }
        }
        now = Instant::now();
    }
    let cpu_end = cpu_secs();
    let window_end = now.min(measure_end);
    let secs = window_end
        .saturating_duration_since(measure_start)
        .as_secs_f64();
    let cpu = match (cpu_start, cpu_end) {
        (Some(Some(a)), Some(b)) => Some(b - a),
        _ => None,
    };

    report(args, rec, secs, cpu, errors)
}

/// Prints the JSON line for a finished run (`rec`'s latencies over `secs` measured seconds,
/// `cpu` seconds of this process's CPU in them); returns the process exit code.
fn report(args: &Args, mut rec: Recorder, secs: f64, cpu: Option<f64>, errors: u64) -> ExitCode {
    let mut lat = std::mem::take(&mut rec.latencies_us);
    lat.sort_unstable();
    let requests = lat.len() as u64;
    let rps = if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    };
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64
    };
    println!(
        "{{\"rps\":{rps:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\
         \"max_us\":{},\"mean_us\":{mean:.1},\"requests\":{requests},\"bytes\":{},\
         \"errors\":{errors},\"secs\":{secs:.6},\"cpu_secs\":{},\"conns\":{},\"size\":{}}}",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().copied().unwrap_or(0),
        requests * args.size as u64,
        json_f64(cpu),
        args.conns,
        args.size,
    );
    if errors > 0 {
        eprintln!("polyio-loadgen: {errors} connection(s) failed during the run");
        return ExitCode::from(1);
    }
    if requests == 0 {
        eprintln!("polyio-loadgen: no request completed in the measured window");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Reports a failed connection; returns an exit code when the whole run must stop.
fn conn_failed(id: u32, err: ConnError, errors: &mut u64) -> Option<ExitCode> {
    match err {
        ConnError::Mismatch(msg) => {
            eprintln!("polyio-loadgen: {msg}");
            Some(ExitCode::from(3))
        }
        ConnError::Io(e) => {
            eprintln!("polyio-loadgen: connection {id} failed: {e}");
            *errors += 1;
            None
        }
    }
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => run(&args),
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("polyio-loadgen: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_all_options() {
        let a = args(&[
            "--host",
            "::1",
            "--port=9000",
            "--conns",
            "10",
            "--size",
            "102400",
            "--secs",
            "2.5",
            "--warmup-secs",
            "0",
        ])
        .expect("valid")
        .expect("not help");
        assert_eq!(
            a.target,
            Target::Tcp {
                host: "::1".to_owned(),
                port: 9000
            }
        );
        assert_eq!(a.conns, 10);
        assert_eq!(a.size, 102_400);
        assert_eq!(a.secs, 2.5);
        assert_eq!(a.warmup_secs, 0.0);
    }

    #[test]
    fn host_defaults_to_ipv4_loopback() {
        let a = args(&["--port", "7000"]).expect("valid").expect("not help");
        assert_eq!(
            a.target,
            Target::Tcp {
                host: "127.0.0.1".to_owned(),
                port: 7000
            }
        );
    }

    #[test]
    fn parses_a_unix_path() {
        let a = args(&["--unix", "/tmp/echo.sock", "--conns=10", "--size", "1024"])
            .expect("valid")
            .expect("not help");
        assert_eq!(a.target, Target::Unix(PathBuf::from("/tmp/echo.sock")));
        assert_eq!(a.conns, 10);
        assert_eq!(a.size, 1024);
        let b = args(&["--unix=rel/echo.sock"])
            .expect("valid")
            .expect("not help");
        assert_eq!(b.target, Target::Unix(PathBuf::from("rel/echo.sock")));
    }

    #[test]
    fn parses_udp() {
        let a = args(&["--udp", "--port", "7000", "--conns", "10"])
            .expect("valid")
            .expect("not help");
        assert_eq!(
            a.target,
            Target::Udp {
                host: "127.0.0.1".to_owned(),
                port: 7000
            }
        );
        assert!(args(&["--udp", "--unix", "/tmp/s"]).is_err());
        assert!(args(&["--udp"]).is_err(), "a port is required");
        assert!(
            args(&["--udp=1", "--port", "1"]).is_err(),
            "--udp takes no value"
        );
    }

    #[test]
    fn rejects_a_unix_path_mixed_with_tcp_or_empty() {
        assert!(args(&["--unix", "/tmp/s", "--port", "7000"]).is_err());
        assert!(args(&["--port", "7000", "--unix", "/tmp/s"]).is_err());
        assert!(args(&["--unix", "/tmp/s", "--host", "127.0.0.1"]).is_err());
        assert!(args(&["--unix", ""]).is_err());
        assert!(args(&["--unix"]).is_err(), "--unix needs a value");
        assert!(
            args(&["--host", "127.0.0.1"]).is_err(),
            "port or path is required"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(args(&[]).is_err(), "port is required");
        assert!(args(&["--port", "x"]).is_err());
        assert!(args(&["--port", "70000"]).is_err());
        assert!(args(&["--port", "1", "--conns", "0"]).is_err());
        assert!(args(&["--port", "1", "--secs", "-1"]).is_err());
        assert!(args(&["--port", "1", "--size"]).is_err());
        assert!(args(&["--port", "1", "--bogus", "1"]).is_err());
        assert!(matches!(args(&["--help"]), Ok(None)));
    }

    /// Listens at a fresh Unix socket path and echoes one connection on a thread, passing
    /// each read through `mangle`; returns the path and the thread.
    fn unix_echo(name: &str, mangle: fn(&mut [u8])) -> (PathBuf, std::thread::JoinHandle<()>) {
        let path =
            std::env::temp_dir().join(format!("polyio-loadgen-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                mangle(&mut buf[..n]);
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
        (path, server)
    }

    fn unix_args(path: &Path) -> Args {
        Args {
            target: Target::Unix(path.to_owned()),
            conns: 1,
            size: 1024,
            secs: 0.3,
            warmup_secs: 0.0,
        }
    }

    #[test]
    fn drives_a_unix_socket_echo() {
        let (path, server) = unix_echo("echo", |_| {});
        let code = run(&unix_args(&path));
        let _ = std::fs::remove_file(&path);
        assert_eq!(code, ExitCode::SUCCESS);
        // The run closed its connection, so the server has seen end of stream.
        server.join().expect("server thread");
    }

    #[test]
    fn a_corrupted_unix_socket_echo_is_a_mismatch() {
        let (path, server) = unix_echo("corrupt", |b| b[0] ^= 0x40);
        let code = run(&unix_args(&path));
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            code,
            ExitCode::from(3),
            "exit status 3 means an echo mismatch"
        );
        server.join().expect("server thread");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
