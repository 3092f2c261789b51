//! Messages that must neither mislead nor harm (issue 20): an input's text quoted in a message is
//! escaped and cut, each refusal names its real cause, usage mistakes exit 2 whatever the input,
//! and what relu prints on a terminal, in its man page and in its tables says what it means.
//! Every file is made here in a temporary directory, or is a fixture; no Python needed.

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<Vec<u8>>) -> Run {
    let mut c = Command::cargo_bin("relu").unwrap();
    c.args(args).env_remove("RELU_MAX_RECORD");
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(s) = stdin {
        c.write_stdin(s);
    }
    let o = c.output().unwrap();
    let r = Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    r
}

fn relu(args: &[&str]) -> Run {
    run(args, &[], None)
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One line on stderr, `relu: ` and no control character in it.
fn one_clean_line(r: &Run) {
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(r.stderr.starts_with("relu: "), "{:?}", r.stderr);
    assert!(!r.stderr.trim_end_matches('\n').chars().any(|c| c.is_control()), "{:?}", r.stderr);
}

#[test]
fn a_csv_field_in_a_message_is_escaped_and_cut() {
    let d = tempfile::tempdir().unwrap();
    // a terminal escape and a quoted newline: shown as `\u{1b}` and `\n`, never sent to the terminal
    let p = d.path().join("esc.csv");
    fs::write(&p, b"a,b\n1,\"\x1b[31mRED\nX\"\n").unwrap();
    for cmd in ["stats", "apply"] {
        let r = relu(&[cmd, s(&p)]);
        assert_eq!(r.code, 1, "{cmd}: {}", r.stderr);
        one_clean_line(&r);
        assert!(r.stderr.contains("line 2, field 2: '\\u{1b}[31mRED\\nX' is not a number"), "{}", r.stderr);
    }
    // the first record under --no-header goes through another path
    fs::write(&p, b"\x1b]0;pwned\x07,1\n").unwrap();
    let r = relu(&["stats", "--no-header", s(&p)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_clean_line(&r);
    assert!(r.stderr.contains("'\\u{1b}]0;pwned\\u{7}' is not a number (--no-header)"), "{}", r.stderr);
    // a 1 MB field makes a short message: its first 40 characters and an ellipsis
    let mut big = b"a,b\n1,".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    big.push(b'\n');
    fs::write(&p, &big).unwrap();
    let r = relu(&["stats", s(&p)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_clean_line(&r);
    assert!(r.stderr.len() < 300, "{} bytes", r.stderr.len());
    assert!(r.stderr.contains(&format!("'{}…' is not a number", "x".repeat(40))), "{}", r.stderr);
}

/// A legitimate wide row (10⁶ numbers, 19.6 MB) is refused naming the limit and how to raise it;
/// raised, it is read; a bad limit is a usage error.
#[test]
fn a_record_past_the_limit_names_the_limit_and_how_to_raise_it() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("wide.csv");
    let row = vec!["-1.2345678901234567"; 1_000_000].join(",");
    fs::write(&p, format!("{row}\n{row}\n")).unwrap();
    let r = relu(&["stats", "--json", s(&p)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_clean_line(&r);
    assert!(r.stderr.contains("line 1") && r.stderr.contains("longer than 16 MiB"), "{}", r.stderr);
    assert!(r.stderr.contains("RELU_MAX_RECORD="), "says how to raise the limit: {}", r.stderr);
    let r = run(&["stats", "--json", s(&p)], &[("RELU_MAX_RECORD", "32")], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\"elements\":2000000"), "{}", r.stdout);
    for bad in ["0", "abc", "5000", "-1"] {
        let r = run(&["stats", "--json", s(&p)], &[("RELU_MAX_RECORD", bad)], None);
        assert_eq!(r.code, 2, "RELU_MAX_RECORD={bad}: {}", r.stderr);
        assert!(r.stderr.contains("RELU_MAX_RECORD"), "{}", r.stderr);
    }
}

/// A deflated `.npz` member whose bytes are damaged inflates to a garbled header: the message is
/// the corruption (as NumPy's "Bad CRC-32"), naming the member, not "cannot parse the header".
#[test]
fn a_corrupt_deflated_member_is_reported_as_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let mut bytes = fs::read(fixture("npz/savez_compressed.npz")).unwrap();
    // inside member a.npy's deflate stream, where the flip garbles its header's text
    bytes[67] ^= 0x55;
    let p = d.path().join("c.npz");
    fs::write(&p, &bytes).unwrap();
    let out = d.path().join("o.npz");
    for args in [vec!["stats", s(&p)], vec!["inspect", s(&p)], vec!["apply", s(&p), "-o", s(&out)]] {
        let r = relu(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(first.contains("c.npz:a: corrupt member"), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("header"), "{args:?}: {}", r.stderr);
    }
    assert!(!out.exists());
}

/// `merge-stats` says what differs, in plain words and values.
#[test]
fn merge_stats_says_what_differs() {
    let d = tempfile::tempdir().unwrap();
    let x = fixture("oracle/mlp_healthy_layer1_pre.npy");
    let relu_json = relu(&["stats", "--json", "--act", "relu", s(&x)]).stdout;
    let none_json = relu(&["stats", "--json", s(&x)]).stdout;
    let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
    fs::write(&a, &relu_json).unwrap();
    fs::write(&b, &none_json).unwrap();
    let r = relu(&["merge-stats", s(&a), s(&b)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("different activations ('relu' and none)"), "{}", r.stderr);
    assert!(!r.stderr.contains("Some(") && !r.stderr.contains("None"), "{}", r.stderr);
    // the same unit count and axis, but one active_count list short of its count
    let mut v: serde_json::Value = serde_json::from_str(&relu_json).unwrap();
    v["units"]["active_count"].as_array_mut().unwrap().pop();
    fs::write(&b, v.to_string()).unwrap();
    let r = relu(&["merge-stats", s(&a), s(&b)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("'count' 128 but 'active_count' holds 127 values"), "{}", r.stderr);
    assert!(!r.stderr.contains("128 units on axis 1 and 128 units on axis 1"), "{}", r.stderr);
}

#[test]
fn hist_refuses_an_extension_it_does_not_write_and_a_threshold_past_one() {
    let d = tempfile::tempdir().unwrap();
    let x = fixture("oracle/mlp_healthy_layer1_pre.npy");
    let jpg = d.path().join("out.jpg");
    let r = relu(&["hist", s(&x), "-o", s(&jpg)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(".jpg") && r.stderr.contains(".svg") && r.stderr.contains("--format"), "{}", r.stderr);
    assert!(!jpg.exists(), "nothing written");
    // --format says what to write whatever the name; no extension is text
    relu(&["hist", s(&x), "--format", "svg", "-o", s(&jpg)]);
    assert!(fs::read_to_string(&jpg).unwrap().contains("<svg"));
    let bars = d.path().join("bars");
    assert_eq!(relu(&["hist", s(&x), "-o", s(&bars)]).code, 0);
    // a fraction of a unit's elements lies in [0, 1]
    for cmd in ["hist", "stats"] {
        for t in ["5", "1.5", "-0.1", "nan"] {
            let r = relu(&[cmd, "--dead-threshold", t, s(&x)]);
            assert_eq!(r.code, 2, "{cmd} --dead-threshold {t}: {}", r.stderr);
        }
        for t in ["0", "1", "0.5"] {
            let r = relu(&[cmd, "--dead-threshold", t, s(&x)]);
            assert_eq!(r.code, 0, "{cmd} --dead-threshold {t}: {}", r.stderr);
        }
    }
}

/// A usage mistake exits 2 whether the input is a file or stdin; stdin twice is one.
#[test]
fn usage_errors_exit_2_on_stdin_too() {
    let ints = fixture("npy/valid/int_i1_5x6.npy");
    let r = relu(&["hist", "--act", "leaky", s(&ints)]);
    assert_eq!(r.code, 2, "file: {}", r.stderr);
    let r = run(&["hist", "--act", "leaky", "-"], &[], Some(fs::read(&ints).unwrap()));
    assert_eq!(r.code, 2, "stdin: {}", r.stderr);
    assert!(r.stderr.contains("<stdin>") && r.stderr.contains("needs a float type"), "{}", r.stderr);
    for cmd in ["stats", "inspect", "hist"] {
        let r = run(&[cmd, "-", "-"], &[], Some(fs::read(&ints).unwrap()));
        assert_eq!(r.code, 2, "{cmd} - -: {}", r.stderr);
        assert!(r.stderr.contains("stdin (-) can be given once"), "{cmd}: {}", r.stderr);
    }
}

/// The table says how many of the near-dead units are dead (near dead counts them too).
#[test]
fn the_stats_table_says_how_many_near_dead_units_are_dead() {
    let x = fixture("oracle/mlp_healthy_layer1_pre.npy");
    let r = relu(&["stats", "--act", "relu", s(&x)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r.stdout.lines().find(|l| l.trim_start().starts_with("near dead")).unwrap();
    assert!(line.contains("14  (7 of them dead; active < 1% of the time)"), "{line}");
    let dead = r.stdout.lines().find(|l| l.trim_start().starts_with("dead ")).unwrap();
    assert!(dead.contains("7  ["), "{dead}");
}

/// On a terminal, `stats` clears its progress bar before printing: the table starts on a line of
/// its own, not glued to the bar (util-linux `script` gives the pseudo-terminal, as the hist
/// colour tests use).
#[test]
#[cfg(target_os = "linux")]
fn stats_on_a_terminal_starts_its_table_on_a_clean_line() {
    let x = fixture("oracle/mlp_healthy_layer1_pre.npy");
    let bin = assert_cmd::cargo::cargo_bin("relu");
    let o = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} stats --progress always {} {}", bin.display(), x.display(), x.display()),
            "/dev/null",
        ])
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs the pty tests");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("stats ["), "the bar was drawn: {text:?}");
    let head = format!("{}  float32", x.display());
    let starts: Vec<usize> = text.match_indices(&head).map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 2, "{text:?}");
    for i in starts {
        let before = &text[..i];
        // what precedes the table: a line end, or the bar's line cleared (`ESC[2K`, `ESC[K`, CR)
        let clean = before.is_empty()
            || before.ends_with('\n')
            || before.ends_with('\r')
            || before.ends_with("\x1b[2K")
            || before.ends_with("\x1b[K")
            || before.ends_with("\x1b[0K");
        assert!(clean, "the table is glued to the bar: {:?}", &before[before.len().saturating_sub(80)..]);
    }
}
