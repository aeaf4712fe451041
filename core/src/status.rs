//! The one status table shared by every binding: `Ok = 0`, negative codes for errors.
//! Where an OS errno exists the code is `-errno` (as libuv does on Unix); codes from
//! -4000 down are polyio's own. Every list of statuses is generated from [`status_table!`].

use std::fmt;
use std::io;

/// The status table, as libuv's `UV_ERRNO_MAP`: one row per status — variant, code, name as
/// Node spells it (`ECONNREFUSED`; polyio's own codes read `POLYIO_*`), one-line message.
/// `status_table!(m)` invokes `m!` with every row as `(Variant, code, "NAME", "message"),`;
/// core's [`Status`], [`ALL_STATUSES`], [`Status::name`], [`Status::message`] and
/// [`Status::from_code`] come from it, and the bindings derive their conversions from it.
///
/// Adding a status is one row here plus one literal line in the C enum `polyio_status`
/// (`bindings-c/src/status.rs`; cbindgen cannot expand macros), whose codes a test keeps
/// equal to these.
#[macro_export]
macro_rules! status_table {
    ($m:ident) => {
        $m! {
            (Ok, 0, "OK", "success"),
            (OperationNotPermitted, -1, "EPERM", "operation not permitted"),
            (NotFound, -2, "ENOENT", "not found (no operation or entry matches)"),
            (IoError, -5, "EIO", "input/output error"),
            (NoSuchDevice, -6, "ENXIO", "no such device or address (a socket or device file with no one behind it)"),
            (BadHandle, -9, "EBADF", "bad handle (stale, closed, foreign or never issued)"),
            (TryAgain, -11, "EAGAIN", "resource temporarily unavailable (try again)"),
            (NoMemory, -12, "ENOMEM", "out of memory"),
            (PermissionDenied, -13, "EACCES", "permission denied"),
            (Busy, -16, "EBUSY", "resource busy"),
            (AlreadyExists, -17, "EEXIST", "file already exists"),
            (NotADirectory, -20, "ENOTDIR", "not a directory"),
            (IsADirectory, -21, "EISDIR", "is a directory"),
            (InvalidArgument, -22, "EINVAL", "invalid argument"),
            (TooManyOpenFiles, -24, "EMFILE", "too many open files"),
            (FileTooLarge, -27, "EFBIG", "file too large"),
            (NoSpace, -28, "ENOSPC", "no space left on device"),
            (IllegalSeek, -29, "ESPIPE", "illegal seek"),
            (ReadOnlyFileSystem, -30, "EROFS", "read-only file system"),
            (BrokenPipe, -32, "EPIPE", "broken pipe"),
            (MessageTooLong, -90, "EMSGSIZE", "message too long (a datagram past the limit)"),
            (NameTooLong, -36, "ENAMETOOLONG", "file name too long"),
            (DirectoryNotEmpty, -39, "ENOTEMPTY", "directory not empty"),
            (SymlinkLoop, -40, "ELOOP", "too many levels of symbolic links"),
            (AddressInUse, -98, "EADDRINUSE", "address already in use"),
            (AddressNotAvailable, -99, "EADDRNOTAVAIL", "address not available"),
            (NetworkUnreachable, -101, "ENETUNREACH", "network is unreachable"),
            (ConnectionAborted, -103, "ECONNABORTED", "connection aborted"),
            (ConnectionReset, -104, "ECONNRESET", "connection reset by peer"),
            (NoBufferSpace, -105, "ENOBUFS", "no buffer space available"),
            (NotConnected, -107, "ENOTCONN", "socket is not connected"),
            (TimedOut, -110, "ETIMEDOUT", "operation timed out"),
            (ConnectionRefused, -111, "ECONNREFUSED", "connection refused"),
            (HostUnreachable, -113, "EHOSTUNREACH", "host is unreachable"),
            (Canceled, -125, "ECANCELED", "operation canceled"),
            (Shutdown, -4001, "POLYIO_SHUTDOWN", "runtime is shut down"),
            (QueueFull, -4002, "POLYIO_QUEUE_FULL", "too many operations in flight (queue full)"),
            (Panic, -4003, "POLYIO_PANIC", "internal panic (a bug in polyio; please report it)"),
            (NameNotResolved, -4004, "ENOTFOUND", "host name could not be resolved"),
            (NameTryAgain, -4005, "EAI_AGAIN", "temporary failure in name resolution (try again)"),
        }
    };
}

/// Codes at or below this are polyio's own; above it (and below 0) they are `-errno`.
const OWN_CODES_START: i32 = -4000;

macro_rules! define_status {
    ($(($variant:ident, $code:literal, $name:literal, $msg:literal),)*) => {
        /// A result code. `Ok` is zero; every error is negative.
        #[repr(i32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Status {
            $(
                #[doc = $msg]
                $variant = $code,
            )*
        }

        /// Every status, in the table's order, for tables and tests.
        pub const ALL_STATUSES: &[Status] = &[$(Status::$variant,)*];

        impl Status {
            /// The status with this code, if the code is one of ours.
            pub fn from_code(code: i64) -> Option<Status> {
                match code {
                    $($code => Some(Status::$variant),)*
                    _ => None,
                }
            }

            /// The symbolic name, as Node spells error codes (`ECONNREFUSED`); polyio's own
            /// codes carry a `POLYIO_` prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Status::$variant => $name,)*
                }
            }

            /// A one-line English description.
            pub fn message(self) -> &'static str {
                match self {
                    $(Status::$variant => $msg,)*
                }
            }
        }
    };
}

status_table!(define_status);

impl Status {
    /// The numeric code (0 or negative).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The OS errno this status stands for (its code is `-errno`); `None` for `Ok` and for
    /// polyio's own codes.
    pub fn errno(self) -> Option<i32> {
        (self.code() < 0 && self.code() > OWN_CODES_START).then(|| -self.code())
    }

    /// Maps an OS errno (positive) to a status; unknown errnos become `IoError`.
    pub fn from_errno(errno: i32) -> Status {
        Status::from_code(-i64::from(errno))
            .filter(|s| s.errno().is_some())
            .unwrap_or(Status::IoError)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.name())
    }
}

impl std::error::Error for Status {}

impl From<io::Error> for Status {
    fn from(e: io::Error) -> Status {
        Status::from(&e)
    }
}

impl From<&io::Error> for Status {
    fn from(e: &io::Error) -> Status {
        if let Some(errno) = e.raw_os_error() {
            return Status::from_errno(errno);
        }
        match e.kind() {
            io::ErrorKind::NotFound => Status::NotFound,
            io::ErrorKind::PermissionDenied => Status::PermissionDenied,
            io::ErrorKind::ConnectionRefused => Status::ConnectionRefused,
            io::ErrorKind::ConnectionReset => Status::ConnectionReset,
            io::ErrorKind::ConnectionAborted => Status::ConnectionAborted,
            io::ErrorKind::NotConnected => Status::NotConnected,
            io::ErrorKind::AddrInUse => Status::AddressInUse,
            io::ErrorKind::AddrNotAvailable => Status::AddressNotAvailable,
            io::ErrorKind::BrokenPipe => Status::BrokenPipe,
            io::ErrorKind::InvalidInput => Status::InvalidArgument,
            io::ErrorKind::TimedOut => Status::TimedOut,
            io::ErrorKind::OutOfMemory => Status::NoMemory,
            _ => Status::IoError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_errnos_map() {
        for s in ALL_STATUSES {
            assert_eq!(Status::from_code(i64::from(s.code())), Some(*s));
        }
        assert_eq!(
            Status::from_errno(libc::ECONNREFUSED),
            Status::ConnectionRefused
        );
        assert_eq!(Status::from_errno(libc::EPIPE), Status::BrokenPipe);
        assert_eq!(Status::from_errno(9999), Status::IoError);
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Status::from(e), Status::ConnectionReset);
    }

    #[test]
    fn the_table_is_consistent() {
        let mut codes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for s in ALL_STATUSES {
            assert!(codes.insert(s.code()), "{s:?}: duplicate code");
            assert!(names.insert(s.name()), "{s:?}: duplicate name");
            assert!(!s.message().is_empty());
            if let Some(errno) = s.errno() {
                assert_eq!(-errno, s.code());
                assert_eq!(Status::from_errno(errno), *s, "an errno status maps back");
            } else {
                assert_eq!(Status::from_errno(-s.code()), Status::IoError, "{s:?}");
            }
        }
        assert_eq!(ALL_STATUSES[0], Status::Ok);
        assert_eq!(Status::from_code(-4099), None);
        assert_eq!(Status::from_errno(0), Status::IoError);
        assert_eq!(Status::ConnectionRefused.name(), "ECONNREFUSED");
        assert_eq!(Status::Canceled.code(), -libc::ECANCELED);
        assert_eq!(Status::Canceled.errno(), Some(libc::ECANCELED));
        assert_eq!(Status::NameNotResolved.errno(), None);
        assert_eq!(Status::Ok.errno(), None);
    }
}
