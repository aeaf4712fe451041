//! The C ABI's checks of what a user passes, fuzzed against reference rules written here
//! from the header's documentation: host strings (`polyio_tcp_connect`, `polyio_tcp_listen`,
//! `polyio_getaddrinfo`), IP strings (`polyio_udp_connect`), address records
//! (`polyio_udp_send`'s `polyio_addr`, parsed by hand in polyio), abstract Unix names, and
//! sizes past PTRDIFF_MAX. Lookups go to the delayed test resolver and are abandoned, so no
//! name ever reaches DNS; sends go from a socket bound to 127.0.0.1, which the kernel does
//! not route anywhere else.

use std::ffi::{CString, c_char};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr;
use std::sync::Once;

use polyio::completion::{polyio_addr, polyio_completion};
use polyio::dns::polyio_lookup_hints;
use polyio::runtime::{
    polyio_runtime, polyio_runtime_free, polyio_runtime_new, polyio_runtime_shutdown, polyio_turn,
};
use polyio::status::polyio_status as S;

use crate::input::Input;

/// The resolver waits this long before asking the system, and gives up as soon as the
/// lookup is abandoned: every lookup here is abandoned at once.
const LOOKUP_DELAY_MS: &str = "600000";

/// The host rule of the header (`POLYIO_MAX_HOST_LEN`): an IP literal (IPv6 with or without
/// brackets), or a name of at most 253 bytes plus an optional trailing dot whose labels are
/// 1 to 63 printable ASCII characters.
fn host_ok(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    if ip_ok(host).is_some() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_graphic()))
}

/// An IP literal, IPv6 in brackets or not.
fn ip_ok(s: &str) -> Option<IpAddr> {
    let bare = s
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse().ok()
}

/// What a `polyio_addr` names: the text up to its first NUL (which must be inside `ip`), as
/// the standard library parses an IP address (no brackets).
fn record_ip(ip: &[u8; 46]) -> Option<IpAddr> {
    let end = ip.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&ip[..end]).ok()?.parse().ok()
}

/// Bytes up to the first NUL, as a C string (what a C caller's string would be).
fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("cut at the first NUL")
}

struct Rt(*mut polyio_runtime);

impl Rt {
    fn new() -> Rt {
        let mut rt = ptr::null_mut();
        // SAFETY: NULL options mean the defaults; `rt` is writable.
        assert_eq!(unsafe { polyio_runtime_new(ptr::null(), &mut rt) }, S::Ok);
        Rt(rt)
    }

    /// Shuts down, then hands out every completion (each must be for an accepted `ud`).
    fn drain(&self, accepted: &[u64]) {
        // SAFETY: live runtime.
        assert_eq!(unsafe { polyio_runtime_shutdown(self.0) }, S::Ok);
        let mut seen = Vec::new();
        loop {
            let mut out = [std::mem::MaybeUninit::<polyio_completion>::uninit(); 16];
            // SAFETY: room for 16 completions.
            let n = unsafe { polyio_turn(self.0, out.as_mut_ptr().cast(), 16) };
            if n == 0 {
                break;
            }
            for c in &out[..n] {
                // SAFETY: polyio wrote the first `n`.
                let c = unsafe { c.assume_init() };
                assert!(
                    accepted.contains(&c.user_data),
                    "a completion nobody asked for: {c:?}"
                );
                assert!(!seen.contains(&c.user_data), "a second completion: {c:?}");
                seen.push(c.user_data);
                if !c.addrinfo.is_null() {
                    // SAFETY: a reaped lookup list, freed once.
                    unsafe { polyio::dns::polyio_addrinfo_free(c.addrinfo) };
                }
            }
        }
        assert_eq!(
            seen.len(),
            accepted.len(),
            "accepted {accepted:?}, completed {seen:?}"
        );
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // SAFETY: live runtime, not used afterwards.
        unsafe { polyio_runtime_free(self.0) };
    }
}

/// Runs `data` through one of the argument checks; panics where polyio and the reference
/// rule disagree or a call panics.
pub fn parsers(data: &[u8]) {
    static DELAY: Once = Once::new();
    DELAY.call_once(|| {
        // SAFETY: set once, before the first runtime reads it; the harness's callers (the
        // fuzz target, a single-test replay binary) run no other thread that reads the
        // environment meanwhile.
        unsafe { std::env::set_var("POLYIO_TEST_LOOKUP_DELAY_MS", LOOKUP_DELAY_MS) };
    });
    let mut input = Input::new(data);
    match input.below(6) {
        0 => hosts(&mut input),
        1 => ip_strings(&mut input),
        2 => records(&mut input),
        3 => unix_names(&mut input),
        4 => lookups(&mut input),
        _ => sizes(&mut input),
    }
}

/// Host strings: connect and listen agree with the host rule.
fn hosts(input: &mut Input) {
    let raw = input.rest();
    let host = c_string(raw);
    let bytes = host.as_bytes();
    let rt = Rt::new();
    let mut accepted = Vec::new();
    let literal = std::str::from_utf8(bytes).ok().and_then(ip_ok);
    // Connect only to names (looked up by the delayed resolver, then abandoned): an IP
    // literal would dial it.
    if literal.is_none() {
        // SAFETY: live runtime, NUL-terminated host.
        let r = unsafe { polyio::tcp::polyio_tcp_connect(rt.0, host.as_ptr(), 9, 1) };
        if host_ok(bytes) {
            assert_eq!(r, S::Ok, "connect({host:?}) refused");
            accepted.push(1);
        } else {
            assert_eq!(r, S::InvalidArgument, "connect({host:?})");
        }
    }
    // Listen takes IP literals and `localhost` only, and resolves nothing.
    let mut h = 0;
    // SAFETY: live runtime, NUL-terminated host, writable out-param.
    let r = unsafe { polyio::tcp::polyio_tcp_listen(rt.0, host.as_ptr(), 0, 0, 0, &mut h) };
    let localhost = bytes.eq_ignore_ascii_case(b"localhost");
    if literal.is_none() && !localhost {
        assert_eq!(r, S::InvalidArgument, "listen({host:?})");
    }
    if r == S::Ok {
        assert_ne!(h, 0);
        // SAFETY: live runtime.
        assert_eq!(unsafe { polyio::stream::polyio_close(rt.0, h) }, S::Ok);
    } else {
        assert_eq!(h, 0, "listen wrote its out-param on {r:?}");
    }
    rt.drain(&accepted);
}

/// IP strings: `polyio_udp_connect` takes exactly the IP literals, and its peer reads back.
fn ip_strings(input: &mut Input) {
    let port = input.u16();
    let ip = c_string(input.rest());
    let rt = Rt::new();
    let mut h = 0;
    // SAFETY: live runtime, NUL-terminated ip, writable out-param.
    let r = unsafe { polyio::udp::polyio_udp_bind(rt.0, c"127.0.0.1".as_ptr(), 0, 0, &mut h) };
    assert_eq!(r, S::Ok);
    // SAFETY: live runtime, NUL-terminated ip.
    let r = unsafe { polyio::udp::polyio_udp_connect(rt.0, h, ip.as_ptr(), port) };
    let want = std::str::from_utf8(ip.as_bytes()).ok().and_then(ip_ok);
    match want {
        None => assert_eq!(r, S::InvalidArgument, "udp_connect({ip:?})"),
        // Port 0 names no peer (Linux would take it and then call the socket unconnected).
        Some(_) if port == 0 => assert_eq!(r, S::InvalidArgument, "udp_connect({ip:?}, 0)"),
        Some(want) if r == S::Ok => {
            let mut a = std::mem::MaybeUninit::<polyio_addr>::uninit();
            // SAFETY: live runtime, writable out-param.
            let r = unsafe { polyio::udp::polyio_udp_peer_addr(rt.0, h, a.as_mut_ptr()) };
            assert_eq!(r, S::Ok);
            // SAFETY: written on success.
            let a = unsafe { a.assume_init() };
            let text = a.ip.map(|c| c as u8);
            let got = record_ip(&text).expect("a NUL-terminated IP in the record");
            // An IPv4-mapped peer may read back as IPv4 (never here: the socket is IPv4).
            // The unspecified address means this host: Linux connects to its loopback.
            let want = match want {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                other => other,
            };
            assert_eq!(got, want, "udp_connect({ip:?}) peer");
            assert_eq!(a.port, port);
        }
        Some(_) => {}
    }
    rt.drain(&[]);
}

/// Address records: `polyio_udp_send` takes a record exactly when its text up to the first
/// NUL is an IP address (the hand-written IPv4 parser and its one-entry cache included).
fn records(input: &mut Input) {
    let rt = Rt::new();
    let mut h = 0;
    // SAFETY: live runtime, NUL-terminated ip, writable out-param.
    let r = unsafe { polyio::udp::polyio_udp_bind(rt.0, c"127.0.0.1".as_ptr(), 0, 0, &mut h) };
    assert_eq!(r, S::Ok);
    let mut accepted = Vec::new();
    let mut ud = 1;
    while !input.is_empty() && ud < 16 {
        let mut ip = [0u8; 46];
        let n = input.below(47);
        let src = input.bytes(n);
        ip[..src.len()].copy_from_slice(src);
        let rec = polyio_addr {
            ip: ip.map(|b| b as c_char),
            port: input.u16(),
            family: input.byte(),
        };
        let want = record_ip(&ip);
        // Never send anywhere but loopback (the bound address refuses the rest anyway).
        if want.is_some_and(|a| !a.is_loopback()) {
            continue;
        }
        // SAFETY: live runtime; `len` 0 reads no data; `rec` is readable.
        let r = unsafe { polyio::udp::polyio_udp_send(rt.0, h, ptr::null(), 0, &rec, ud) };
        match want {
            None => assert_eq!(
                r,
                S::InvalidArgument,
                "send to {:?}",
                String::from_utf8_lossy(&ip)
            ),
            Some(_) => {
                assert_eq!(r, S::Ok, "send to {:?}", String::from_utf8_lossy(&ip));
                accepted.push(ud);
            }
        }
        ud += 1;
    }
    rt.drain(&accepted);
}

/// Abstract Unix names of any bytes and length: listen and connect refuse only what the
/// header says (empty, longer than `POLYIO_UNIX_PATH_MAX`).
fn unix_names(input: &mut Input) {
    let len = input.below(128);
    let mut name = vec![0u8];
    name.extend_from_slice(input.bytes(len));
    name.resize(len.max(1), 0);
    // Unique per process, so runs do not collide.
    let tag = format!("polyio-fuzz-{}", std::process::id());
    if name.len() > tag.len() + 1 {
        name[1..1 + tag.len()].copy_from_slice(tag.as_bytes());
    }
    let rt = Rt::new();
    let mut h = 0;
    // SAFETY: live runtime; `name` holds `name.len()` bytes; writable out-param.
    let r = unsafe {
        polyio::unix::polyio_unix_listen(rt.0, name.as_ptr().cast(), name.len(), 0, 0, &mut h)
    };
    if name.len() > 108 {
        assert!(r != S::Ok, "listen on a {}-byte name", name.len());
    }
    let mut accepted = Vec::new();
    if r == S::Ok {
        // SAFETY: live runtime; `name` holds `name.len()` bytes.
        let r =
            unsafe { polyio::unix::polyio_unix_connect(rt.0, name.as_ptr().cast(), name.len(), 7) };
        assert_eq!(r, S::Ok, "connect to the name just listened on");
        accepted.push(7);
    } else {
        assert!(r != S::Panic);
        assert_eq!(h, 0, "listen wrote its out-param on {r:?}");
    }
    rt.drain(&accepted);
}

/// Lookups: any hints, host and service; the host rule decides, a service of 1 to 64 bytes.
fn lookups(input: &mut Input) {
    let hints = polyio_lookup_hints {
        family: i32::from(input.byte() as i8),
        socktype: i32::from(input.byte() as i8),
        protocol: i32::from(input.byte() as i8),
        flags: input.u16() as i32,
    };
    let which = input.below(4);
    let split = input.below(80);
    let rest = input.rest();
    let (a, b) = rest.split_at(split.min(rest.len()));
    let host = c_string(a);
    let service = c_string(b);
    let host_ptr = if which == 1 {
        ptr::null()
    } else {
        host.as_ptr()
    };
    let service_ptr = if which == 2 {
        ptr::null()
    } else {
        service.as_ptr()
    };
    let hints_ptr = if which == 3 {
        ptr::null()
    } else {
        &hints as *const polyio_lookup_hints
    };
    let rt = Rt::new();
    // SAFETY: live runtime; strings NUL-terminated or NULL; hints readable or NULL.
    let r = unsafe { polyio::dns::polyio_getaddrinfo(rt.0, host_ptr, service_ptr, hints_ptr, 3) };
    let host_good = host_ptr.is_null() || host_ok(host.as_bytes());
    let service_good = service_ptr.is_null() || (1..=64).contains(&service.as_bytes().len());
    if host_ptr.is_null() && service_ptr.is_null() || !host_good || !service_good {
        assert_eq!(r, S::InvalidArgument, "getaddrinfo({host:?}, {service:?})");
        rt.drain(&[]);
    } else {
        assert!(r == S::Ok || r == S::InvalidArgument, "getaddrinfo: {r:?}");
        rt.drain(if r == S::Ok { &[3] } else { &[] });
    }
}

/// Sizes and pointers the calls must refuse before touching memory: NULLs, lengths past
/// PTRDIFF_MAX, zero capacities, deadlines and timers far away.
fn sizes(input: &mut Input) {
    let rt = Rt::new();
    let big = (isize::MAX as usize).saturating_add(1 + input.u16() as usize);
    let mut byte = [0u8; 1];
    let mut h = 0;
    // SAFETY: live runtime, NUL-terminated ip, writable out-param.
    let r = unsafe { polyio::udp::polyio_udp_bind(rt.0, c"127.0.0.1".as_ptr(), 0, 0, &mut h) };
    assert_eq!(r, S::Ok);
    let mut accepted = Vec::new();
    // SAFETY: (each call below) live runtime; every call must refuse its arguments before
    // reading or writing memory past the one byte given.
    unsafe {
        assert_eq!(
            polyio::udp::polyio_udp_recv(rt.0, h, byte.as_mut_ptr(), big, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::udp::polyio_udp_recv(rt.0, h, byte.as_mut_ptr(), 0, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::udp::polyio_udp_recv(rt.0, h, ptr::null_mut(), 1, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::udp::polyio_udp_send(rt.0, h, byte.as_ptr(), big, ptr::null(), 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::udp::polyio_udp_send(rt.0, h, ptr::null(), 1, ptr::null(), 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::udp::polyio_udp_recv_multishot(rt.0, h, big, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::stream::polyio_read(rt.0, h, byte.as_mut_ptr(), 1, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::stream::polyio_read(ptr::null_mut(), h, byte.as_mut_ptr(), 1, 1),
            S::InvalidArgument
        );
        assert_eq!(
            polyio::cancel::polyio_cancel(ptr::null_mut(), 1),
            S::InvalidArgument
        );
        let ms = input.u64();
        let r = polyio::timer::polyio_timer(rt.0, ms, 2);
        assert!(r == S::Ok || r == S::InvalidArgument, "timer({ms}): {r:?}");
        if r == S::Ok {
            accepted.push(2);
            let d = input.u64();
            let r = polyio::cancel::polyio_deadline(rt.0, 2, d);
            assert!(
                r == S::Ok || r == S::InvalidArgument,
                "deadline({d}): {r:?}"
            );
        }
    }
    rt.drain(&accepted);
}
