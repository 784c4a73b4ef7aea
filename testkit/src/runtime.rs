//! The async runtime of tests that drive a real server from synchronous code (a proptest
//! body, a test that also runs LibTorch).

/// A two-worker multi-thread runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
