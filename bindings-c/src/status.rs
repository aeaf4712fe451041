//! Result codes in C: the `polyio_status` enum and its names and messages. The enum is
//! written out (cbindgen cannot expand macros); everything else comes from core's
//! `status_table!`, and a test keeps the enum's codes equal to core's.

use std::ffi::{CStr, c_char};

use polyio_core::Status;

/// Result codes. `POLYIO_STATUS_OK` is 0; errors are negative. Where an OS errno exists the
/// code is `-errno` (as in libuv); codes from -4000 down are polyio's own.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_status {
    Ok = 0,
    OperationNotPermitted = -1,
    NotFound = -2,
    IoError = -5,
    NoSuchDevice = -6,
    BadHandle = -9,
    TryAgain = -11,
    NoMemory = -12,
    PermissionDenied = -13,
    Busy = -16,
    AlreadyExists = -17,
    NotADirectory = -20,
    IsADirectory = -21,
    InvalidArgument = -22,
    TooManyOpenFiles = -24,
    FileTooLarge = -27,
    NoSpace = -28,
    IllegalSeek = -29,
    ReadOnlyFileSystem = -30,
    BrokenPipe = -32,
    MessageTooLong = -90,
    NameTooLong = -36,
    DirectoryNotEmpty = -39,
    SymlinkLoop = -40,
    AddressInUse = -98,
    AddressNotAvailable = -99,
    NetworkUnreachable = -101,
    ConnectionAborted = -103,
    ConnectionReset = -104,
    /// No buffer space: the kernel could not queue a send (a full device queue or no
    /// memory for it). The bytes were not sent; the socket stays usable.
    NoBufferSpace = -105,
    NotConnected = -107,
    TimedOut = -110,
    ConnectionRefused = -111,
    HostUnreachable = -113,
    Canceled = -125,
    /// The runtime is shut down (`polyio_runtime_shutdown`): no new operations.
    Shutdown = -4001,
    /// Too many operations in flight plus completions not reaped (`polyio_options.max_ops`).
    QueueFull = -4002,
    /// polyio caught an internal panic: a bug; please report it.
    Panic = -4003,
    /// The host name could not be resolved (no such name, or no address of the family asked
    /// for): Node's `ENOTFOUND`, getaddrinfo's `EAI_NONAME`.
    NameNotResolved = -4004,
    /// A temporary failure in name resolution (no DNS server answered): getaddrinfo's
    /// `EAI_AGAIN`; trying again later may succeed.
    NameTryAgain = -4005,
}

/// A `&'static CStr` from a string literal that `concat!` ended with a NUL.
const fn cstr(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(s) => s,
        Err(_) => c"?",
    }
}

// The conversions, names and messages, from the one table. A row without its line in the
// enum above (or a line without its row) fails to compile here.
macro_rules! c_status_conversions {
    ($(($variant:ident, $code:literal, $name:literal, $msg:literal),)*) => {
        impl From<Status> for polyio_status {
            fn from(s: Status) -> polyio_status {
                match s {
                    $(Status::$variant => polyio_status::$variant,)*
                }
            }
        }

        impl From<polyio_status> for Status {
            fn from(s: polyio_status) -> Status {
                match s {
                    $(polyio_status::$variant => Status::$variant,)*
                }
            }
        }

        /// `s.name()` as a static C string.
        fn name_cstr(s: Status) -> &'static CStr {
            match s {
                $(Status::$variant => const { cstr(concat!($name, "\0")) },)*
            }
        }

        /// `s.message()` as a static C string.
        fn message_cstr(s: Status) -> &'static CStr {
            match s {
                $(Status::$variant => const { cstr(concat!($msg, "\0")) },)*
            }
        }
    };
}

polyio_core::status_table!(c_status_conversions);

/// OK for `Ok(())`, else the error's code.
pub(crate) fn status_of(r: Result<(), Status>) -> polyio_status {
    match r {
        Ok(()) => polyio_status::Ok,
        Err(s) => s.into(),
    }
}

/// A static, NUL-terminated English description of `status` ("connection refused").
/// Unknown values give "unknown status". Never NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_strerror(status: i32) -> *const c_char {
    ffi_boundary!(c"internal panic".as_ptr(), {
        match Status::from_code(i64::from(status)) {
            Some(s) => message_cstr(s).as_ptr(),
            None => c"unknown status".as_ptr(),
        }
    })
}

/// A static, NUL-terminated symbolic name of `status` as Node spells it ("ECONNREFUSED";
/// polyio's own codes read "POLYIO_SHUTDOWN" etc.). Unknown values give "UNKNOWN". Never
/// NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_status_name(status: i32) -> *const c_char {
    ffi_boundary!(c"UNKNOWN".as_ptr(), {
        match Status::from_code(i64::from(status)) {
            Some(s) => name_cstr(s).as_ptr(),
            None => c"UNKNOWN".as_ptr(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_status_has_the_same_code_in_c() {
        // Same members: `From` both ways is an exhaustive match generated from the table.
        for s in polyio_core::ALL_STATUSES {
            let c = polyio_status::from(*s);
            assert_eq!(c as i32, s.code(), "{s:?}");
            assert_eq!(Status::from(c), *s);
        }
    }

    #[test]
    fn the_header_spells_every_code_as_core_does() {
        let header = include_str!("../../include/polyio.h");
        for s in polyio_core::ALL_STATUSES {
            let variant = format!("{:?}", polyio_status::from(*s));
            let mut screaming = String::new();
            for (i, ch) in variant.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    screaming.push('_');
                }
                screaming.push(ch.to_ascii_uppercase());
            }
            let line = format!("POLYIO_STATUS_{screaming} = {},", s.code());
            assert!(header.contains(&line), "include/polyio.h lacks `{line}`");
        }
    }

    #[test]
    fn names_and_messages_are_core_s() {
        for s in polyio_core::ALL_STATUSES {
            // SAFETY: static NUL-terminated strings.
            let (name, msg) = unsafe {
                (
                    CStr::from_ptr(polyio_status_name(s.code())),
                    CStr::from_ptr(polyio_strerror(s.code())),
                )
            };
            assert_eq!(name.to_str().unwrap(), s.name());
            assert_eq!(msg.to_str().unwrap(), s.message());
        }
        // SAFETY: static NUL-terminated strings.
        let unknown = unsafe { CStr::from_ptr(polyio_status_name(-4999)) };
        assert_eq!(unknown.to_str().unwrap(), "UNKNOWN");
    }
}
