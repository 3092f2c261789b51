//! What an output path names is respected (SPEC §5): a symlink is followed and its target
//! replaced (the temporary file beside the target), a FIFO or device is written into as a stream,
//! never replaced; an output that is the same file as an input or as another output is a usage
//! error naming both (`apply -o` naming its own input excepted); `batch` refuses two inputs
//! written to one output and an `--out-dir` that is (or holds) an input directory, skips one
//! inside an input directory, and walks trees with symlink loops and FIFOs in them without
//! hanging.
#![cfg(unix)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("relu")
}

fn save_f32(path: &Path, v: &[f32]) {
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[v.len() as u64]);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b).unwrap();
}

const X: [f32; 6] = [-2.0, -1.0, -0.0, 0.5, 1.0, 3.0];

/// relu of [`X`], as a `.npy`.
fn expected() -> Vec<u8> {
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[6]);
    for x in X {
        b.extend_from_slice(&(if x < 0.0 { 0.0 } else { x }).to_le_bytes()); // -0.0 stays, as in PyTorch
    }
    b
}

/// Runs relu in `dir`, killed (and the test failed) past 30 s: a hang is a failure, not a stall.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} hung: killed after 30 s; stderr: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = err.join().unwrap();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (status.code().unwrap_or(-1), out.join().unwrap(), err)
}

/// Temporary files left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".relu-tmp"))
        .collect()
}

fn mkfifo(p: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
}

fn is_fifo(p: &Path) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(&fs::symlink_metadata(p).unwrap().file_type())
}

fn is_char_device(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
}

/// Reads a FIFO to its end on a thread (opened there: opening blocks until a writer comes).
fn drain(p: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let p = p.to_path_buf();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        fs::File::open(p).unwrap().read_to_end(&mut v).unwrap();
        v
    })
}

#[test]
fn a_symlinked_output_replaces_its_target_and_keeps_the_link() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    fs::create_dir(d.path().join("real")).unwrap();
    fs::create_dir(d.path().join("links")).unwrap();
    fs::write(d.path().join("real/y.npy"), b"old").unwrap();
    // a relative link, read from the link's own directory
    std::os::unix::fs::symlink("../real/y.npy", d.path().join("links/y.npy")).unwrap();
    let (code, _, err) = run(d.path(), &["apply", "x.npy", "-o", "links/y.npy"]);
    assert_eq!(code, 0, "{err}");
    assert!(fs::symlink_metadata(d.path().join("links/y.npy")).unwrap().file_type().is_symlink(), "the link stays");
    assert_eq!(fs::read(d.path().join("real/y.npy")).unwrap(), expected(), "its target is replaced");
    // a chain of links, and one whose target does not exist yet (made, as by `>` or numpy.save)
    std::os::unix::fs::symlink("y.npy", d.path().join("links/z.npy")).unwrap();
    std::os::unix::fs::symlink(d.path().join("real/new.json"), d.path().join("links/s.json")).unwrap();
    let (code, _, err) = run(d.path(), &["apply", "x.npy", "-o", "links/z.npy", "--stats", "links/s.json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(d.path().join("real/y.npy")).unwrap(), expected());
    assert!(fs::read_to_string(d.path().join("real/new.json")).unwrap().contains("\"elements\":6"));
    assert!(fs::symlink_metadata(d.path().join("links/s.json")).unwrap().file_type().is_symlink());
    // hist -o and merge-stats -o through links too
    std::os::unix::fs::symlink("../real/h.csv", d.path().join("links/h.csv")).unwrap();
    std::os::unix::fs::symlink("../real/m.json", d.path().join("links/m.json")).unwrap();
    assert_eq!(run(d.path(), &["hist", "x.npy", "-o", "links/h.csv"]).0, 0);
    assert_eq!(run(d.path(), &["merge-stats", "real/new.json", "-o", "links/m.json"]).0, 0);
    assert!(d.path().join("real/h.csv").is_file() && d.path().join("real/m.json").is_file());
    assert!(fs::symlink_metadata(d.path().join("links/h.csv")).unwrap().file_type().is_symlink());
    for dir in ["", "real", "links"] {
        assert!(temporaries(&d.path().join(dir)).is_empty(), "{dir}: {:?}", temporaries(&d.path().join(dir)));
    }
}

#[test]
fn a_fifo_output_is_written_into_not_replaced() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    fs::write(d.path().join("t.csv"), "a,b\n-1,2\n3,-4\n").unwrap();
    // every kind of output: an array, a table's .npy (patched after its last row: spooled), an
    // .npz, statistics, a histogram, merged statistics
    let (code, _, err) = run(d.path(), &["apply", "t.csv", "-o", "t.npy", "--stats", "s.json"]);
    assert_eq!(code, 0, "{err}");
    let cases: [(&[&str], &str, Option<&str>); 6] = [
        (&["apply", "x.npy", "-o", "f.npy"], "f.npy", None),
        (&["apply", "t.csv", "-o", "f.npy"], "f.npy", Some("t.npy")),
        (&["apply", "x.npy", "-o", "y.npy", "--stats", "f.json"], "f.json", None),
        (&["hist", "x.npy", "--format", "json", "-o", "f.json"], "f.json", None),
        (&["merge-stats", "s.json", "-o", "f.json"], "f.json", None),
        (&["apply", "t.csv", "-o", "f.csv"], "f.csv", None),
    ];
    for (args, fifo, same_as) in cases {
        let p = d.path().join(fifo);
        let _ = fs::remove_file(&p);
        mkfifo(&p);
        let reader = drain(&p);
        let (code, _, err) = run(d.path(), args);
        assert_eq!(code, 0, "{args:?}: {err}");
        // before waiting for the reader: it waits forever for a FIFO that was replaced
        assert!(is_fifo(&p), "{args:?}: the FIFO was replaced");
        let got = reader.join().unwrap();
        assert!(!got.is_empty(), "{args:?}: nothing came through the FIFO");
        if let Some(f) = same_as {
            assert_eq!(got, fs::read(d.path().join(f)).unwrap(), "{args:?}");
        }
        if args[..3] == ["apply", "x.npy", "-o"] && fifo == "f.npy" {
            assert_eq!(got, expected());
        }
        assert!(temporaries(d.path()).is_empty(), "{args:?}: {:?}", temporaries(d.path()));
    }
}

#[test]
fn dev_null_and_a_character_device_are_written_into_not_replaced() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    let mut devices = Vec::new();
    if is_char_device(Path::new("/dev/null")) {
        devices.push(PathBuf::from("/dev/null"));
    }
    // as root (CI's containers), a null device of our own: replacing it harms nothing else
    let own = d.path().join("null");
    let null = rustix::fs::makedev(1, 3);
    let mode = rustix::fs::Mode::from_raw_mode(0o666);
    if rustix::fs::mknodat(rustix::fs::CWD, &own, rustix::fs::FileType::CharacterDevice, mode, null).is_ok() {
        devices.push(own);
    }
    if devices.is_empty() {
        eprintln!("skipped: /dev/null is not a character device here and mknod is not permitted");
        return;
    }
    for dev in &devices {
        let dev = dev.to_str().unwrap();
        for args in [
            vec!["apply", "x.npy", "-o", dev],
            vec!["apply", "x.npy", "-o", dev, "--stats", dev], // devices never collide
            vec!["hist", "x.npy", "-o", dev],
            vec!["batch", "--out-dir", "o", "x.npy", "--stats", dev],
        ] {
            let (code, _, err) = run(d.path(), &args);
            assert_eq!(code, 0, "{args:?}: {err}");
            assert!(is_char_device(Path::new(dev)), "{args:?} replaced {dev}");
        }
    }
    assert!(temporaries(d.path()).is_empty());
}

#[test]
fn dev_stdout_is_the_standard_output_as_it_stands() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    // `>>`: both runs append to the file behind stdout; neither replaces it
    let log = d.path().join("log");
    fs::write(&log, b"head").unwrap();
    for _ in 0..2 {
        let f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        let st = Command::new(bin())
            .args(["apply", "x.npy", "-o", "/dev/stdout"])
            .current_dir(d.path())
            .stdout(f)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut want = b"head".to_vec();
    want.extend(expected());
    want.extend(expected());
    assert_eq!(fs::read(&log).unwrap(), want);
    // through a pipe, and through a symlink to /dev/stdout
    std::os::unix::fs::symlink("/dev/stdout", d.path().join("out.npy")).unwrap();
    let o = Command::new(bin()).args(["apply", "x.npy", "-o", "out.npy"]).current_dir(d.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, expected());
    assert!(fs::symlink_metadata(d.path().join("out.npy")).unwrap().file_type().is_symlink());
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_naming_both() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    save_f32(&d.path().join("in/a.npy"), &X);
    save_f32(&d.path().join("alpha.npy"), &[0.25]);
    std::os::unix::fs::symlink("x.npy", d.path().join("link.npy")).unwrap();
    let (code, _, err) = run(d.path(), &["apply", "x.npy", "-o", "s.json", "--stats", "s.json"]);
    assert_eq!(code, 2, "{err}");
    fs::write(d.path().join("m.json"), run(d.path(), &["stats", "--json", "x.npy"]).1).unwrap();
    let original = fs::read(d.path().join("x.npy")).unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["apply", "x.npy", "-o", "y.npy", "--stats", "x.npy"], "--stats x.npy", "x.npy"),
        // by what it is, not how it is spelled: a symlink to the input is the input
        (&["apply", "x.npy", "-o", "y.npy", "--stats", "link.npy"], "link.npy", "x.npy"),
        (&["apply", "x.npy", "-o", "./y.json", "--stats", "y.json"], "./y.json", "y.json"),
        (
            &["apply", "x.npy", "--act", "grad", "--upstream", "link.npy", "-o", "x2.npy", "--stats", "x.npy"],
            "--stats x.npy",
            "x.npy",
        ),
        (
            &["apply", "x.npy", "--act", "prelu", "--alpha", "alpha.npy", "-o", "alpha.npy"],
            "-o alpha.npy",
            "--alpha alpha.npy",
        ),
        (&["hist", "x.npy", "-o", "x.npy"], "-o x.npy", "x.npy"),
        (&["hist", "x.npy", "--format", "csv", "-o", "link.npy"], "link.npy", "x.npy"),
        (&["merge-stats", "m.json", "-o", "m.json"], "-o m.json", "m.json"),
        (&["batch", "--out-dir", "o", "--stats", "in/a.npy", "in"], "--stats in/a.npy", "in/a.npy"),
        (&["batch", "--out-dir", "in", "in"], "--out-dir in", "in"),
        (&["batch", "--out-dir", ".", "in"], "--out-dir .", "in"),
        (&["batch", "--out-dir", "in", "in/a.npy"], "in/a.npy", "in/a.npy"),
    ];
    for (args, a, b) in cases {
        let (code, _, err) = run(d.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("relu: ") && err.contains(a) && err.contains(b), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert_eq!(fs::read(d.path().join("x.npy")).unwrap(), original, "{args:?}");
        assert!(!d.path().join("o").exists() && !d.path().join("y.npy").exists(), "{args:?}: work was done");
    }
    assert_eq!(fs::read(d.path().join("in/a.npy")).unwrap(), original);
    // allowed: apply -o naming its own input (SPEC §5), also through a link; an output that does
    // not exist yet; the same device twice
    let (code, _, err) = run(d.path(), &["apply", "link.npy", "-o", "x.npy", "--stats", "new.json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(d.path().join("x.npy")).unwrap(), expected());
}

#[test]
fn batch_refuses_two_inputs_written_to_one_output_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("e0/layer1.npy"), &X);
    save_f32(&d.path().join("e0/layer2.npy"), &X);
    save_f32(&d.path().join("e1/layer1.npy"), &X);
    save_f32(&d.path().join("d1/y.npy"), &X);
    save_f32(&d.path().join("d2/y.npy"), &X);
    for (args, a, b) in [
        (["batch", "--out-dir", "o", "e0", "e1"], "e0/layer1.npy", "e1/layer1.npy"),
        (["batch", "--out-dir", "o", "d1/y.npy", "d2/y.npy"], "d1/y.npy", "d2/y.npy"),
    ] {
        let (code, _, err) = run(d.path(), &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(a) && err.contains(b) && err.contains("o/"), "{args:?}: {err}");
        assert!(!d.path().join("o").exists(), "{args:?}: nothing is written");
    }
    // one file by two names is one input, not a collision
    let (code, _, err) = run(d.path(), &["batch", "--out-dir", "o", "e0", "./e0"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 files"), "{err}");
}

#[test]
fn batch_skips_an_out_dir_inside_an_input_directory() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("in/a.npy"), &X);
    save_f32(&d.path().join("in/sub/b.npy"), &X);
    for round in 0..2 {
        let (code, _, err) = run(d.path(), &["batch", "--out-dir", "in/out", "in"]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("2 files"), "round {round}: the outputs are not read back as inputs: {err}");
    }
    assert!(!d.path().join("in/out/out").exists());
    assert_eq!(fs::read(d.path().join("in/out/sub/b.npy")).unwrap(), expected());
}

#[test]
fn batch_walks_symlink_loops_and_fifos_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("d/a.npy"), &X);
    save_f32(&d.path().join("d/s/b.npy"), &X);
    // two loops (one alone gave 244 duplicate outputs; two hung), a FIFO, a link to a file
    std::os::unix::fs::symlink("..", d.path().join("d/up")).unwrap();
    std::os::unix::fs::symlink("../..", d.path().join("d/s/up2")).unwrap();
    std::os::unix::fs::symlink("a.npy", d.path().join("d/c.npy")).unwrap();
    mkfifo(&d.path().join("d/p.npy"));
    let (code, _, err) = run(d.path(), &["batch", "--out-dir", "o", "d"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 files"), "{err}");
    assert!(err.contains("d/up") && err.contains("d/s/up2") && err.contains("loop"), "{err}");
    assert!(err.contains("d/p.npy") && err.contains("FIFO"), "{err}");
    let mut found: Vec<String> = walk(&d.path().join("o"));
    found.sort();
    assert_eq!(found, ["a.npy", "c.npy", "s/b.npy"]);
    // a FIFO named on the command line is read as a stream
    let fifo = d.path().join("named.npy");
    mkfifo(&fifo);
    let writer = std::thread::spawn(move || fs::write(fifo, expected()).unwrap());
    let (code, _, err) = run(d.path(), &["batch", "--out-dir", "o2", "named.npy"]);
    writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(d.path().join("o2/named.npy")).unwrap(), expected());
}

/// Files below `dir`, relative, without following links.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn a_socket_is_written_into_and_a_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    save_f32(&d.path().join("x.npy"), &X);
    let listener = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        listener.accept().unwrap().0.read_to_end(&mut v).unwrap();
        v
    });
    let (code, _, err) = run(d.path(), &["apply", "x.npy", "-o", "sock"]);
    assert_eq!(code, 0, "{err}");
    let kind = fs::symlink_metadata(d.path().join("sock")).unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&kind), "the socket was replaced");
    assert_eq!(reader.join().unwrap(), expected());
    fs::create_dir(d.path().join("dir")).unwrap();
    let (code, _, err) = run(d.path(), &["apply", "x.npy", "-o", "dir"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("dir") && err.contains("directory") && err.lines().count() == 1, "{err}");
    assert!(d.path().join("dir").is_dir() && temporaries(d.path()).is_empty());
}
