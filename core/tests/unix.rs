//! Unix domain stream sockets: connect and listen by filesystem path and abstract name, the
//! shared stream ops on them (echo, EOF, multi-shot reads, cancel), the socket file's removal
//! on close, bad paths, peer credentials and paths, on both backends.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{BACKENDS, Reaper, pair, runtime};
use polyio_core::{
    FLAG_MORE, Handle, ListenOptions, OpCode, ReadBuf, Runtime, Status, UNIX_PATH_MAX, WriteBuf,
};

/// A fresh directory under the system temp dir, removed (with what is left in it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("polyio-unix-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bytes(p: &std::path::Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// A unique abstract name (leading NUL).
fn abstract_name(tag: &str) -> Vec<u8> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("\0polyio-test-{}-{tag}-{n}", std::process::id()).into_bytes()
}

/// A connected Unix pair (client, server) on `path`, and the listener.
fn unix_pair(rt: &mut Runtime, r: &mut Reaper, path: &[u8]) -> (Handle, Handle, Handle) {
    let l = rt.unix_listen(path, ListenOptions::default()).unwrap();
    rt.accept(l, 9001).unwrap();
    rt.unix_connect(path, 9002).unwrap();
    let a = r.wait(rt, 9001);
    let c = r.wait(rt, 9002);
    assert_eq!(a.status(), Status::Ok);
    assert_eq!((c.status(), c.op), (Status::Ok, OpCode::Connect));
    (c.handle, a.handle, l)
}

#[test]
fn echo_and_end_of_stream_over_a_path() {
    for backend in BACKENDS {
        let dir = TempDir::new();
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = unix_pair(&mut rt, &mut r, bytes(&dir.path("echo.sock")));
        rt.write(c, WriteBuf::from_vec(b"hello unix".to_vec()), 1)
            .unwrap();
        rt.read(s, ReadBuf::with_capacity(64), 2).unwrap();
        assert_eq!(r.wait(&mut rt, 1).result, 10);
        let rd = r.wait(&mut rt, 2);
        assert_eq!(rd.buf.as_deref(), Some(&b"hello unix"[..]));
        // Echo back, then half-close: the client reads the echo and then EOF.
        rt.write(s, WriteBuf::from_vec(rd.buf.unwrap()), 3).unwrap();
        rt.shutdown(s, 4).unwrap();
        assert_eq!(r.wait(&mut rt, 4).status(), Status::Ok);
        rt.read(c, ReadBuf::with_capacity(64), 5).unwrap();
        assert_eq!(r.wait(&mut rt, 5).buf.as_deref(), Some(&b"hello unix"[..]));
        rt.read(c, ReadBuf::with_capacity(64), 6).unwrap();
        assert_eq!(
            r.wait(&mut rt, 6).result,
            0,
            "EOF after the peer's shutdown"
        );
        assert_eq!(
            rt.try_write(c, &[b"after"]),
            Ok(5),
            "the client can still write"
        );
    }
}

#[test]
fn large_transfer_arrives_intact() {
    for backend in BACKENDS {
        let dir = TempDir::new();
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = unix_pair(&mut rt, &mut r, bytes(&dir.path("big.sock")));
        let data: Vec<u8> = (0..2 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for (i, chunk) in data.chunks(128 << 10).enumerate() {
            rt.write(c, WriteBuf::from_vec(chunk.to_vec()), 100 + i as u64)
                .unwrap();
        }
        rt.shutdown(c, 99).unwrap();
        let mut got = Vec::new();
        loop {
            rt.read(s, ReadBuf::with_capacity(64 << 10), 7).unwrap();
            let rd = r.wait(&mut rt, 7);
            assert!(rd.result >= 0, "read failed: {:?}", rd.status());
            if rd.result == 0 {
                break;
            }
            got.extend_from_slice(rd.buf.as_deref().unwrap());
        }
        assert!(got == data, "corrupted transfer");
    }
}

#[test]
fn multishot_reads_every_chunk_then_end_of_stream() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = unix_pair(&mut rt, &mut r, &abstract_name("multi"));
        rt.read_multishot(s, 4096, 7).unwrap();
        let mut got = Vec::new();
        for i in 0..5u8 {
            rt.write(c, WriteBuf::from_vec(vec![i; 1000]), 10 + u64::from(i))
                .unwrap();
            while got.len() < (usize::from(i) + 1) * 1000 {
                let rd = r.wait(&mut rt, 7);
                assert_ne!(rd.flags & FLAG_MORE, 0);
                got.extend_from_slice(rd.buf.as_deref().unwrap());
            }
        }
        rt.shutdown(c, 20).unwrap();
        let last = r.wait(&mut rt, 7);
        assert_eq!((last.result, last.flags & FLAG_MORE), (0, 0));
        let want: Vec<u8> = (0..5u8).flat_map(|i| vec![i; 1000]).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn cancel_and_close_end_pending_ops_once() {
    for backend in BACKENDS {
        let dir = TempDir::new();
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, l) = unix_pair(&mut rt, &mut r, bytes(&dir.path("cancel.sock")));
        rt.read(s, ReadBuf::with_capacity(16), 1).unwrap();
        rt.cancel(1).unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::Canceled);
        // A cancelled read took no bytes.
        rt.write(c, WriteBuf::from_vec(b"kept".to_vec()), 2)
            .unwrap();
        rt.read(s, ReadBuf::with_capacity(16), 3).unwrap();
        assert_eq!(r.wait(&mut rt, 3).buf.as_deref(), Some(&b"kept"[..]));
        rt.accept(l, 4).unwrap();
        rt.read(c, ReadBuf::with_capacity(16), 5).unwrap();
        rt.close(l).unwrap();
        rt.close(c).unwrap();
        assert_eq!(r.wait(&mut rt, 4).status(), Status::Canceled);
        assert_eq!(r.wait(&mut rt, 5).status(), Status::Canceled);
        rt.read(s, ReadBuf::with_capacity(16), 6).unwrap();
        assert_eq!(r.wait(&mut rt, 6).result, 0, "the peer's close is EOF");
    }
}

#[test]
fn closing_the_listener_removes_its_socket_file() {
    for backend in BACKENDS {
        let dir = TempDir::new();
        let path = dir.path("gone.sock");
        let mut rt = runtime(backend);
        let l = rt
            .unix_listen(bytes(&path), ListenOptions::default())
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
        rt.close(l).unwrap();
        assert!(!path.exists(), "close removes the path");

        // Runtime shutdown and drop remove it too.
        let l = rt
            .unix_listen(bytes(&path), ListenOptions::default())
            .unwrap();
        rt.shutdown_all();
        assert!(!path.exists(), "shutdown removes the path");
        assert_eq!(rt.close(l), Err(Status::BadHandle));
        let mut rt = runtime(backend);
        rt.unix_listen(bytes(&path), ListenOptions::default())
            .unwrap();
        drop(rt);
        assert!(!path.exists(), "drop removes the path");
    }
}

#[test]
fn a_file_that_replaced_the_socket_is_left_alone() {
    let dir = TempDir::new();
    let path = dir.path("replaced.sock");
    let mut rt = runtime(BACKENDS[0]);
    let l = rt
        .unix_listen(bytes(&path), ListenOptions::default())
        .unwrap();
    // Someone removes our socket file and binds another socket there.
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    rt.close(l).unwrap();
    assert!(path.exists(), "another socket's file is not ours to remove");
    drop(other);
    std::fs::remove_file(&path).unwrap();
    // And a plain file put in its place.
    let l = rt
        .unix_listen(bytes(&path), ListenOptions::default())
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not a socket").unwrap();
    rt.close(l).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[test]
fn listening_on_an_existing_path_is_address_in_use() {
    let dir = TempDir::new();
    let path = dir.path("busy.sock");
    let mut rt = runtime(BACKENDS[0]);
    let l = rt
        .unix_listen(bytes(&path), ListenOptions::default())
        .unwrap();
    assert_eq!(
        rt.unix_listen(bytes(&path), ListenOptions::default()),
        Err(Status::AddressInUse)
    );
    // The failed listen did not remove the first listener's file.
    assert!(path.exists());
    rt.close(l).unwrap();
    let name = abstract_name("busy");
    rt.unix_listen(&name, ListenOptions::default()).unwrap();
    assert_eq!(
        rt.unix_listen(&name, ListenOptions::default()),
        Err(Status::AddressInUse)
    );
}

#[test]
fn abstract_names_connect_and_leave_no_file() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let name = abstract_name("abs");
        let (c, s, l) = unix_pair(&mut rt, &mut r, &name);
        assert_eq!(rt.unix_local_path(l).unwrap(), name);
        assert_eq!(rt.unix_peer_path(c).unwrap(), name);
        rt.write(c, WriteBuf::from_vec(b"abstract".to_vec()), 1)
            .unwrap();
        rt.read(s, ReadBuf::with_capacity(16), 2).unwrap();
        assert_eq!(r.wait(&mut rt, 2).buf.as_deref(), Some(&b"abstract"[..]));
        rt.close(l).unwrap();
        rt.unix_connect(&name, 3).unwrap();
        assert_eq!(r.wait(&mut rt, 3).status(), Status::ConnectionRefused);
        // The longest abstract name sun_path holds: 107 bytes after the NUL.
        let mut long = vec![0u8];
        long.extend(std::iter::repeat_n(b'a', UNIX_PATH_MAX - 1));
        let ll = rt.unix_listen(&long, ListenOptions::default()).unwrap();
        assert_eq!(rt.unix_local_path(ll).unwrap(), long);
    }
}

#[test]
fn bad_paths_are_invalid_arguments_without_a_completion() {
    let mut rt = runtime(BACKENDS[0]);
    let too_long = vec![b'a'; UNIX_PATH_MAX];
    let mut abstract_too_long = vec![0u8];
    abstract_too_long.extend(std::iter::repeat_n(b'a', UNIX_PATH_MAX));
    let bad: [&[u8]; 4] = [b"", &too_long, &abstract_too_long, b"/tmp/a\0b"];
    for path in bad {
        assert_eq!(rt.unix_connect(path, 1), Err(Status::InvalidArgument));
        assert_eq!(
            rt.unix_listen(path, ListenOptions::default()).map(|_| ()),
            Err(Status::InvalidArgument)
        );
    }
    let reuse = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    assert_eq!(
        rt.unix_listen(&abstract_name("reuse"), reuse).map(|_| ()),
        Err(Status::InvalidArgument)
    );
    assert_eq!(rt.stats().in_flight, 0);
    let mut out = Vec::new();
    assert_eq!(rt.turn(&mut out, 16), 0);
}

#[test]
fn the_longest_filesystem_path_works() {
    let dir = TempDir::new();
    let base = dir.path("");
    let fill = UNIX_PATH_MAX - 1 - bytes(&base).len();
    let path = base.join("p".repeat(fill));
    assert_eq!(bytes(&path).len(), UNIX_PATH_MAX - 1);
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, _, l) = unix_pair(&mut rt, &mut r, bytes(&path));
    assert_eq!(rt.unix_peer_path(c).unwrap(), bytes(&path));
    rt.close(l).unwrap();
    assert!(!path.exists());
}

#[test]
fn connecting_to_a_missing_or_dead_path_fails_in_its_completion() {
    for backend in BACKENDS {
        let dir = TempDir::new();
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let missing = dir.path("missing.sock");
        rt.unix_connect(bytes(&missing), 1).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!((c.op, c.status()), (OpCode::Connect, Status::NotFound));
        // A socket file nobody listens on any more.
        let dead = dir.path("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        rt.unix_connect(bytes(&dead), 2).unwrap();
        assert_eq!(r.wait(&mut rt, 2).status(), Status::ConnectionRefused);
        // A path that is no socket.
        let file = dir.path("plain");
        std::fs::write(&file, b"x").unwrap();
        rt.unix_connect(bytes(&file), 3).unwrap();
        assert_eq!(r.wait(&mut rt, 3).status(), Status::ConnectionRefused);
        assert_eq!(rt.stats().in_flight, 0);
    }
}

#[test]
fn peer_credentials_are_our_own() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, l) = unix_pair(&mut rt, &mut r, &abstract_name("cred"));
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        for h in [c, s] {
            let cred = rt.unix_peer_cred(h).unwrap();
            assert_eq!(cred.pid, std::process::id() as i32);
            assert_eq!((cred.uid, cred.gid), (uid, gid));
        }
        assert_eq!(rt.unix_peer_cred(l), Err(Status::NotConnected));
    }
}

#[test]
fn paths_and_tcp_only_calls() {
    let dir = TempDir::new();
    let path = dir.path("addr.sock");
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, l) = unix_pair(&mut rt, &mut r, bytes(&path));
    assert_eq!(rt.unix_local_path(l).unwrap(), bytes(&path));
    assert_eq!(rt.unix_local_path(s).unwrap(), bytes(&path));
    assert_eq!(rt.unix_peer_path(c).unwrap(), bytes(&path));
    assert_eq!(rt.unix_local_path(c).unwrap(), b"", "a client is unnamed");
    assert_eq!(rt.unix_peer_path(s).unwrap(), b"");
    assert_eq!(rt.unix_peer_path(l), Err(Status::NotConnected));
    // TCP-only calls on a Unix connection say so.
    assert_eq!(rt.set_nodelay(c, true), Err(Status::InvalidArgument));
    assert_eq!(rt.set_keepalive(c, None), Err(Status::InvalidArgument));
    assert_eq!(rt.local_addr(c), Err(Status::InvalidArgument));
    assert_eq!(rt.peer_addr(c), Err(Status::InvalidArgument));
    assert!(rt.raw_fd(c).unwrap() >= 0);
    // And Unix-only calls on TCP handles.
    let (tc, _, tl) = pair(&mut rt, &mut r);
    assert_eq!(rt.unix_local_path(tc), Err(Status::InvalidArgument));
    assert_eq!(rt.unix_peer_path(tl), Err(Status::InvalidArgument));
    assert_eq!(rt.unix_peer_cred(tc), Err(Status::InvalidArgument));
    rt.close(c).unwrap();
    assert_eq!(rt.unix_peer_cred(c), Err(Status::BadHandle));
}

#[test]
fn a_non_utf8_path_works() {
    let dir = TempDir::new();
    let mut path = bytes(&dir.0).to_vec();
    path.extend_from_slice(b"/\xff\xfe.sock");
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, _, l) = unix_pair(&mut rt, &mut r, &path);
    assert_eq!(rt.unix_peer_path(c).unwrap(), path);
    let on_disk = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
    assert!(on_disk.exists());
    rt.close(l).unwrap();
    assert!(!on_disk.exists());
}

#[test]
fn a_kept_path_stays_after_close() {
    let dir = TempDir::new();
    let path = dir.path("kept.sock");
    let mut rt = runtime(BACKENDS[0]);
    let l = rt
        .unix_listen(bytes(&path), ListenOptions::default())
        .unwrap();
    rt.unix_keep_path(l).unwrap();
    rt.close(l).unwrap();
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    assert_eq!(rt.unix_keep_path(l), Err(Status::BadHandle));
    let (tl, _) = common::listen(&mut rt);
    assert_eq!(rt.unix_keep_path(tl), Err(Status::InvalidArgument));
}

#[test]
fn a_full_backlog_fails_the_connect_at_once() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let name = abstract_name("backlog");
    let opts = ListenOptions {
        backlog: 1,
        ..ListenOptions::default()
    };
    rt.unix_listen(&name, opts).unwrap();
    // Nobody accepts: once the kernel's queue is full, a connect fails (EAGAIN) instead of
    // waiting, as libuv's does.
    let mut statuses = Vec::new();
    for i in 0..8 {
        rt.unix_connect(&name, 100 + i).unwrap();
        statuses.push(r.wait(&mut rt, 100 + i).status());
    }
    assert_eq!(statuses[0], Status::Ok);
    assert_eq!(statuses.last(), Some(&Status::TryAgain), "{statuses:?}");
    assert_eq!(rt.stats().in_flight, 0);
}
