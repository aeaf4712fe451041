//! Name lookups as ops: `getaddrinfo` is a task op whose blocking call runs on the detached
//! pool (see `resolve.rs`), so cancel, deadlines, shutdown and free never wait for it.

use std::sync::Arc;

use crate::op::OpCode;
use crate::resolve::{self, Lookup, LookupHints, MAX_SERVICE_LEN, Resolve, check_host};
use crate::runtime::Runtime;
use crate::status::Status;
use crate::task::{Done, TaskFuture};

impl Runtime {
    /// Looks up `host` and `service` as `getaddrinfo(3)` does, on the runtime's pool: the
    /// completion (`OpCode::Lookup`) has `result` = the number of addresses and every
    /// address in [`Completion::addrs`](crate::Completion::addrs), in the resolver's order;
    /// or an error: `NameNotResolved` (no such name, or no address of the family asked
    /// for), `NameTryAgain` (a temporary failure, e.g. no DNS server answered),
    /// `InvalidArgument` (hints or service the resolver rejects). Either of `host` and
    /// `service` may be `None`, not both. `host` is checked by the one host rule (see
    /// [`MAX_HOST_LEN`](crate::MAX_HOST_LEN)); a bad host or service (a NUL, over 64 bytes) fails here with
    /// `InvalidArgument` and posts nothing. Cancel and deadline work as for any op; a
    /// cancelled lookup's blocking call is abandoned, never waited for.
    pub fn getaddrinfo(
        &mut self,
        host: Option<&str>,
        service: Option<&str>,
        hints: LookupHints,
        user_data: u64,
    ) -> Result<(), Status> {
        self.admit()?;
        if let Some(h) = host {
            check_host(h)?;
        }
        if let Some(s) = service {
            if s.is_empty() || s.len() > MAX_SERVICE_LEN || s.contains('\0') {
                return Err(Status::InvalidArgument);
            }
        }
        if host.is_none() && service.is_none() {
            return Err(Status::InvalidArgument);
        }
        let lookup = self.lookup(host, service, hints)?;
        let fut: TaskFuture = Box::pin(async move { lookup.await.map(Done::Addrs) });
        self.submit_task(user_data, OpCode::Lookup, fut)
    }

    /// Replaces the resolver for lookups submitted from now on (lookups in flight keep
    /// theirs). For tests, and for embedders with their own name service.
    pub fn set_resolver(&mut self, resolver: Arc<dyn Resolve>) {
        self.resolver = resolver;
    }

    /// Starts a lookup on the pool with this runtime's resolver; the future yields its
    /// answer. Dropping the future abandons the lookup.
    pub(crate) fn lookup(
        &self,
        host: Option<&str>,
        service: Option<&str>,
        hints: LookupHints,
    ) -> Result<Lookup, Status> {
        resolve::start(self.resolver.clone(), host, service, hints)
    }
}
