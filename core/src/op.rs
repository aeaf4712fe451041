//! The operation table's record and its wake keys: what one submitted operation holds while
//! it is in flight (`Op`, `OpState`), what it ends in (`Completion`), and how a tokio waker
//! names the thing to progress (`Key`). Every kind of I/O keeps its op states here.

use std::net::SocketAddr;

use crate::buf::{ReadBuf, WriteBuf};
use crate::fs::types::FileStat;
use crate::handle::Handle;
use crate::resolve::AddrInfo;
use crate::status::Status;
use crate::task::Task;

/// The completion was posted during the submit call itself (the inline fast path).
pub const FLAG_INLINE: u32 = 1;
/// More completions follow for the same operation (a multi-shot read); its last completion
/// comes without this flag.
pub const FLAG_MORE: u32 = 2;
/// The operation moved some bytes before it ended with an error, a cancel or a deadline:
/// [`Completion::partial`] says how many. Set on a write that sent part of its buffer; the
/// stream's framing is then broken, and the consumer should close the connection.
pub const FLAG_PARTIAL: u32 = 4;
/// A received datagram was longer than the buffer: the completion holds its first
/// `result` bytes and the rest is lost (`MSG_TRUNC`).
pub const FLAG_TRUNC: u32 = 8;

/// What kind of operation a completion ends.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Connect = 1,
    Accept = 2,
    Read = 3,
    Write = 4,
    Shutdown = 5,
    Timer = 6,
    /// A name lookup (`Runtime::getaddrinfo`): `result` is the number of addresses, in
    /// [`Completion::addrs`].
    Lookup = 7,
    /// A datagram sent (`Runtime::udp_send`): `result` is its length.
    Send = 8,
    /// A datagram received (`Runtime::udp_recv`, `Runtime::udp_recv_multishot`): `result`
    /// is its length (up to the buffer's), [`Completion::addr`] where it came from.
    Recv = 9,
    /// Files (`fs/`): their own range, so other kinds can number theirs from 7.
    FsOpen = 20,
    FsRead = 21,
    FsWrite = 22,
    FsFsync = 23,
    FsStat = 24,
    FsClose = 25,
    FsReadFile = 26,
    FsWriteFile = 27,
    FsTruncate = 28,
}

/// One finished operation.
#[derive(Debug)]
pub struct Completion {
    /// The value given at submission.
    pub user_data: u64,
    pub op: OpCode,
    /// `>= 0`: success (bytes read or written, 0 at EOF); `< 0`: a [`Status`] code.
    pub result: i64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The connection the op used, or for connect and accept the new connection.
    pub handle: Handle,
    /// An owned buffer given to a read (holding the bytes read) or a write, handed back.
    pub buf: Option<Vec<u8>>,
    /// With [`FLAG_PARTIAL`]: the bytes the op moved before it failed (a write's bytes
    /// already with the kernel). 0 otherwise.
    pub partial: u64,
    /// A lookup's addresses, in the resolver's order (`None` for every other op and for a
    /// failed lookup).
    pub addrs: Option<Box<[AddrInfo]>>,
    /// A received datagram's source address (`None` for every other op, and for a failed
    /// receive).
    pub addr: Option<SocketAddr>,
    /// A stat op's result (`fs_stat`, `fs_fstat`); `None` for every other op.
    pub stat: Option<Box<FileStat>>,
}

impl Completion {
    /// `Status::Ok` for a success, else the error.
    pub fn status(&self) -> Status {
        if self.result >= 0 {
            Status::Ok
        } else {
            Status::from_code(self.result).unwrap_or(Status::IoError)
        }
    }
}

pub(crate) use crate::clock::TimerKey;

/// What an operation is waiting for, by kind.
pub(crate) enum OpState {
    /// A stream read into the submitter's buffer.
    Read(ReadBuf),
    /// A stream read into a buffer of `cap` bytes taken from the runtime's recycled ones
    /// when bytes arrive: multi-shot (each chunk completes with FLAG_MORE) or, with `once`,
    /// a single read that completes with its one chunk.
    ReadMulti { cap: usize, once: bool },
    /// A stream write; `done` bytes are with the kernel.
    Write { buf: WriteBuf, done: usize },
    /// A stream's write-side shutdown, queued behind its writes.
    Shutdown,
    /// A listener's accept.
    Accept,
    /// Work that is a future rather than readiness (connect, name lookup). Boxed, as the
    /// send's address is, so that every op's slot is as small as a stream op needs (an idle
    /// connection's armed read holds one).
    Task(Box<Task>),
    /// A timer op.
    Timer(TimerKey),
    /// A datagram receive into the submitter's buffer.
    Recv(ReadBuf),
    /// A multi-shot datagram receive: each datagram (its first `cap` bytes) completes with
    /// FLAG_MORE.
    RecvMulti { cap: usize },
    /// A datagram send, to `to` or (`None`) to the connected peer (queued only when the
    /// socket could not take it at once: the bindings try first).
    Send {
        buf: WriteBuf,
        to: Option<Box<SocketAddr>>,
    },
    /// A file op in the io_uring ring: `tag` names its submission there (the memory the
    /// kernel uses is held by the ring, not here).
    Ring { tag: u64 },
    /// A finished stat op's result, on its way into the completion.
    Stat(Box<FileStat>),
}

/// One operation in flight.
pub(crate) struct Op {
    pub(crate) user_data: u64,
    pub(crate) code: OpCode,
    /// The resource whose queue holds this op (`NONE` for tasks and timers).
    pub(crate) target: Handle,
    pub(crate) state: OpState,
    /// The timer of a `deadline` on it; boxed, as deadlines are rare, to keep every op small.
    pub(crate) deadline: Option<Box<TimerKey>>,
    /// The previous and next op submitted with the same `user_data` (an intrusive list, so
    /// that cancel and deadline find them in O(1)); `NONE` at the ends.
    pub(crate) prev_same: Handle,
    pub(crate) next_same: Handle,
}

impl Op {
    pub(crate) fn new(user_data: u64, code: OpCode, target: Handle, state: OpState) -> Op {
        Op {
            user_data,
            code,
            target,
            state,
            deadline: None,
            prev_same: Handle::NONE,
            next_same: Handle::NONE,
        }
    }
}

/// What a waker asks the next turn to progress: a resource's read, write or accept queue,
/// or a task op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Read(Handle),
    Write(Handle),
    Accept(Handle),
    Task(Handle),
    /// A UDP socket's receive queue.
    Recv(Handle),
    /// A UDP socket's send queue.
    Send(Handle),
    /// The runtime's io_uring ring (its handle is `NONE`).
    Ring,
}

// A key packs into a u64 for the ready queue: the low three bits say what to progress, the
// rest is the handle's slot and generation (48 bits; the runtime id is implied).
const KIND_BITS: u32 = 3;
const KIND_MASK: u64 = (1 << KIND_BITS) - 1;
const HANDLE_BITS: u32 = 48;
const HANDLE_MASK: u64 = (1 << HANDLE_BITS) - 1;
const KIND_READ: u64 = 0;
const KIND_WRITE: u64 = 1;
const KIND_ACCEPT: u64 = 2;
const KIND_TASK: u64 = 3;
const KIND_RECV: u64 = 4;
const KIND_SEND: u64 = 5;
const KIND_RING: u64 = 6;

impl Key {
    pub(crate) fn encode(self) -> u64 {
        let (kind, h) = match self {
            Key::Read(h) => (KIND_READ, h),
            Key::Write(h) => (KIND_WRITE, h),
            Key::Accept(h) => (KIND_ACCEPT, h),
            Key::Task(h) => (KIND_TASK, h),
            Key::Recv(h) => (KIND_RECV, h),
            Key::Send(h) => (KIND_SEND, h),
            Key::Ring => (KIND_RING, Handle::NONE),
        };
        ((h.into_raw() & HANDLE_MASK) << KIND_BITS) | kind
    }

    /// The key `raw` encodes, for runtime `rt`; `None` for bits no key encodes.
    pub(crate) fn decode(raw: u64, rt: u16) -> Option<Key> {
        let h =
            Handle::from_raw(((raw >> KIND_BITS) & HANDLE_MASK) | (u64::from(rt) << HANDLE_BITS));
        match raw & KIND_MASK {
            KIND_READ => Some(Key::Read(h)),
            KIND_WRITE => Some(Key::Write(h)),
            KIND_ACCEPT => Some(Key::Accept(h)),
            KIND_TASK => Some(Key::Task(h)),
            KIND_RECV => Some(Key::Recv(h)),
            KIND_SEND => Some(Key::Send(h)),
            KIND_RING => Some(Key::Ring),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let h = Handle::from_raw((7u64 << 48) | (0xABCDEF << 24) | 0x123456);
        for k in [
            Key::Read(h),
            Key::Write(h),
            Key::Accept(h),
            Key::Task(h),
            Key::Recv(h),
            Key::Send(h),
            Key::Ring,
        ] {
            assert_eq!(Key::decode(k.encode(), 7), Some(k));
        }
        assert_eq!(Key::decode(7, 7), None);
    }

    #[test]
    fn an_op_slot_stays_small() {
        // Every op in flight holds one (an idle connection's armed read, too).
        assert!(size_of::<Op>() <= 88, "{}", size_of::<Op>());
    }
}
