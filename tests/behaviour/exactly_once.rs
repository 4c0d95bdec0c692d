//! Rules 5 and 6: a grant is delivered exactly once (cancel wins or comes too late, never both); a release removes the set.

use crate::common::*;

fn rule5_cancel_before_grant_wins_and_callback_never_runs<E: Engine>() {
    let r = res::<E>(1);
    let h = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut w = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(w.cancel());
    h.release();
    assert!(!w.granted());
    assert!(is_free(&r[0]));
}

fn rule5_cancel_after_grant_reports_too_late<E: Engine>() {
    let r = res::<E>(1);
    let mut w = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(w.granted());
    assert!(!w.cancel());
    assert!(
        !is_free(&r[0]),
        "a too-late cancel must not release the set"
    );
    w.release();
    assert!(is_free(&r[0]));
}

fn rule5_grant_racing_cancel_is_exactly_once<E: Engine>() {
    let rounds = if cfg!(miri) { 10 } else { 3000 };
    for _ in 0..rounds {
        let r = res::<E>(1);
        let hold = ResourceSet::new()
            .exclusive(&r[0])
            .wait()
            .unwrap()
            .into_owned();
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let p = ResourceSet::new()
            .exclusive(&r[0])
            .on_grant(Dispatch::Direct, move |g| {
                ran2.fetch_add(1, SeqCst);
                drop(g);
            })
            .unwrap();
        let t = thread::spawn(move || drop(hold));
        let cancelled = p.cancel();
        t.join().unwrap();
        assert_eq!(
            ran.load(SeqCst),
            usize::from(!cancelled),
            "cancel={cancelled}"
        );
        assert!(is_free(&r[0]));
    }
}

fn rule6_guard_release_and_drop_both_release<E: Engine>() {
    let r = res::<E>(1);
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    assert!(!is_free(&r[0]));
    g.release();
    assert!(is_free(&r[0]));
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    drop(g);
    assert!(is_free(&r[0]));
}

on_both_engines!(
    rule5_cancel_before_grant_wins_and_callback_never_runs,
    rule5_cancel_after_grant_reports_too_late,
    rule5_grant_racing_cancel_is_exactly_once,
    rule6_guard_release_and_drop_both_release,
);
