//! The UDP mode (`--udp`): C sockets, each connected to the server, send an M-byte datagram
//! and wait for its echo (one in flight per socket), verifying every byte. A datagram whose
//! echo does not come back within `LOSS_TIMEOUT` counts as a failed socket (it stops), as a
//! failed connection does over TCP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::pattern::{Pattern, verify};
use crate::{Args, ConnError, Recorder, conn_failed, cpu_secs, report};

/// How long an echo may take before its datagram counts as lost.
const LOSS_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest datagram payload over IPv4.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// One client socket and its request in flight.
struct Dgram {
    id: u32,
    sock: UdpSocket,
    pattern: Pattern,
    req: u64,
    /// When the datagram in flight was sent.
    started: Instant,
    /// The datagram in flight is still to be sent (the socket would block).
    unsent: bool,
}

impl Dgram {
    /// Sends the datagram of the request in flight, or marks it unsent when the socket would
    /// block.
    fn send(&mut self) -> Result<(), ConnError> {
        match self.sock.send(self.pattern.message(self.req)) {
            Ok(n) if n == self.pattern.size() => {
                self.unsent = false;
                Ok(())
            }
            Ok(n) => Err(ConnError::Io(io::Error::other(format!(
                "sent {n} of {} bytes in one datagram",
                self.pattern.size()
            )))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.unsent = true;
                Ok(())
            }
            Err(e) => Err(ConnError::Io(e)),
        }
    }

    /// Receives every echo waiting, verifying each and sending the next request.
    fn drive(&mut self, scratch: &mut [u8], rec: &mut Recorder) -> Result<(), ConnError> {
        if self.unsent {
            self.send()?;
        }
        loop {
            let n = match self.sock.recv(scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ConnError::Io(e)),
            };
            let size = self.pattern.size();
            let expected = self.pattern.message(self.req);
            if n != size {
                return Err(ConnError::Mismatch(format!(
                    "echo of {n} bytes on socket {} request {} (sent {size})",
                    self.id, self.req
                )));
            }
            if let Err(m) = verify(expected, &scratch[..n]) {
                return Err(ConnError::Mismatch(format!(
                    "echo mismatch on socket {} request {} at byte {} of {size}: sent 0x{:02x}, \
                     got 0x{:02x}",
                    self.id, self.req, m.index, m.expected, m.got
                )));
            }
            let now = Instant::now();
            rec.record(now, now - self.started);
            self.req += 1;
            self.started = now;
            self.send()?;
        }
    }
}

/// One connected, non-blocking UDP socket towards `addr`.
fn open(addr: SocketAddr) -> io::Result<UdpSocket> {
    let any = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let sock = UdpSocket::bind(SocketAddr::new(any, 0))?;
    sock.connect(addr)?;
    Ok(sock)
}

/// Runs the UDP benchmark against the server at `addr`; returns the process exit code.
pub(crate) fn run(args: &Args, addr: SocketAddr) -> ExitCode {
    if args.size > MAX_DATAGRAM {
        eprintln!("polyio-loadgen: --udp takes --size up to {MAX_DATAGRAM} bytes");
        return ExitCode::from(2);
    }
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("polyio-loadgen: cannot create the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    let start = Instant::now();
    let mut socks: Vec<Option<Dgram>> = Vec::with_capacity(args.conns as usize);
    for id in 0..args.conns {
        let mut sock = match open(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("polyio-loadgen: cannot open UDP socket {id} to {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = poll
            .registry()
            .register(&mut sock, Token(id as usize), interest)
        {
            eprintln!("polyio-loadgen: cannot register UDP socket {id}: {e}");
            return ExitCode::from(1);
        }
        socks.push(Some(Dgram {
            id,
            sock,
            pattern: Pattern::new(id, args.size),
            req: 0,
            started: start,
            unsent: true,
        }));
    }

    let measure_start = start + Duration::from_secs_f64(args.warmup_secs);
    let measure_end = measure_start + Duration::from_secs_f64(args.secs);
    let mut rec = Recorder {
        measure_start,
        measure_end,
        latencies_us: Vec::with_capacity(1 << 20),
    };
    // One byte more than a datagram: an echo that grew shows as too long.
    let mut scratch = vec![0u8; args.size + 1];
    let mut events = Events::with_capacity(1024);
    let mut errors = 0u64;
    let mut alive = socks.len();
    let mut cpu_start: Option<Option<f64>> = None;

    for slot in socks.iter_mut() {
        if let Some(d) = slot {
            d.started = Instant::now();
            if let Err(e) = d.send() {
                if let Some(code) = conn_failed(d.id, e, &mut errors) {
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
        // Wake at least every LOSS_TIMEOUT to look for lost datagrams.
        let timeout = (wake - now).min(LOSS_TIMEOUT);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("polyio-loadgen: poll failed: {e}");
                return ExitCode::from(1);
            }
        }
        for ev in events.iter() {
            let Some(slot) = socks.get_mut(ev.token().0) else {
                continue;
            };
            let Some(d) = slot else { continue };
            if let Err(e) = d.drive(&mut scratch, &mut rec) {
                if let Some(code) = conn_failed(d.id, e, &mut errors) {
                    return code;
                }
                *slot = None;
                alive -= 1;
            }
        }
        now = Instant::now();
        for slot in socks.iter_mut() {
            if let Some(d) = slot {
                if now.duration_since(d.started) > LOSS_TIMEOUT {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "datagram of request {} lost (no echo in {LOSS_TIMEOUT:?})",
                            d.req
                        ),
                    );
                    if let Some(code) = conn_failed(d.id, ConnError::Io(e), &mut errors) {
                        return code;
                    }
                    *slot = None;
                    alive -= 1;
                }
            }
        }
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
