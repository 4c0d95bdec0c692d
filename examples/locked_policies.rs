//! The three locked policies side by side: `cargo run --example locked_policies`.
//!
//! The CPU holds a buffer with a blocking (sync) request, so the buffer is *sync-locked*.
//! Three display-side async requests ask for it, one per policy (the seed's
//! `KDS_FLAG_LOCKED_WAIT`, `_FAIL`, `_IGNORE`), then a fourth plain request comes after them.

use kds::{Dispatch, Locked, Resource, ResourceSet};
use std::sync::{Arc, Mutex};

fn main() -> Result<(), kds::Error> {
    let buffer = Resource::new();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let note = |what: &str| log.lock().unwrap().push(what.to_owned());

    let cpu = ResourceSet::new().exclusive(&buffer).wait()?; // sync: the buffer is sync-locked
    note("cpu holds the buffer (sync)");

    let request = |policy: Locked, name: &'static str| {
        let log = log.clone();
        ResourceSet::new()
            .shared(&buffer)
            .locked(policy)
            .on_grant(Dispatch::Direct, move |guard| {
                log.lock().unwrap().push(format!("{name} granted"));
                drop(guard);
            })
    };
    let wait = request(Locked::Wait, "Wait")?;
    note(&format!(
        "Wait requested: granted now? {}",
        wait.is_granted()
    ));
    match request(Locked::Fail, "Fail") {
        Err(e) => note(&format!("Fail refused at once: {e}")),
        Ok(_) => unreachable!("the buffer is sync-locked"),
    }
    let ignore = request(Locked::Ignore, "Ignore")?;
    note(&format!(
        "Ignore requested: granted now? {} (despite the cpu)",
        ignore.is_granted()
    ));

    drop(cpu);
    note("cpu released");
    for line in log.lock().unwrap().iter() {
        println!("{line}");
    }
    assert!(wait.is_granted());
    Ok(())
}
