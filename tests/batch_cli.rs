//! `relu batch` through the binary: outputs mirror the tree (`.npy`, `.npz` members and CSV files
//! side by side), statistics in input order whatever `-j`, shards whose union is the unsharded run
//! (also as the `xargs -P` recipe of docs/scaling-out.md), `--skip-existing`, a corrupt file
//! among good ones, `--fail-fast`, a run killed with SIGKILL and completed by a rerun, and a large
//! file split across threads bit-identical to one thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::relu;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("relu")
}

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
            (s % 4001) as f32 / 1000.0 - 2.0
        })
        .collect()
}

/// A small dataset: seven (rows, 6) layers in three directories, a CSV and an `.npz`.
fn dataset(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 0..7 {
        let sub = ["", "a/", "a/b/"][i % 3];
        let p = root.join(format!("{sub}x{i}.npy"));
        save_f32(&p, &[20 + i as u64, 6], &values((20 + i) * 6, i as u32 + 1));
        files.push(p);
    }
    fs::write(root.join("a/t.csv"), "p,q,r,s,t,u\n1,-2,0,0,0,0\n-3,4,0,0,0,0\n").unwrap();
    files.push(root.join("a/t.csv"));
    // an .npz of two members, made by relu itself from two .npy files via the zip writer
    let z = root.join("b/pair.npz");
    fs::create_dir_all(z.parent().unwrap()).unwrap();
    let mut zw = zip::ZipWriter::new(fs::File::create(&z).unwrap());
    for (k, f) in [("first.npy", &files[0]), ("second.npy", &files[1])] {
        zw.start_file(k, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zw, &fs::read(f).unwrap()).unwrap();
    }
    zw.finish().unwrap();
    files.push(z);
    files
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn outputs_mirror_the_tree_and_statistics_come_in_input_order() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    dataset(&root);
    let run = |j: &str, out: &str| {
        let (o, s) = (d.path().join(out), d.path().join(format!("{out}.jsonl")));
        let (code, stdout, err) = relu(
            &[
                "batch",
                "-j",
                j,
                "--out-dir",
                o.to_str().unwrap(),
                "--stats",
                s.to_str().unwrap(),
                root.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        assert!(stdout.is_empty(), "nothing but results on stdout");
        assert!(err.contains("relu batch: 9 files (10 arrays"), "{err}");
        (o, fs::read_to_string(s).unwrap())
    };
    let (o1, s1) = run("1", "out1");
    let (o3, s3) = run("3", "out3");
    assert_eq!(s1, s3, "statistics do not depend on -j");
    assert_eq!(s1.lines().count(), 10, "one object per array (the .npz has two)");
    assert!(s1.lines().any(|l| l.contains("pair.npz:second")));
    assert_eq!(tree(&o1), tree(&root));
    for f in tree(&root) {
        assert_eq!(fs::read(o1.join(&f)).unwrap(), fs::read(o3.join(&f)).unwrap(), "{f}");
    }
    // each output is what apply writes for its input
    let want = d.path().join("want.npy");
    let (code, _, err) =
        relu(&["apply", root.join("a/b/x2.npy").to_str().unwrap(), "-o", want.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(want).unwrap(), fs::read(o1.join("a/b/x2.npy")).unwrap());
    assert_eq!(fs::read_to_string(o1.join("a/t.csv")).unwrap(), "p,q,r,s,t,u\n1,0.0,0,0,0,0\n0.0,4,0,0,0,0\n");
}

#[test]
fn shards_split_the_dataset_and_merge_to_the_whole() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    dataset(&root);
    let r = root.to_str().unwrap();
    let whole = d.path().join("whole.jsonl");
    let (code, _, err) = relu(
        &["batch", "--out-dir", d.path().join("w").to_str().unwrap(), "--stats", whole.to_str().unwrap(), r],
        None,
    );
    assert_eq!(code, 0, "{err}");
    // the xargs -P recipe of docs/scaling-out.md: 3 processes, no coordination
    let out = d.path().join("sharded");
    let recipe = format!(
        "seq 1 3 | xargs -P 3 -I{{}} {} batch --out-dir {} --stats {}/shard-{{}}.jsonl --shard {{}}/3 {}",
        bin().display(),
        out.display(),
        d.path().display(),
        r
    );
    let st = Command::new("sh").args(["-c", &recipe]).status().unwrap();
    assert!(st.success());
    assert_eq!(tree(&out), tree(&root), "the union of the shards' outputs is the whole");
    let merge = |files: Vec<String>| {
        let mut args = vec!["merge-stats".to_string()];
        args.extend(files);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (code, o, err) = relu(&args, None);
        assert_eq!(code, 0, "{err}");
        serde_json::from_slice::<serde_json::Value>(&o).unwrap()
    };
    let shards: Vec<String> =
        (1..=3).map(|i| d.path().join(format!("shard-{i}.jsonl")).display().to_string()).collect();
    let (m, w) = (merge(shards), merge(vec![whole.display().to_string()]));
    for k in ["elements", "zeros", "nan", "min", "max", "negative_inputs"] {
        assert_eq!(m[k], w[k], "{k}");
    }
    assert!((m["mean"].as_f64().unwrap() - w["mean"].as_f64().unwrap()).abs() < 1e-12);
}

#[test]
fn failures_alone_skip_existing_and_fail_fast() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    dataset(&root);
    fs::write(root.join("a/corrupt.npy"), b"\x93NUMPY\x01\x00garbage").unwrap();
    let out = d.path().join("out");
    let (o, r) = (out.to_str().unwrap(), root.to_str().unwrap());
    let (code, _, err) = relu(&["batch", "--out-dir", o, r], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("corrupt.npy"), "{err}");
    assert!(err.contains("1 failed"), "{err}");
    assert_eq!(tree(&out).len(), 9, "the others are done");
    assert!(!out.join("a/corrupt.npy").exists());
    assert!(!tree(&out).iter().any(|f| f.contains("relu-tmp")), "no temporary file left");
    // --skip-existing: the finished outputs are left alone
    let t0 = fs::metadata(out.join("x0.npy")).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::remove_file(root.join("a/corrupt.npy")).unwrap();
    fs::remove_file(out.join("a/x1.npy")).unwrap();
    let (code, _, err) = relu(&["batch", "--out-dir", o, "--skip-existing", r], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("8 skipped"), "{err}");
    assert_eq!(fs::metadata(out.join("x0.npy")).unwrap().modified().unwrap(), t0);
    assert!(out.join("a/x1.npy").exists());
    // --fail-fast stops early: with one worker, the files after the corrupt one are not run
    fs::write(root.join("a/a_corrupt.npy"), b"not an array").unwrap();
    let out2 = d.path().join("out2");
    let (code, _, err) = relu(&["batch", "-j", "1", "--fail-fast", "--out-dir", out2.to_str().unwrap(), r], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not run (--fail-fast)"), "{err}");
}

#[test]
fn a_killed_run_leaves_complete_outputs_and_a_rerun_finishes() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("big");
    for i in 0..10 {
        save_f32(&root.join(format!("p{i}.npy")), &[2 << 20], &values(2 << 20, i + 3));
    }
    let out = d.path().join("out");
    let mut child = Command::new(bin())
        .args(["batch", "-j", "1", "--out-dir", out.to_str().unwrap(), root.to_str().unwrap()])
        .spawn()
        .unwrap();
    // once the first output is being written
    let start = std::time::Instant::now();
    while tree(&out).is_empty() {
        assert!(start.elapsed().as_secs() < 30, "batch never began writing");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    for f in tree(&out) {
        if !f.ends_with(".relu-tmp") {
            let (code, _, err) = relu(&["inspect", out.join(&f).to_str().unwrap()], None);
            assert_eq!(code, 0, "{f} is complete: {err}");
            assert_eq!(fs::metadata(out.join(&f)).unwrap().len(), 128 + 4 * (2 << 20), "{f}");
        }
    }
    let (code, _, err) =
        relu(&["batch", "--skip-existing", "--out-dir", out.to_str().unwrap(), root.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let done: Vec<String> = tree(&out).into_iter().filter(|f| !f.ends_with(".relu-tmp")).collect();
    assert_eq!(done.len(), 10, "{done:?}");
}

#[test]
fn a_large_file_split_across_threads_is_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x.npy");
    save_f32(&x, &[3000, 1001], &values(3000 * 1001, 9));
    let mut outs = Vec::new();
    for j in ["1", "2", "3"] {
        let (o, s) = (d.path().join(format!("y{j}.npy")), d.path().join(format!("s{j}.json")));
        let (code, _, err) = relu(
            &[
                "apply",
                x.to_str().unwrap(),
                "-j",
                j,
                "--act",
                "leaky",
                "-o",
                o.to_str().unwrap(),
                "--stats",
                s.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        let s: serde_json::Value = serde_json::from_str(&fs::read_to_string(s).unwrap()).unwrap();
        outs.push((fs::read(o).unwrap(), s));
    }
    for w in outs.windows(2) {
        assert!(w[0].0 == w[1].0, "the output does not depend on -j");
        // counts exactly; mean and std merge across the threads' ranges to within rounding
        for k in ["elements", "zeros", "negative_inputs", "min", "max", "units"] {
            assert_eq!(w[0].1[k], w[1].1[k], "{k}");
        }
        for k in ["mean", "std"] {
            let (a, b) = (w[0].1[k].as_f64().unwrap(), w[1].1[k].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-13 * a.abs(), "{k}: {a} vs {b}");
        }
    }
}

#[test]
fn progress_quiet_and_sync() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    dataset(&root);
    let (o, r) = (d.path().join("o"), root.to_str().unwrap());
    let (code, out, err) =
        relu(&["batch", "--progress", "always", "--sync", "--out-dir", o.to_str().unwrap(), r], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "progress goes to stderr only");
    assert!(err.contains("relu batch: 9 files"), "{err}");
    assert!(err.contains("files ") && err.contains(" failed"), "the bar was drawn: {err}");
    assert_eq!(tree(&o), tree(&root));
    let (code, out, err) = relu(&["batch", "-q", "--out-dir", d.path().join("q").to_str().unwrap(), r], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && err.is_empty(), "-q: nothing at all on success: {err}");
}

#[test]
#[cfg(unix)]
fn a_file_gone_before_it_is_read_fails_alone() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    dataset(&root);
    // listed as a file, gone when read: a link whose target was removed
    std::os::unix::fs::symlink(d.path().join("removed.npy"), root.join("a/gone.npy")).unwrap();
    let out = d.path().join("out");
    let (code, _, err) = relu(&["batch", "--out-dir", out.to_str().unwrap(), root.to_str().unwrap()], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gone.npy") && err.contains("1 failed"), "{err}");
    assert_eq!(tree(&out).len(), 9, "the others are done");
}

#[test]
#[cfg(unix)]
fn ctrl_c_mid_run_leaves_no_partial_output_and_a_rerun_finishes() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("big");
    for i in 0..10 {
        save_f32(&root.join(format!("p{i}.npy")), &[4 << 20], &values(4 << 20, i + 7));
    }
    let out = d.path().join("out");
    let mut cmd = Command::new(bin());
    // the default action for SIGINT even when these tests run with it ignored (a background job)
    // SAFETY: sigaction is async-signal-safe, fine between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child =
        cmd.args(["batch", "-j", "1", "--out-dir", out.to_str().unwrap(), root.to_str().unwrap()]).spawn().unwrap();
    // interrupt once the first output is being written (not after a fixed time: a fast machine
    // finishes all ten files in less than a sleep of tens of milliseconds)
    let start = std::time::Instant::now();
    while tree(&out).is_empty() {
        assert!(start.elapsed().as_secs() < 30, "batch never began writing");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let st = child.wait_with_output().unwrap().status;
    // killed by SIGINT, after removing its temporary file (or before it began)
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(rustix::process::Signal::INT.as_raw()),
        "{st:?}"
    );
    let left = tree(&out);
    assert!(left.iter().all(|f| !f.contains("relu-tmp")), "temporary files removed: {left:?}");
    for f in &left {
        assert_eq!(fs::metadata(out.join(f)).unwrap().len(), 128 + 4 * (4 << 20), "{f} is complete");
    }
    assert!(left.len() < 10, "the run was cut short");
    let (code, _, err) =
        relu(&["batch", "--skip-existing", "--out-dir", out.to_str().unwrap(), root.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tree(&out).len(), 10);
}
