//! Memory bounded by construction: inputs that would make relu allocate without limit run under
//! `RLIMIT_AS` = 256 MiB and are refused with a one-line message naming the file (and the line,
//! for CSV), exit 1, and no temporary file left behind.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const LIMIT: u64 = 256 << 20;

/// What a test writes into relu's stdin.
type Feed = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// relu under the address-space limit, with `stdin` fed from a thread (it may stop reading).
fn limited(args: &[&str], dir: &Path, stdin: Option<Feed>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_relu"));
    c.args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    // RLIMIT_AS counts address space, and glibc reserves 64 MiB of it for each thread's malloc
    // arena (up to 8 per core) whether used or not: with -j 8 that reservation alone can pass the
    // limit depending on which threads happen to allocate at once. Two arenas make the limit
    // measure what relu allocates.
    c.env("MALLOC_ARENA_MAX", "2");
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    // SAFETY: setrlimit is a plain syscall, safe between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let l = rustix::process::Rlimit { current: Some(LIMIT), maximum: Some(LIMIT) };
            rustix::process::setrlimit(rustix::process::Resource::As, l).map_err(std::io::Error::from)
        });
    }
    let mut child = c.spawn().unwrap();
    let feeder = stdin.map(|f| {
        let mut w = child.stdin.take().unwrap();
        std::thread::spawn(move || f(&mut w))
    });
    let out = child.wait_with_output().unwrap();
    if let Some(t) = feeder {
        t.join().unwrap();
    }
    out
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("relu-tmp") || n.starts_with("out"))
        .collect()
}

/// `n` MiB of `byte`, written in pieces; a closed pipe (relu stopped reading) ends it quietly.
fn flood(w: &mut dyn Write, head: &[u8], byte: u8, mib: usize) {
    if w.write_all(head).is_err() {
        return;
    }
    let piece = vec![byte; 1 << 20];
    for _ in 0..mib {
        if w.write_all(&piece).is_err() {
            return;
        }
    }
}

#[test]
fn a_csv_record_without_a_line_end_is_refused_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    for args in [&["apply", "--from", "csv", "-", "-o", "out.csv"][..], &["stats", "--from", "csv", "-"][..]] {
        let feed: Feed = Box::new(|w| flood(w, b"a,b\n1,2\n3,", b'7', 600));
        let o = limited(args, d.path(), Some(feed));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("relu: <stdin>: line 3: "), "the message names stdin and the line: {err}");
        assert!(err.contains("line 3") && err.contains("longer than 16 MiB"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }
}

#[test]
fn an_unterminated_quote_is_refused_at_the_limit_naming_its_line() {
    let d = tempfile::tempdir().unwrap();
    // a file this time: 40 MiB inside one quote, then more lines that must not be buffered
    let p = d.path().join("q.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    f.write_all(b"1,2\n3,4\n5,\"").unwrap();
    for _ in 0..40 {
        f.write_all(&[b'x'; 1 << 20]).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.write_all(b"6,7\n").unwrap();
    drop(f);
    let o = limited(&["apply", "q.csv", "-o", "out.csv"], d.path(), None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("q.csv") && err.contains("line 3") && err.contains("unterminated quote"), "{err}");
    assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    // a long record under the limit is fine
    let p = d.path().join("wide.csv");
    let row: Vec<String> = (0..200_000).map(|i| format!("{}", i as f64 - 1e5)).collect();
    std::fs::write(&p, format!("{}\n{}\n", row.join(","), row.join(","))).unwrap();
    let o = limited(&["stats", "--json", "wide.csv"], d.path(), None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Records as long as relu reads (16 MiB less a little; commas: 16 M empty fields, NaN each)
/// cost bytes in flight, not records × threads: `-j 8` stays under the limit and the results are
/// whole. (Before, each thread held ~580 MB for such a record.)
#[test]
fn records_of_16_mib_stay_under_the_limit_at_any_thread_count() {
    let d = tempfile::tempdir().unwrap();
    let cols = (16 << 20) - 64;
    let mut f = std::io::BufWriter::new(std::fs::File::create(d.path().join("wide.csv")).unwrap());
    let row = vec![b','; cols - 1];
    for _ in 0..4 {
        f.write_all(&row).unwrap();
        f.write_all(b"\n").unwrap();
    }
    // then a narrow tail would be an error (field count): the table is 4 rows of `cols`
    drop(f);
    for args in [
        &["apply", "-j", "8", "wide.csv", "-o", "out.npy"][..],
        &["apply", "-j", "8", "wide.csv", "-o", "out.csv"],
        &["apply", "-j", "8", "--act", "leaky", "--slope", "0.5", "wide.csv", "-o", "out.tsv"],
    ] {
        let o = limited(args, d.path(), None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
    let npy = std::fs::read(d.path().join("out.npy")).unwrap();
    let head = relu::format::npy::write_header(relu::dtype::DType::F64, false, &[4, cols as u64]);
    assert_eq!(&npy[..head.len()], &head[..]);
    assert_eq!(npy.len() - head.len(), 4 * cols * 8);
    assert!(npy[head.len()..].chunks_exact(8).all(|v| f64::from_le_bytes(v.try_into().unwrap()).is_nan()));
    let csv = std::fs::read(d.path().join("out.csv")).unwrap();
    assert_eq!(csv.len(), 4 * cols, "every empty field copied through");
    let tsv = std::fs::read(d.path().join("out.tsv")).unwrap();
    assert_eq!(tsv.len(), 4 * cols);
    assert_eq!(tsv.iter().filter(|&&c| c == b'\t').count(), 4 * (cols - 1));
}

/// A float64 `.npy` header for `shape` (any size it promises), with `data` after it.
fn npy(shape: &[u64], data: &[u8]) -> Vec<u8> {
    let mut v = relu::format::npy::write_header(relu::dtype::DType::F64, false, shape);
    v.extend_from_slice(data);
    v
}

#[test]
fn headers_that_promise_terabytes_allocate_nothing() {
    let d = tempfile::tempdir().unwrap();
    // valid for NumPy: no elements, but 10**12 units on axis 1
    std::fs::write(d.path().join("wide.npy"), npy(&[0, 1_000_000_000_000], b"")).unwrap();
    for args in [
        &["stats", "wide.npy"][..],
        &["stats", "--json", "wide.npy"],
        &["apply", "wide.npy", "-o", "out.npy", "--stats", "out.json"],
        &["hist", "--active-rate", "wide.npy"],
    ] {
        let o = limited(args, d.path(), None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("wide.npy") && err.contains("1000000000000 units"), "{args:?}: {err}");
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }
    // a unit axis that fits is fine on the same empty array
    let o = limited(&["stats", "--unit-axis", "0", "wide.npy"], d.path(), None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // 8 TB promised, 16 bytes there: refused before any allocation, file or stdin
    let big = npy(&[1_000_000_000_000], &[0; 16]);
    std::fs::write(d.path().join("big.npy"), &big).unwrap();
    for (args, input) in [
        (&["apply", "big.npy", "-o", "out.npy"][..], None),
        (&["stats", "big.npy"], None),
        (&["hist", "big.npy"], None),
        (&["apply", "-", "-o", "out.npy"], Some(big.clone())),
        (&["stats", "-"], Some(big.clone())),
    ] {
        let feed = input.map(|b| {
            Box::new(move |w: &mut dyn Write| drop(w.write_all(&b))) as Box<dyn FnOnce(&mut dyn Write) + Send>
        });
        let o = limited(args, d.path(), feed);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }
}

#[test]
fn an_npz_member_that_inflates_past_its_size_is_refused() {
    let d = tempfile::tempdir().unwrap();
    // a deflated member that declares 144 bytes (a header and 2 float64) but inflates to 300 MiB
    let body = npy(&[2], &vec![0u8; 300 << 20]);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("x.npy", opts).unwrap();
    zip.write_all(&body).unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    drop(body);
    let declared = (npy(&[2], &[0; 16]).len() as u32).to_le_bytes();
    // the sizes in the local header (offset 22) and the central directory entry (offset 24)
    bytes[22..26].copy_from_slice(&declared);
    let cd = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    bytes[cd + 24..cd + 28].copy_from_slice(&declared);
    std::fs::write(d.path().join("bomb.npz"), &bytes).unwrap();
    for args in [
        &["apply", "bomb.npz", "-o", "out.npz"][..],
        &["stats", "bomb.npz"],
        &["apply", "bomb.npz", "--member", "x", "-o", "out.npy"],
    ] {
        let o = limited(args, d.path(), None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("bomb.npz"), "{args:?}: {err}");
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }
}
