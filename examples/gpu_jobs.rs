//! A GPU-job scheduler with worker callbacks: `cargo run --example gpu_jobs`.
//!
//! Jobs name their input buffers shared and their output buffer exclusive, and are submitted
//! with `on_grant(Dispatch::Worker(..))` to one of two "GPU queues" (worker threads). Nobody
//! blocks: a job runs on its queue's thread when all its buffers are available, and
//! per-buffer FIFO order turns submission order into the dependency order — a job that reads
//! a buffer runs after the job submitted before it that writes it, and before the next one.

use kds::{Dispatch, Resource, ResourceSet, Worker};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn main() -> Result<(), kds::Error> {
    let queues = [Worker::spawn("gpu-queue-0")?, Worker::spawn("gpu-queue-1")?];
    let buffers: Vec<Resource> = (0..4).map(|_| Resource::new()).collect();
    // Each buffer's content: the id of the last job that wrote it.
    let contents = Arc::new(Mutex::new(vec![None::<usize>; buffers.len()]));
    let (done, finished) = mpsc::channel();

    // (output, inputs): a small render graph, submitted in order.
    let jobs: [(usize, &[usize]); 6] = [
        (0, &[]),
        (1, &[]),
        (2, &[0, 1]),
        (0, &[2]),
        (3, &[2, 0]),
        (1, &[3]),
    ];
    let mut expected_inputs = vec![None::<usize>; buffers.len()];
    for (id, &(out, ins)) in jobs.iter().enumerate() {
        let mut set = ResourceSet::new().exclusive(&buffers[out]);
        for &i in ins {
            set = set.shared(&buffers[i]);
        }
        // What this job must see: the last writer of each input submitted before it.
        let want: Vec<(usize, Option<usize>)> =
            ins.iter().map(|&i| (i, expected_inputs[i])).collect();
        expected_inputs[out] = Some(id);
        let (contents, done) = (contents.clone(), done.clone());
        let queue = queues[id % queues.len()].clone();
        set.on_grant(Dispatch::Worker(queue), move |guard| {
            let mut c = contents.lock().unwrap();
            for (input, writer) in want {
                assert_eq!(
                    c[input], writer,
                    "job {id} ran before its input {input} was ready"
                );
            }
            std::thread::sleep(Duration::from_millis(2)); // "execute"
            c[out] = Some(id);
            drop(c);
            drop(guard); // the job's buffers are free for the jobs queued behind it
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            done.send((id, thread)).unwrap();
        })?;
    }
    for _ in 0..jobs.len() {
        let (id, thread) = finished.recv().expect("a job never ran");
        println!("job {id} done on {thread}");
    }
    println!(
        "gpu_jobs: {} jobs ran in dependency order on 2 queues",
        jobs.len()
    );
    Ok(())
}
