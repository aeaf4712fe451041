//! Buffers an operation reads into or writes from: owned `Vec`s (Python, Node, Rust) or the
//! caller's raw memory (C), which the caller keeps alive until the operation completes.

/// Where a read puts its bytes.
#[derive(Debug)]
pub struct ReadBuf(pub(crate) ReadInner);

#[derive(Debug)]
pub(crate) enum ReadInner {
    /// Reads append into the spare capacity; the `Vec` comes back in the completion.
    Owned(Vec<u8>),
    Raw(*mut u8, usize),
}

// SAFETY: a raw buffer is only touched by the thread driving the runtime; the caller of
// `ReadBuf::raw` promised it stays valid and unaliased until the read completes.
unsafe impl Send for ReadBuf {}

impl ReadBuf {
    /// A fresh buffer that receives up to `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> ReadBuf {
        ReadBuf(ReadInner::Owned(Vec::with_capacity(capacity)))
    }

    /// Reuses `vec`: it is cleared, and the read receives up to its capacity.
    pub fn from_vec(mut vec: Vec<u8>) -> ReadBuf {
        vec.clear();
        ReadBuf(ReadInner::Owned(vec))
    }

    /// Reads into `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid for writes and not accessed by anyone else until the
    /// read's completion is reaped (or the runtime is dropped).
    pub unsafe fn raw(ptr: *mut u8, len: usize) -> ReadBuf {
        ReadBuf(ReadInner::Raw(ptr, len))
    }

    /// How many bytes one read may deliver.
    pub fn capacity(&self) -> usize {
        match &self.0 {
            ReadInner::Owned(v) => v.capacity() - v.len(),
            ReadInner::Raw(_, len) => *len,
        }
    }
}

/// What a write sends.
#[derive(Debug)]
pub struct WriteBuf(pub(crate) WriteInner);

#[derive(Debug)]
pub(crate) enum WriteInner {
    Owned(Vec<u8>),
    Raw(*const u8, usize),
}

// SAFETY: as for `ReadBuf`: the caller of `WriteBuf::raw` keeps the memory valid and
// unmodified until the write completes; only the driving thread reads it.
unsafe impl Send for WriteBuf {}

impl WriteBuf {
    /// Sends all of `vec`; the `Vec` comes back in the completion for reuse.
    pub fn from_vec(vec: Vec<u8>) -> WriteBuf {
        WriteBuf(WriteInner::Owned(vec))
    }

    /// Sends `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid for reads and unmodified until the write's completion is
    /// reaped (or the runtime is dropped).
    pub unsafe fn raw(ptr: *const u8, len: usize) -> WriteBuf {
        WriteBuf(WriteInner::Raw(ptr, len))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            WriteInner::Owned(v) => v.len(),
            WriteInner::Raw(_, len) => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The owned buffer, to hand back in a completion (`None` for raw memory).
    pub(crate) fn into_vec(self) -> Option<Vec<u8>> {
        match self.0 {
            WriteInner::Owned(v) => Some(v),
            WriteInner::Raw(..) => None,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.0 {
            WriteInner::Owned(v) => v,
            WriteInner::Raw(_, 0) => &[],
            // SAFETY: the caller of `WriteBuf::raw` guaranteed `len` readable bytes at `ptr`.
            WriteInner::Raw(ptr, len) => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}
