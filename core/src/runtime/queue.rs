//! The op table and the completion queue: operations in flight (indexed by handle and by
//! `user_data`), the timer map that times timers and deadlines, and the completions posted
//! and not yet handed to the consumer. Finishing an op removes it and posts its one
//! completion, so every path to a completion goes through `finish` or `post_more`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::buf::{ReadBuf, ReadInner, WriteBuf, WriteInner};
use crate::fs::types::FsBackend;
use crate::handle::{Handle, Table};
use crate::idmap::IdMap;
use crate::op::{Completion, FLAG_INLINE, FLAG_MORE, FLAG_PARTIAL, Op, OpCode, OpState, TimerKey};
use crate::opqueue::OpQueue;
use crate::resolve::AddrInfo;
use crate::status::Status;

/// Read buffers kept for multi-shot reads (see `Runtime::recycle`).
const MAX_SPARE_BUFS: usize = 64;
/// A read of at most this many bytes into a buffer of at least `4 * SMALL_READ` hands over
/// a copy of its bytes in a small buffer and keeps the large one (see `Queue::fit`).
const SMALL_READ: usize = 8 * 1024;

/// Counters, for tests and tuning.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Completions posted during the submit call (the inline fast path).
    pub inline_completions: u64,
    /// Completions posted in all.
    pub completions: u64,
    /// Turns run.
    pub turns: u64,
    /// Operations submitted and not yet completed.
    pub in_flight: usize,
    /// The file backend in use: `Auto` until the first file op chooses one.
    pub fs_backend: FsBackend,
}

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimerTarget {
    /// A timer op: completes with 0.
    Fire(Handle),
    /// A deadline on another op: completes it with `TimedOut`.
    Deadline(Handle),
    /// A task asked to be polled again now (see `task::wake_at`).
    WakeTask(Handle),
}

/// The first and last op in flight with one `user_data`.
#[derive(Clone, Copy)]
struct Chain {
    head: Handle,
    tail: Handle,
}

/// Operations, timers and completions: everything a progress step may touch besides the
/// resource it is progressing.
pub(crate) struct Queue {
    ops: Table<Op>,
    by_user: IdMap<Chain>,
    pub(crate) timers: BTreeMap<TimerKey, TimerTarget>,
    timer_seq: u64,
    pub(crate) completions: VecDeque<Completion>,
    pub(crate) in_submit: bool,
    pub(crate) stats: Stats,
    /// Buffers for reads, handed back by the consumer: large ones, and small ones (at
    /// most `SMALL_READ` bytes) for the copies `fit` makes.
    spare_bufs: Vec<Vec<u8>>,
    small_bufs: Vec<Vec<u8>>,
}

impl Queue {
    pub(crate) fn new(rt: u16) -> Queue {
        Queue {
            ops: Table::new(rt),
            by_user: IdMap::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            completions: VecDeque::new(),
            in_submit: false,
            stats: Stats::default(),
            spare_bufs: Vec::new(),
            small_bufs: Vec::new(),
        }
    }

    /// Operations in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn op(&self, id: Handle) -> Option<&Op> {
        self.ops.get(id)
    }

    pub(crate) fn op_mut(&mut self, id: Handle) -> Option<&mut Op> {
        self.ops.get_mut(id)
    }

    /// How many of the op ids in `ids` (a resource's queue, which may still hold ids of
    /// cancelled ops) are in flight.
    pub(crate) fn live_count(&self, ids: &OpQueue) -> usize {
        ids.iter().filter(|id| self.ops.get(*id).is_some()).count()
    }

    /// Every op in flight.
    pub(crate) fn op_ids(&self) -> Vec<Handle> {
        self.ops.handles()
    }

    /// Adds an op to the table; `QueueFull` when the table is full.
    pub(crate) fn insert(&mut self, mut op: Op) -> Result<Handle, Status> {
        let user_data = op.user_data;
        let tail = self.by_user.get(&user_data).map(|c| c.tail);
        op.prev_same = tail.unwrap_or(Handle::NONE);
        let id = self.ops.insert(op).ok_or(Status::QueueFull)?;
        match tail {
            Some(t) => {
                if let Some(prev) = self.ops.get_mut(t) {
                    prev.next_same = id;
                }
                if let Some(c) = self.by_user.get_mut(&user_data) {
                    c.tail = id;
                }
            }
            None => {
                self.by_user.insert(user_data, Chain { head: id, tail: id });
            }
        }
        Ok(id)
    }

    /// Removes an op from the table (and from its `user_data` list).
    fn remove(&mut self, id: Handle) -> Option<Op> {
        let op = self.ops.remove(id)?;
        if let Some(p) = self.ops.get_mut(op.prev_same) {
            p.next_same = op.next_same;
        }
        if let Some(n) = self.ops.get_mut(op.next_same) {
            n.prev_same = op.prev_same;
        }
        let (prev, next) = (op.prev_same, op.next_same);
        if prev == Handle::NONE && next == Handle::NONE {
            self.by_user.remove(&op.user_data);
        } else if let Some(c) = self.by_user.get_mut(&op.user_data) {
            if c.head == id {
                c.head = next;
            }
            if c.tail == id {
                c.tail = prev;
            }
        }
        Some(op)
    }

    /// Takes back an op whose submission failed after it was added: no completion.
    pub(crate) fn remove_silently(&mut self, id: Handle) {
        self.remove(id);
    }

    /// The ops in flight submitted with `user_data`, oldest first.
    pub(crate) fn with_user_data(&self, user_data: u64) -> Vec<Handle> {
        let mut ids = Vec::new();
        let mut at = self
            .by_user
            .get(&user_data)
            .map_or(Handle::NONE, |c| c.head);
        while let Some(op) = self.ops.get(at) {
            ids.push(at);
            at = op.next_same;
        }
        ids
    }

    pub(crate) fn add_timer(&mut self, at: Instant, target: TimerTarget) -> TimerKey {
        self.timer_seq += 1;
        let k = (at, self.timer_seq);
        self.timers.insert(k, target);
        k
    }

    /// Queues a completion, flagged inline when posted during a submit call.
    fn post(&mut self, mut c: Completion) {
        if self.in_submit {
            c.flags |= FLAG_INLINE;
            self.stats.inline_completions += 1;
        }
        self.stats.completions += 1;
        self.completions.push_back(c);
    }

    /// Posts the one completion of an op that ended within its submit call, before it ever
    /// entered the table (a write whose first send took every byte).
    pub(crate) fn post_done(
        &mut self,
        user_data: u64,
        op: OpCode,
        result: Result<usize, Status>,
        handle: Handle,
        buf: Option<Vec<u8>>,
    ) {
        let result = match result {
            Ok(n) => n as i64,
            Err(s) => i64::from(s.code()),
        };
        self.stats.inline_completions += 1;
        self.stats.completions += 1;
        self.completions.push_back(Completion {
            user_data,
            op,
            result,
            flags: FLAG_INLINE,
            handle,
            buf,
            partial: 0,
            addrs: None,
            addr: None,
            stat: None,
        });
    }

    /// Posts a completion flagged MORE for op `id`, which stays in flight.
    pub(crate) fn post_more(&mut self, id: Handle, n: usize, handle: Handle, buf: Vec<u8>) {
        let Some(op) = self.ops.get(id) else { return };
        let c = Completion {
            user_data: op.user_data,
            op: op.code,
            result: n as i64,
            flags: FLAG_MORE,
            handle,
            buf: Some(buf),
            partial: 0,
            addrs: None,
            addr: None,
            stat: None,
        };
        self.post(c);
    }

    /// [`post_more`](Self::post_more) for a datagram: with its source address and any
    /// `FLAG_TRUNC`.
    pub(crate) fn post_more_datagram(
        &mut self,
        id: Handle,
        n: usize,
        handle: Handle,
        buf: Vec<u8>,
        addr: SocketAddr,
        flags: u32,
    ) {
        let posted = self.completions.len();
        self.post_more(id, n, handle, buf);
        self.mark_last(posted, Some(addr), flags);
    }

    /// Posts an error flagged MORE for multi-shot op `id`, which stays in flight (a UDP
    /// receive told of an earlier send's failure).
    pub(crate) fn post_more_error(&mut self, id: Handle, status: Status, handle: Handle) {
        let Some(op) = self.ops.get(id) else { return };
        let c = Completion {
            user_data: op.user_data,
            op: op.code,
            result: i64::from(status.code()),
            flags: FLAG_MORE,
            handle,
            buf: None,
            partial: 0,
            addrs: None,
            addr: None,
            stat: None,
        };
        self.post(c);
    }

    /// [`finish`](Self::finish) for a datagram op: with a received datagram's source address
    /// and any `FLAG_TRUNC`.
    pub(crate) fn finish_datagram(
        &mut self,
        id: Handle,
        result: Result<usize, Status>,
        handle: Handle,
        addr: Option<SocketAddr>,
        flags: u32,
    ) {
        let posted = self.completions.len();
        self.finish(id, result, handle);
        self.mark_last(posted, addr, flags);
    }

    /// Adds `addr` and `flags` to the completion just posted, if one was (the queue grew
    /// past `posted`).
    fn mark_last(&mut self, posted: usize, addr: Option<SocketAddr>, flags: u32) {
        if self.completions.len() > posted {
            if let Some(c) = self.completions.back_mut() {
                c.addr = addr;
                c.flags |= flags;
            }
        }
    }

    /// Keeps `buf` for a later read, up to `MAX_SPARE_BUFS` large and as many small ones
    /// (at most `SMALL_READ` bytes: the copies `fit` hands over, given back).
    pub(crate) fn spare(&mut self, buf: Vec<u8>) {
        let list = if buf.capacity() <= SMALL_READ {
            &mut self.small_bufs
        } else {
            &mut self.spare_bufs
        };
        if buf.capacity() > 0 && list.len() < MAX_SPARE_BUFS {
            list.push(buf);
        }
    }

    /// A buffer of at least `cap` bytes for a read.
    pub(crate) fn take_buf(&mut self, cap: usize) -> Vec<u8> {
        let small =
            cap <= SMALL_READ && self.small_bufs.last().is_some_and(|v| v.capacity() >= cap);
        let list = if small {
            &mut self.small_bufs
        } else {
            &mut self.spare_bufs
        };
        let mut v = list.pop().unwrap_or_default();
        v.clear();
        v.reserve(cap);
        v
    }

    /// The buffer a read's completion hands over: `v` itself, or, when a few bytes
    /// arrived in a large buffer, a small buffer holding a copy of them (`v` stays spare).
    /// A completion waiting to be reaped, and a consumer buffering it, then hold what was
    /// read, not a whole read buffer per connection.
    pub(crate) fn fit(&mut self, v: Vec<u8>) -> Vec<u8> {
        if v.len() > SMALL_READ || v.capacity() < 4 * SMALL_READ {
            return v;
        }
        let mut bytes = match self.small_bufs.pop() {
            Some(b) if b.capacity() >= v.len() => b,
            _ => Vec::with_capacity(v.len()),
        };
        bytes.clear();
        bytes.extend_from_slice(&v);
        self.spare(v);
        bytes
    }

    /// Removes op `id` and posts its one completion. A failure after a write sent part of
    /// its buffer is flagged `FLAG_PARTIAL` with the count.
    pub(crate) fn finish(&mut self, id: Handle, result: Result<usize, Status>, handle: Handle) {
        self.finish_with(id, result, handle, None);
    }

    /// [`finish`](Self::finish), with a lookup's addresses for the completion.
    pub(crate) fn finish_with(
        &mut self,
        id: Handle,
        result: Result<usize, Status>,
        handle: Handle,
        addrs: Option<Box<[AddrInfo]>>,
    ) {
        let Some(op) = self.remove(id) else {
            return;
        };
        if let Some(k) = op.deadline {
            self.timers.remove(&*k);
        }
        let mut stat = None;
        let (buf, moved) = match op.state {
            OpState::Read(ReadBuf(ReadInner::Owned(v)))
            | OpState::Recv(ReadBuf(ReadInner::Owned(v))) => (Some(v), 0),
            OpState::Read(ReadBuf(ReadInner::Raw(..)))
            | OpState::Recv(ReadBuf(ReadInner::Raw(..))) => (None, 0),
            // A datagram goes whole or not at all: nothing partial.
            OpState::Send {
                buf: WriteBuf(inner),
                ..
            } => match inner {
                WriteInner::Owned(v) => (Some(v), 0),
                WriteInner::Raw(..) => (None, 0),
            },
            OpState::Write {
                buf: WriteBuf(inner),
                done,
            } => match inner {
                WriteInner::Owned(v) => (Some(v), done),
                WriteInner::Raw(..) => (None, done),
            },
            OpState::Timer(k) => {
                self.timers.remove(&k);
                (None, 0)
            }
            OpState::Task(t) => {
                if let Some(k) = t.wake_timer {
                    self.timers.remove(&k);
                }
                (None, 0)
            }
            OpState::ReadMulti { .. } | OpState::Shutdown | OpState::Accept => (None, 0),
            OpState::RecvMulti { .. } => (None, 0),
            OpState::Ring { .. } => (None, 0),
            OpState::Stat(s) => {
                stat = Some(s);
                (None, 0)
            }
        };
        // A failed connect or accept names no connection, whatever the reason.
        let handle = match (&result, op.code) {
            (Err(_), OpCode::Connect | OpCode::Accept | OpCode::FsOpen) => Handle::NONE,
            _ => handle,
        };
        let (result, flags, partial) = match result {
            Ok(n) => (n as i64, 0, 0),
            Err(s) if moved > 0 => (i64::from(s.code()), FLAG_PARTIAL, moved as u64),
            Err(s) => (i64::from(s.code()), 0, 0),
        };
        self.post(Completion {
            user_data: op.user_data,
            op: op.code,
            result,
            flags,
            handle,
            buf,
            partial,
            addrs,
            addr: None,
            stat,
        });
    }
}
