//! Busy polling (`serve --busy-poll-us N`): after each request the runtime's thread keeps
//! polling its sockets for `N` µs instead of going to sleep, so the next request, and the
//! upstream's answer, find it awake.
//!
//! Why: at low load most of a proxy's added latency is not its work but the wake-ups of an idle
//! core, twice per request (the client's request, the upstream's answer). Under a hypervisor an
//! idle vCPU halts and a wake-up is an inter-processor interrupt plus a VM entry: tens of µs
//! each (docs/BENCHMARKS.md measures it). HAProxy's `busy-polling` makes the same trade. Unlike
//! HAProxy's, this one is adaptive: it spins only while requests keep arriving within the
//! window, so an idle proxy still costs no CPU. The price is a full core whenever requests are
//! closer together than the window; it is off by default.
//!
//! How: one task yields in a loop. On tokio's single-threaded runtime a yielding task makes
//! the scheduler poll the I/O driver with a zero timeout (`epoll_wait(…, 0)`) instead of
//! blocking in it, and every other task still runs in turn. With several worker threads a
//! spinning task would keep only one of them awake, so `main` accepts the flag only with one.
//!
//! Invariant: the spinner parks (awaits a `Notify`) once a whole window passes without a
//! `touch`, and each park is woken by at most one `touch` (the one that finds it parked).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The request path's handle: `touch` on every request. Cheap to clone; `off()` does nothing.
#[derive(Clone, Debug, Default)]
pub struct BusyPoll {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    window: Duration,
    /// Requests seen; the spinner keeps going while this changes within the window.
    touches: AtomicU64,
    /// The spinner awaits `wake`; the `touch` that flips this back to false wakes it.
    parked: AtomicBool,
    /// True from a wake-up until a window passes with no touch.
    spinning: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// No busy polling: `touch` is a no-op.
    pub fn off() -> Self {
        Self::default()
    }

    /// Spawn the spinning task on the current runtime (which should be single-threaded; see
    /// the module doc). It stays parked until the first `touch`, and runs until the runtime
    /// shuts down.
    pub fn start(window: Duration) -> Self {
        let shared = Arc::new(Shared {
            window,
            touches: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            spinning: AtomicBool::new(false),
            wake: Notify::new(),
        });
        tokio::spawn(spin(shared.clone()));
        Self {
            shared: Some(shared),
        }
    }

    /// A request arrived: keep (or start) polling for another window.
    pub fn touch(&self) {
        if let Some(shared) = &self.shared {
            shared.touches.fetch_add(1, Ordering::SeqCst);
            if shared.parked.swap(false, Ordering::SeqCst) {
                shared.wake.notify_one();
            }
        }
    }

    /// Whether this handle does nothing (made by `off`).
    pub fn is_off(&self) -> bool {
        self.shared.is_none()
    }

    /// Whether the spinner is polling right now (false when off).
    pub fn is_spinning(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.spinning.load(Ordering::SeqCst))
    }
}

async fn spin(shared: Arc<Shared>) {
    let mut seen = shared.touches.load(Ordering::SeqCst);
    loop {
        // Park unless a touch came in since the last look. A touch that lands between the
        // store and the load either sees `parked` (and wakes us) or is seen by the load.
        shared.parked.store(true, Ordering::SeqCst);
        if shared.touches.load(Ordering::SeqCst) == seen
            || !shared.parked.swap(false, Ordering::SeqCst)
        {
            // Parked, or a touch already flipped `parked` and stored a permit: take it.
            shared.wake.notified().await;
        }
        shared.spinning.store(true, Ordering::SeqCst);
        let mut until = Instant::now() + shared.window;
        loop {
            tokio::task::yield_now().await;
            let now = Instant::now();
            let touches = shared.touches.load(Ordering::SeqCst);
            if touches != seen {
                seen = touches;
                until = now + shared.window;
            } else if now >= until {
                break;
            }
        }
        shared.spinning.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Let the spinner (and the runtime) run a few turns.
    async fn turns(n: usize) {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn spins_from_a_touch_until_a_quiet_window_then_parks() {
        let poll = BusyPoll::start(Duration::from_millis(2));
        turns(10).await;
        assert!(!poll.is_spinning(), "no request yet: parked");

        poll.touch();
        turns(10).await;
        assert!(poll.is_spinning());

        // Requests closer together than the window keep it spinning.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(1)).await;
            poll.touch();
            turns(3).await;
            assert!(poll.is_spinning());
        }

        // A quiet window: it parks, and stays parked with no more touches.
        tokio::time::advance(Duration::from_millis(3)).await;
        turns(10).await;
        assert!(!poll.is_spinning());
        tokio::time::advance(Duration::from_millis(50)).await;
        turns(10).await;
        assert!(!poll.is_spinning());

        // The next request wakes it again.
        poll.touch();
        turns(10).await;
        assert!(poll.is_spinning());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn off_never_spins() {
        let poll = BusyPoll::off();
        poll.touch();
        turns(10).await;
        assert!(!poll.is_spinning());
    }
}
