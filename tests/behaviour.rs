//! The behaviour suite (spec rules 1-11), written once in `common/suite.rs` and run against
//! both engines: `kds::*` (lock-free) and `kds::reference::*` (global mutex).

mod lockfree {
    #[allow(unused_imports)]
    use kds::*;
    include!("common/suite.rs");
}

mod reference {
    #[allow(unused_imports)]
    use kds::reference::*;
    include!("common/suite.rs");
}

/// Public types are Send + Sync where a driver needs them to be.
#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<kds::Resource>();
    send_sync::<kds::ResourceSet>();
    send_sync::<kds::Guard>();
    send_sync::<kds::Pending>();
    send_sync::<kds::Worker>();
    send_sync::<kds::Interrupt>();
    send_sync::<kds::Error>();
    send::<kds::Acquire>();
    send_sync::<kds::reference::Resource>();
    send_sync::<kds::reference::Guard>();
    send_sync::<kds::reference::Pending>();
    send::<kds::reference::Acquire>();
}

#[test]
fn errors_display_and_are_std_errors() {
    let all = [
        kds::Error::Timeout,
        kds::Error::Interrupted,
        kds::Error::Busy,
        kds::Error::WouldBlock,
        kds::Error::BadSet("x"),
        kds::Error::Overflow,
        kds::Error::Spawn(std::io::ErrorKind::Other),
    ];
    let texts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    for (i, a) in texts.iter().enumerate() {
        assert!(!a.is_empty());
        for b in &texts[i + 1..] {
            assert_ne!(a, b, "two errors read the same");
        }
    }
    let _: &dyn std::error::Error = &all[0];
}
