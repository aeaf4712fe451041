//! The one status enum shared by every binding: `Ok = 0`, negative codes for errors.
//! Where an OS errno exists the code is `-errno` (as libuv does on Unix); codes from
//! -4000 down are polyio's own.

use std::fmt;
use std::io;

/// A result code. `Ok` is zero; every error is negative.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok = 0,
    NotFound = -2,
    IoError = -5,
    BadHandle = -9,
    NoMemory = -12,
    PermissionDenied = -13,
    Busy = -16,
    InvalidArgument = -22,
    TooManyOpenFiles = -24,
    BrokenPipe = -32,
    AddressInUse = -98,
    AddressNotAvailable = -99,
    NetworkUnreachable = -101,
    ConnectionAborted = -103,
    ConnectionReset = -104,
    NotConnected = -107,
    TimedOut = -110,
    ConnectionRefused = -111,
    HostUnreachable = -113,
    Canceled = -125,
    Shutdown = -4001,
    QueueFull = -4002,
    Panic = -4003,
    NameNotResolved = -4004,
}

/// Every status, for tables and tests.
pub const ALL_STATUSES: &[Status] = &[
    Status::Ok,
    Status::NotFound,
    Status::IoError,
    Status::BadHandle,
    Status::NoMemory,
    Status::PermissionDenied,
    Status::Busy,
    Status::InvalidArgument,
    Status::TooManyOpenFiles,
    Status::BrokenPipe,
    Status::AddressInUse,
    Status::AddressNotAvailable,
    Status::NetworkUnreachable,
    Status::ConnectionAborted,
    Status::ConnectionReset,
    Status::NotConnected,
    Status::TimedOut,
    Status::ConnectionRefused,
    Status::HostUnreachable,
    Status::Canceled,
    Status::Shutdown,
    Status::QueueFull,
    Status::Panic,
    Status::NameNotResolved,
];

impl Status {
    /// The numeric code (0 or negative).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status with this code, if the code is one of ours.
    pub fn from_code(code: i64) -> Option<Status> {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|s| i64::from(s.code()) == code)
    }

    /// Maps an OS errno (positive) to a status; unknown errnos become `IoError`.
    pub fn from_errno(errno: i32) -> Status {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|s| s.code() < 0 && s.code() > -4000 && -s.code() == errno)
            .unwrap_or(Status::IoError)
    }

    /// The symbolic name, as Node spells error codes (`ECONNREFUSED`); polyio's own codes
    /// carry a `POLYIO_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotFound => "ENOENT",
            Status::IoError => "EIO",
            Status::BadHandle => "EBADF",
            Status::NoMemory => "ENOMEM",
            Status::PermissionDenied => "EACCES",
            Status::Busy => "EBUSY",
            Status::InvalidArgument => "EINVAL",
            Status::TooManyOpenFiles => "EMFILE",
            Status::BrokenPipe => "EPIPE",
            Status::AddressInUse => "EADDRINUSE",
            Status::AddressNotAvailable => "EADDRNOTAVAIL",
            Status::NetworkUnreachable => "ENETUNREACH",
            Status::ConnectionAborted => "ECONNABORTED",
            Status::ConnectionReset => "ECONNRESET",
            Status::NotConnected => "ENOTCONN",
            Status::TimedOut => "ETIMEDOUT",
            Status::ConnectionRefused => "ECONNREFUSED",
            Status::HostUnreachable => "EHOSTUNREACH",
            Status::Canceled => "ECANCELED",
            Status::Shutdown => "POLYIO_SHUTDOWN",
            Status::QueueFull => "POLYIO_QUEUE_FULL",
            Status::Panic => "POLYIO_PANIC",
            Status::NameNotResolved => "ENOTFOUND",
        }
    }

    /// A one-line English description.
    pub fn message(self) -> &'static str {
        match self {
            Status::Ok => "success",
            Status::NotFound => "not found (no operation or entry matches)",
            Status::IoError => "input/output error",
            Status::BadHandle => "bad handle (stale, closed, foreign or never issued)",
            Status::NoMemory => "out of memory",
            Status::PermissionDenied => "permission denied",
            Status::Busy => "resource busy",
            Status::InvalidArgument => "invalid argument",
            Status::TooManyOpenFiles => "too many open files",
            Status::BrokenPipe => "broken pipe",
            Status::AddressInUse => "address already in use",
            Status::AddressNotAvailable => "address not available",
            Status::NetworkUnreachable => "network is unreachable",
            Status::ConnectionAborted => "connection aborted",
            Status::ConnectionReset => "connection reset by peer",
            Status::NotConnected => "socket is not connected",
            Status::TimedOut => "operation timed out",
            Status::ConnectionRefused => "connection refused",
            Status::HostUnreachable => "host is unreachable",
            Status::Canceled => "operation canceled",
            Status::Shutdown => "runtime is shut down",
            Status::QueueFull => "too many operations in flight (queue full)",
            Status::Panic => "internal panic (a bug in polyio; please report it)",
            Status::NameNotResolved => "host name could not be resolved",
        }
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
}
