//! `batch --stats FILE` interrupted at any point (SIGKILL, SIGTERM) and resumed with
//! `--skip-existing` ends with the statistics of an uninterrupted run, byte for byte, while the
//! output tree holds only outputs (the per-output statistics live in `FILE.parts/`, removed at
//! the end). The run is stopped at an exact place, not after a time: a FIFO stands where the
//! output of input k+1 will go, so with `-j 1` relu blocks opening it for writing once inputs
//! 1..k are committed, and the test's own open of its reading end returns just then.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::relu;

fn save_f32(path: &Path, shape: &[u64], v: &[f32]) {
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, shape);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b).unwrap();
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 4001) as f32 / 997.0 - 2.3
        })
        .collect()
}

/// Eight inputs of every kind, in byte-wise order: their paths below `root`. Those at 0, 1, 4
/// and 7, where the runs are stopped, are large: relu's write into the probe (more than a pipe
/// holds) blocks until the signal comes.
fn dataset(root: &Path) -> Vec<&'static str> {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let big: u64 = 1 << 20;
    save_f32(&root.join("a.npy"), &[big / 8, 8], &values(big as usize, 1));
    save_f32(&root.join("b.npy"), &[big], &values(big as usize, 2));
    fs::create_dir_all(root.join("c")).unwrap();
    fs::copy(fx.join("safetensors/oracle/dump_x.safetensors"), root.join("c/d.safetensors")).unwrap();
    fs::write(root.join("c/e.csv"), "p,q,r\n1,-2,0.5\n-3,4,nan\n-0.0,7e-3,-inf\n").unwrap();
    save_f32(&root.join("c/f/g.npy"), &[big / 16, 16], &values(big as usize, 9));
    fs::copy(fx.join("npz/savez_compressed.npz"), root.join("h.npz")).unwrap();
    fs::copy(fx.join("npy/valid/f2le_3x4.npy"), root.join("i.npy")).unwrap();
    save_f32(&root.join("j.npy"), &[big / 4, 4], &values(big as usize, 3));
    vec!["a.npy", "b.npy", "c/d.safetensors", "c/e.csv", "c/f/g.npy", "h.npz", "i.npy", "j.npy"]
}

/// `got` equals `want`, or the first line that differs is shown (not the whole file).
fn same_lines(got: &str, want: &str, what: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "{what}: line {} differs", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "{what}: line count");
}

/// Every file below `dir`, as relative paths, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    rd.flat_map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p)
        } else {
            vec![p]
        }
    })
    .collect()
}

/// The settings every run here shares: an activation, a type, and a histogram in the statistics.
const FLAGS: [&str; 10] = ["--act", "leaky", "--slope", "0.2", "--dtype", "f32", "--bins", "7", "--range=-2:3", "-q"];

fn batch(out: &Path, stats: &Path, root: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["batch", "--out-dir", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()];
    args.extend_from_slice(&FLAGS);
    args.extend_from_slice(extra);
    args.push(root.to_str().unwrap());
    let (code, _, err) = relu(&args, None);
    (code, err)
}

/// Runs the batch with `-j 1`, stops it by `signal` when inputs `0..k` are done and input k has
/// begun, and returns what it left.
fn interrupted(root: &Path, out: &Path, stats: &Path, inputs: &[&str], k: usize, signal: rustix::process::Signal) {
    let probe = out.join(inputs[k]);
    fs::create_dir_all(probe.parent().unwrap()).unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, &probe, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("relu"));
    cmd.args(["batch", "-j", "1", "--out-dir", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()])
        .args(FLAGS)
        .arg(root);
    // SAFETY: sigaction is async-signal-safe, fine between fork and exec (the default action
    // for SIGTERM even when these tests run with it ignored, as a background job)
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGTERM, nix::sys::signal::SigHandler::SigDfl)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Open the FIFO's reading end on a thread: it returns once relu opens the writing end. Should
    // relu end first (a bug), open the writing end here to let the thread go, and fail.
    let opener = {
        let p = probe.clone();
        std::thread::spawn(move || fs::File::open(p).unwrap())
    };
    while !opener.is_finished() {
        if let Some(st) = child.try_wait().unwrap() {
            let _w = fs::OpenOptions::new().write(true).open(&probe);
            panic!("batch ended ({st:?}) before it reached input {k}");
        }
        std::thread::yield_now();
    }
    let reader = opener.join().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(child.id() as i32).unwrap(), signal).unwrap();
    let st = child.wait().unwrap();
    drop(reader);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(signal.as_raw()), "{st:?}");
    fs::remove_file(&probe).unwrap(); // the probe, not an output
    let left: Vec<String> = tree(out).into_iter().filter(|f| !f.contains(".relu-tmp")).collect();
    let done: Vec<String> = inputs[..k].iter().map(|s| s.to_string()).collect();
    assert_eq!(left, done, "killed after {k} inputs");
    assert!(!stats.exists(), "no statistics file yet");
}

#[test]
fn a_resumed_run_ends_with_the_statistics_of_an_uninterrupted_one() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("acts");
    let inputs = dataset(&root);
    let n = inputs.len();
    let (want_out, want) = (d.path().join("want"), d.path().join("want.jsonl"));
    let (code, err) = batch(&want_out, &want, &root, &[]);
    assert_eq!(code, 0, "{err}");
    let want_text = fs::read_to_string(&want).unwrap();
    assert!(want_text.lines().count() > n, "one line per array (containers hold several)");
    assert_eq!(tree(&want_out), inputs, "the output tree holds only outputs");
    assert!(!d.path().join("want.jsonl.parts").exists(), "the parts go once the run is complete");

    use rustix::process::Signal;
    for (k, signal) in
        [(0, Signal::KILL), (1, Signal::KILL), (n / 2, Signal::KILL), (n / 2, Signal::TERM), (n - 1, Signal::KILL)]
    {
        let (out, stats) = (d.path().join(format!("out{k}{signal:?}")), d.path().join(format!("s{k}{signal:?}.jsonl")));
        interrupted(&root, &out, &stats, &inputs, k, signal);
        let mut args =
            vec!["batch", "--skip-existing", "--out-dir", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()];
        args.extend_from_slice(&FLAGS[..FLAGS.len() - 1]); // without -q: the summary line
        args.push(root.to_str().unwrap());
        let (code, _, err) = relu(&args, None);
        assert_eq!(code, 0, "{err}");
        // the statistics of the skipped came from their parts, not from reading the inputs again
        assert!(err.contains(&format!("{k} skipped")) == (k > 0) && !err.contains("read again"), "{err}");
        same_lines(&fs::read_to_string(&stats).unwrap(), &want_text, &format!("killed after {k} of {n} by {signal:?}"));
        let left: Vec<String> = tree(&out).into_iter().filter(|f| !f.contains(".relu-tmp")).collect();
        assert_eq!(left, inputs, "the output tree holds only outputs");
        for f in &inputs {
            assert_eq!(fs::read(out.join(f)).unwrap(), fs::read(want_out.join(f)).unwrap(), "{f}");
        }
        assert!(
            !d.path().join(format!("s{k}{signal:?}.jsonl.parts")).exists(),
            "the parts go once the run is complete"
        );
    }
}

/// The parts are a cache: one lost, one garbled, one from other settings and a replaced output
/// all give way to statistics computed again from the inputs, equal to an uninterrupted run's.
#[test]
fn statistics_without_a_usable_part_are_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("acts");
    let inputs = dataset(&root);
    let (want_out, want) = (d.path().join("want"), d.path().join("want.jsonl"));
    assert_eq!(batch(&want_out, &want, &root, &[]).0, 0);
    let want_text = fs::read_to_string(&want).unwrap();
    let (out, stats) = (d.path().join("out"), d.path().join("s.jsonl"));
    interrupted(&root, &out, &stats, &inputs, 7, rustix::process::Signal::KILL);
    let parts = d.path().join("s.jsonl.parts");
    assert_eq!(tree(&parts), inputs[..7].iter().map(|f| format!("{f}.jsonl")).collect::<Vec<_>>());
    fs::remove_file(parts.join("a.npy.jsonl")).unwrap();
    fs::write(parts.join("b.npy.jsonl"), "{\"relu_batch_part\": garbled").unwrap();
    // another run's settings (relu, not leaky) in this part's first line
    let p = parts.join("c/d.safetensors.jsonl");
    let text = fs::read_to_string(&p).unwrap().replacen("Value(Leaky)", "Value(Relu)", 1);
    assert!(text.contains("Value(Relu)"), "{text}");
    fs::write(&p, text).unwrap();
    // an output written again since its part was kept
    let h = out.join("h.npz");
    let bytes = fs::read(&h).unwrap();
    fs::remove_file(&h).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20)); // a new modification time, even on coarse clocks
    fs::write(&h, bytes).unwrap();
    let mut args =
        vec!["batch", "--skip-existing", "--out-dir", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()];
    args.extend_from_slice(&FLAGS[..FLAGS.len() - 1]); // without -q: the summary line
    args.push(root.to_str().unwrap());
    let (code, _, err) = relu(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("7 skipped") && err.contains("statistics of 4 skipped read again"), "{err}");
    same_lines(&fs::read_to_string(&stats).unwrap(), &want_text, "resumed");
    assert!(!parts.exists());

    // over a finished tree, with no parts left, every statistic is computed again, the same
    let (code, _, err) = relu(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("8 skipped") && err.contains("statistics of 8 skipped read again"), "{err}");
    same_lines(&fs::read_to_string(&stats).unwrap(), &want_text, "resumed");
    // and under other settings, those settings' statistics (the outputs stay as they are)
    let relu_flags = ["--bins", "7", "--range=-2:3", "-q"];
    let (want_relu_out, want_relu) = (d.path().join("want_relu"), d.path().join("want_relu.jsonl"));
    let run = |out: &Path, stats: &Path, skip: bool| {
        let mut a = vec!["batch", "--out-dir", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()];
        a.extend_from_slice(&relu_flags);
        if skip {
            a.push("--skip-existing");
        }
        a.push(root.to_str().unwrap());
        relu(&a, None).0
    };
    assert_eq!(run(&want_relu_out, &want_relu, false), 0);
    assert_eq!(run(&out, &stats, true), 0);
    same_lines(&fs::read_to_string(&stats).unwrap(), &fs::read_to_string(&want_relu).unwrap(), "other settings");
}
