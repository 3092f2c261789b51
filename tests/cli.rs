//! End-to-end tests of the `relu` binary on real files (no Python needed).
//!
//! * the `.npy` corpus in `fixtures/npy` (valid files: relu against a bit-pattern reference computed
//!   here; invalid files: refused with exit 1, the file named, no output);
//! * the PyTorch oracle in `fixtures/oracle` (relu / leaky / prelu / grad, bit for bit);
//! * the I/O contract of SPEC §1, §3 and §5: stdin/stdout, atomic output, `--in-place`, `--dtype`,
//!   usage errors, a closed stdout, `inspect --json`, `--version`.
//!
//! Outputs are read with a strict parser written here ([`parse_numpy_written`]): it accepts only
//! the header layout `numpy.save` writes (version 1.0, 64-byte aligned, little-endian descr), so a
//! test also fails when the output is readable but not written "as NumPy writes it".

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use relu::dtype::DType;
use relu::format::npy as lib_npy;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ------------------------------------------------------------------------------------ helpers

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// What one run of the binary left behind.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "want exit 0; stderr: {}", self.stderr);
        self
    }
}

fn relu<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    relu_with_stdin(args, None)
}

fn relu_with_stdin<I, S>(args: I, stdin: Option<Vec<u8>>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::cargo_bin("relu").expect("the relu binary");
    cmd.args(args).timeout(Duration::from_secs(120));
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let o = cmd.output().expect("run relu");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    // A panic is a bug whatever the exit code (SPEC §5).
    assert!(!stderr.contains("panicked"), "relu panicked: {stderr}");
    Run {
        // None: killed by a signal.
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr,
    }
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An element type as a `.npy` descr spells it: kind `f`/`i`/`u` and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Elem {
    kind: char,
    size: usize,
}

const F16: Elem = Elem { kind: 'f', size: 2 };
const F32: Elem = Elem { kind: 'f', size: 4 };
const F64: Elem = Elem { kind: 'f', size: 8 };

impl Elem {
    /// `('<f4')` → (f4, big-endian = false).
    fn parse(descr: &str) -> (Elem, bool) {
        let (order, rest) = descr.split_at(1);
        let kind = rest.chars().next().unwrap();
        let size = rest[1..].parse().unwrap();
        (Elem { kind, size }, order == ">")
    }

    /// The descr NumPy writes for this type on a little-endian machine.
    fn le_descr(self) -> String {
        let o = if self.size == 1 { '|' } else { '<' };
        format!("{o}{}{}", self.kind, self.size)
    }

    fn numpy_name(self) -> String {
        match self.kind {
            'f' => format!("float{}", self.size * 8),
            'i' => format!("int{}", self.size * 8),
            'u' => format!("uint{}", self.size * 8),
            k => panic!("kind {k}"),
        }
    }
}

/// A `.npy` array: header fields and the raw data bytes in the file's own byte order.
#[derive(Debug)]
struct Arr {
    descr: String,
    fortran: bool,
    shape: Vec<u64>,
    data: Vec<u8>,
}

impl Arr {
    fn elem(&self) -> (Elem, bool) {
        Elem::parse(&self.descr)
    }

    /// Every element's bit pattern as a little-endian-read u64 (zero-extended).
    fn words(&self) -> Vec<u64> {
        let (e, big) = self.elem();
        to_words(&self.data, e.size, big)
    }
}

fn to_words(data: &[u8], size: usize, big: bool) -> Vec<u64> {
    assert_eq!(data.len() % size, 0);
    data.chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            if big {
                b[..size].reverse();
            }
            u64::from_le_bytes(b)
        })
        .collect()
}

fn from_words(words: &[u64], size: usize, big: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * size);
    for w in words {
        let mut b = w.to_le_bytes()[..size].to_vec();
        if big {
            b.reverse();
        }
        out.extend(b);
    }
    out
}

/// Any valid `.npy` (the corpus has odd spellings): the library's header reader, plus the data.
fn read_any(path: &Path) -> Arr {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = lib_npy::read_header(&mut &bytes[..]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let (e, _) = Elem::parse(&h.descr);
    let start = h.data_offset as usize;
    let len = h.elements as usize * e.size;
    Arr { descr: h.descr, fortran: h.fortran_order, shape: h.shape, data: bytes[start..start + len].to_vec() }
}

/// Parses only what `numpy.save` writes for a small little-endian array: `\x93NUMPY`, version
/// 1.0, `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, spaces, `\n`, data starting
/// at a multiple of 64 and nothing after the data.
fn parse_numpy_written(bytes: &[u8]) -> Result<Arr, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("no .npy magic: {:?}", &bytes[..bytes.len().min(10)]));
    }
    if (bytes[6], bytes[7]) != (1, 0) {
        return Err(format!("version {}.{}, want 1.0", bytes[6], bytes[7]));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let off = 10 + hlen;
    if !off.is_multiple_of(64) || bytes.len() < off {
        return Err(format!("data offset {off} (file {} bytes): want a multiple of 64", bytes.len()));
    }
    let text = std::str::from_utf8(&bytes[10..off]).map_err(|e| e.to_string())?;
    let Some(body) = text.strip_suffix('\n') else {
        return Err(format!("header does not end in a newline: {text:?}"));
    };
    let body = body.trim_end_matches(' ');
    let bad = || format!("not numpy.save's header layout: {text:?}");
    let rest = body.strip_prefix("{'descr': '").ok_or_else(bad)?;
    let (descr, rest) = rest.split_once("', 'fortran_order': ").ok_or_else(bad)?;
    let (fortran, rest) = rest.split_once(", 'shape': (").ok_or_else(bad)?;
    let (shape_s, rest) = rest.split_once(')').ok_or_else(bad)?;
    if rest != ", }" {
        return Err(bad());
    }
    let fortran = match fortran {
        "True" => true,
        "False" => false,
        _ => return Err(bad()),
    };
    let shape: Vec<u64> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if lib_npy::shape_repr(&shape) != format!("({shape_s})") {
        return Err(format!("shape spelled {shape_s:?}, numpy writes {}", lib_npy::shape_repr(&shape)));
    }
    if descr.starts_with('>') {
        return Err(format!("big-endian output {descr}: SPEC §3 wants native little-endian"));
    }
    let (e, _) = Elem::parse(descr);
    if descr != e.le_descr() {
        return Err(format!("descr {descr}, numpy writes {}", e.le_descr()));
    }
    let want = shape.iter().product::<u64>() as usize * e.size;
    let data = bytes[off..].to_vec();
    if data.len() != want {
        return Err(format!("{} data bytes, shape {shape:?} × {descr} needs {want}", data.len()));
    }
    Ok(Arr { descr: descr.to_string(), fortran, shape, data })
}

fn read_output(path: &Path) -> Arr {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_numpy_written(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `.npy` file as relu's own writer makes it (little-endian).
fn npy_le(dtype: DType, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let mut v = lib_npy::write_header(dtype, fortran, shape);
    v.extend_from_slice(data);
    v
}

/// A `.npy` file with any descr (big-endian ones included), laid out as numpy.save does.
fn npy_raw(descr: &str, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {}, }}",
        if fortran { "True" } else { "False" },
        lib_npy::shape_repr(shape)
    );
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.resize(total - 1, b' ');
    v.push(b'\n');
    v.extend_from_slice(data);
    v
}

fn f32_le(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_le(xs: &[f64]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn is_nan_bits(e: Elem, w: u64) -> bool {
    match e.size {
        2 => w & 0x7c00 == 0x7c00 && w & 0x03ff != 0,
        4 => f32::from_bits(w as u32).is_nan(),
        8 => f64::from_bits(w).is_nan(),
        _ => false,
    }
}

fn sign_bit(e: Elem, w: u64) -> bool {
    w >> (e.size * 8 - 1) & 1 == 1
}

/// relu on one element's bits (SPEC §2): negative non-NaN → +0, NaN keeps its bits (f16 NaNs come
/// out quiet, as PyTorch's f16→f32→f16 round trip leaves them), −0 stays −0; integers max(x, 0).
fn relu_bits(e: Elem, w: u64) -> u64 {
    match (e.kind, e.size) {
        ('f', _) if is_nan_bits(e, w) => {
            if e.size == 2 {
                w | 0x0200
            } else {
                w
            }
        }
        ('f', 2) => {
            if w & 0x8000 != 0 && w & 0x7fff != 0 {
                0
            } else {
                w
            }
        }
        ('f', 4) => {
            if f32::from_bits(w as u32) < 0.0 {
                0
            } else {
                w
            }
        }
        ('f', 8) => {
            if f64::from_bits(w) < 0.0 {
                0
            } else {
                w
            }
        }
        ('i', n) => {
            let shift = 64 - 8 * n as u32;
            if (((w << shift) as i64) >> shift) < 0 {
                0
            } else {
                w
            }
        }
        ('u', _) => w,
        _ => panic!("no relu for {e:?}"),
    }
}

/// accept.py's `same_bits`: equal bits, except that NaNs need only agree in place and sign.
fn diff_bits(e: Elem, got: &[u64], want: &[u64]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} elements, want {}", got.len(), want.len()));
    }
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| {
            let (g, w) = (got[i], want[i]);
            if e.kind == 'f' && is_nan_bits(e, w) {
                !is_nan_bits(e, g) || sign_bit(e, g) != sign_bit(e, w)
            } else {
                g != w
            }
        })
        .collect();
    bad.first().map(|&i| {
        format!(
            "{} of {} elements differ, first at flat index {i}: got {:#x} want {:#x}",
            bad.len(),
            got.len(),
            got[i],
            want[i]
        )
    })
}

fn assert_bits(what: &str, e: Elem, got: &[u64], want: &[u64]) {
    if let Some(why) = diff_bits(e, got, want) {
        panic!("{what}: {why}");
    }
}

fn f32_words(xs: &[f32]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits() as u64).collect()
}

fn f64_words(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

// ------------------------------------------------------------------------------------ corpus

fn expected_corpus() -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(fixtures().join("npy/expected.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        _ => panic!("expected.json is not an object"),
    }
}

#[test]
fn valid_corpus_relu_matches_reference() {
    let exp = expected_corpus();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, e) in exp.iter().filter(|(n, _)| !n.starts_with("invalid/")) {
        let src = fixtures().join("npy/valid").join(name);
        let dir = tmpdir();
        let out = dir.path().join("out.npy");
        let r = relu([OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        if !e["supported"].as_bool().unwrap() {
            if r.code != 1 || !r.stderr.contains(name.as_str()) || !listing(dir.path()).is_empty() {
                failures.push(format!(
                    "{name}: unsupported {} must exit 1 naming the file with no output; exit {}, files {:?}, stderr {:?}",
                    e["descr"], r.code, listing(dir.path()), r.stderr
                ));
            }
            continue;
        }
        if r.code != 0 {
            failures.push(format!("{name}: exit {}: {}", r.code, r.stderr.trim()));
            continue;
        }
        let input = read_any(&src);
        let want_shape: Vec<u64> = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(input.shape, want_shape, "{name}: fixture shape vs expected.json");
        let got = match parse_numpy_written(&fs::read(&out).unwrap()) {
            Ok(a) => a,
            Err(why) => {
                failures.push(format!("{name}: {why}"));
                continue;
            }
        };
        let (el, _) = input.elem();
        let want: Vec<u64> = input.words().iter().map(|&w| relu_bits(el, w)).collect();
        let mut probs = Vec::new();
        if got.descr != el.le_descr() {
            probs.push(format!("descr {} want {}", got.descr, el.le_descr()));
        }
        if got.shape != want_shape {
            probs.push(format!("shape {:?} want {want_shape:?}", got.shape));
        }
        if got.fortran != e["fortran_order"].as_bool().unwrap() {
            probs.push(format!("fortran_order {} want {}", got.fortran, e["fortran_order"]));
        }
        // Exact bits, NaN payloads included (SPEC §2: "same bits").
        if got.data != from_words(&want, el.size, false) {
            let g = got.words();
            let i = (0..want.len()).find(|&i| g.get(i) != Some(&want[i]));
            probs.push(format!(
                "data differs from relu, first at flat index {i:?}: got {:#x?} want {:#x?}",
                i.and_then(|i| g.get(i)),
                i.map(|i| want[i])
            ));
        }
        if !probs.is_empty() {
            failures.push(format!("{name}: {}", probs.join("; ")));
        }
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} supported corpus files were checked");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn invalid_corpus_is_refused_without_output() {
    let exp = expected_corpus();
    let dir = fixtures().join("npy/invalid");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "fixtures/npy/invalid has {} files", files.len());
    let mut failures = Vec::new();
    for src in &files {
        let base = src.file_name().unwrap().to_string_lossy().into_owned();
        assert!(exp.contains_key(&format!("invalid/{base}")), "{base} is not in expected.json");
        let out_dir = tmpdir();
        let out = out_dir.path().join("out.npy");
        let r = relu([OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        let left = listing(out_dir.path());
        if r.code != 1 || !r.stderr.contains(&base) || !left.is_empty() {
            failures.push(format!(
                "{base}: want exit 1, the file named on stderr, no output; got exit {}, files {left:?}, stderr {:?}",
                r.code,
                r.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn invalid_corpus_on_stdin_is_refused() {
    // The same files through stdin: exit 1, nothing but an error (no partial .npy on stdout).
    let mut failures = Vec::new();
    for name in ["data_truncated.npy", "bad_magic.npy", "header_extra_key.npy", "empty_file.npy"] {
        let bytes = fs::read(fixtures().join("npy/invalid").join(name)).unwrap();
        let r = relu_with_stdin(["apply", "-"], Some(bytes));
        if r.code != 1 || r.stderr.trim().is_empty() {
            failures.push(format!("{name}: exit {}, stderr {:?}", r.code, r.stderr));
        }
        if name != "data_truncated.npy" && !r.stdout.is_empty() {
            failures.push(format!("{name}: wrote {} bytes to stdout", r.stdout.len()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------------------------------ oracle

#[test]
fn oracle_cases_match_pytorch_bit_for_bit() {
    let d = fixtures().join("oracle");
    let man: Value = serde_json::from_str(&fs::read_to_string(d.join("manifest.json")).unwrap()).unwrap();
    let path = |k: &Value| d.join(k.as_str().unwrap()).display().to_string();
    let num = |k: &Value| format!("{}", k.as_f64().unwrap());
    let tmp = tmpdir();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, c) in man["cases"].as_array().unwrap().iter().enumerate() {
        let op = c["op"].as_str().unwrap();
        if !["relu", "leaky", "prelu", "grad"].contains(&op) {
            continue;
        }
        // The argument mapping of accept.py's section_oracle.
        let out = tmp.path().join(format!("oracle_{i}.npy"));
        let mut argv = vec![
            "apply".to_string(),
            path(&c["input"]),
            "-o".into(),
            out.display().to_string(),
            "--act".into(),
            op.into(),
        ];
        if op == "leaky" {
            argv.extend(["--slope".into(), num(&c["slope"])]);
        }
        if op == "prelu" {
            argv.extend(["--alpha".into(), path(&c["alpha"])]);
        }
        if op == "grad" {
            let of = c["act"].as_str().unwrap();
            argv.extend(["--of".into(), of.into()]);
            if of == "leaky" {
                argv.extend(["--slope".into(), num(&c["slope"])]);
            }
            if of == "prelu" {
                argv.extend(["--alpha".into(), path(&c["alpha"])]);
            }
            if let Some(up) = c.get("upstream").filter(|u| !u.is_null()) {
                argv.extend(["--upstream".into(), path(up)]);
            }
        }
        if let Some(ax) = c.get("channel_axis").filter(|a| !a.is_null()) {
            argv.extend(["--channel-axis".into(), ax.to_string()]);
        }
        let name = format!("{op}:{}:{} -> {}", c["act"], c["slope"], c["output"]);
        let r = relu(&argv);
        if r.code != 0 {
            failures.push(format!("{name}: exit {}: {} (argv {argv:?})", r.code, r.stderr.trim()));
            continue;
        }
        let got = read_output(&out);
        let want = read_any(&d.join(c["output"].as_str().unwrap()));
        let (ge, _) = got.elem();
        let (we, _) = want.elem();
        if ge != we || got.shape != want.shape || got.fortran != want.fortran {
            failures.push(format!(
                "{name}: got {} {:?} fortran={}, want {} {:?} fortran={}",
                got.descr, got.shape, got.fortran, want.descr, want.shape, want.fortran
            ));
            continue;
        }
        if let Some(why) = diff_bits(we, &got.words(), &want.words()) {
            failures.push(format!("{name}: {why}"));
            continue;
        }
        checked += 1;
    }
    assert_eq!(checked + failures.len(), 14, "manifest cases of relu/leaky/prelu/grad");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

// ------------------------------------------------------------------------------------ I/O

/// A mix of values for f32 tests: signs, zeros, infinities, NaN payloads, subnormals.
fn f32_sample() -> Vec<f32> {
    let mut v = vec![
        -1.5,
        2.5,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0xffc1_2345),
        f32::from_bits(0x7f80_0001), // signalling
        f32::from_bits(0x0000_0001), // smallest subnormal
        f32::from_bits(0x8000_0001),
        f32::MAX,
        f32::MIN,
        1e-8,
        -1e-9,
        0.1,
    ];
    // Enough values that SIMD bodies and scalar tails both run.
    v.extend((0..1000).map(|i| ((i * 7919 % 2001) as f32 - 1000.0) / 37.0));
    v
}

#[test]
fn stdin_to_stdout() {
    let xs = f32_sample();
    let shape = [xs.len() as u64];
    let input = npy_le(DType::F32, false, &shape, &f32_le(&xs));
    let want: Vec<u64> = f32_words(&xs).iter().map(|&w| relu_bits(F32, w)).collect();
    for args in [vec!["apply", "-"], vec!["apply"], vec!["apply", "-", "-o", "-"]] {
        let r = relu_with_stdin(&args, Some(input.clone()));
        r.ok();
        let got = parse_numpy_written(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!((got.descr.as_str(), got.shape.as_slice()), ("<f4", &shape[..]));
        assert_bits(&format!("{args:?}"), F32, &got.words(), &want);
        assert_eq!(got.data, from_words(&want, 4, false), "{args:?}: NaN payloads");
    }
}

/// Special bit patterns of one float type: NaNs (quiet, signalling, both signs, payloads),
/// subnormals, ±0, ±inf, ±max.
fn specials(e: Elem) -> Vec<u64> {
    match e.size {
        2 => vec![
            0x7e01, 0xfe01, 0x7c01, 0xfc10, 0x7fff, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0000, 0x8000, 0x7c00, 0xfc00,
            0x7bff, 0xfbff, 0x3c00, 0xbc00,
        ],
        4 => vec![
            0x7fc0_0001,
            0xffc1_2345,
            0x7f80_0001,
            0xff80_0100,
            0x7fff_ffff,
            0x0000_0001,
            0x8000_0001,
            0x007f_ffff,
            0x807f_ffff,
            0,
            0x8000_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x3f80_0000,
            0xbf80_0000,
        ],
        _ => vec![
            0x7ff8_0000_0000_0001,
            0xfff8_0000_dead_beef,
            0x7ff0_0000_0000_0001,
            0xfff0_0000_0001_0000,
            0x7fff_ffff_ffff_ffff,
            0x0000_0000_0000_0001,
            0x8000_0000_0000_0001,
            0,
            0x8000_0000_0000_0000,
            0x7ff0_0000_0000_0000,
            0xfff0_0000_0000_0000,
            0x7fef_ffff_ffff_ffff,
            0xffef_ffff_ffff_ffff,
            0x3ff0_0000_0000_0000,
            0xbff0_0000_0000_0000,
        ],
    }
}

#[test]
fn nan_payloads_subnormals_and_signed_zeros_for_every_float_type() {
    let dir = tmpdir();
    let mut failures = Vec::new();
    for e in [F16, F32, F64] {
        // The specials at the start, in the middle of a SIMD body and in the tail.
        let sp = specials(e);
        let mut words: Vec<u64> = sp.clone();
        words.extend((0..100u64).map(|i| if i % 2 == 0 { sp[0] } else { sp[(i as usize) % sp.len()] }));
        words.extend(sp.iter().rev());
        for big in [false, true] {
            let descr = format!("{}f{}", if big { '>' } else { '<' }, e.size);
            let src = dir.path().join(format!("{}.npy", descr.replace(['<', '>'], "")));
            let out = dir.path().join("out.npy");
            fs::write(&src, npy_raw(&descr, false, &[words.len() as u64], &from_words(&words, e.size, big))).unwrap();
            let r = relu([OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), out.as_os_str()]);
            if r.code != 0 {
                failures.push(format!("{descr}: exit {}: {}", r.code, r.stderr));
                continue;
            }
            let got = read_output(&out);
            let want: Vec<u64> = words.iter().map(|&w| relu_bits(e, w)).collect();
            if got.descr != e.le_descr() {
                failures.push(format!("{descr}: output descr {}", got.descr));
            }
            let g = got.words();
            if let Some(i) = (0..want.len()).find(|&i| g[i] != want[i]) {
                failures.push(format!(
                    "{descr}: flat index {i}: input {:#x} got {:#x} want {:#x}",
                    words[i], g[i], want[i]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every f16 bit pattern, through relu, leaky and prelu: computed in f32, rounded once to f16,
/// with PReLU slopes first rounded to f16 (SPEC §2).
#[test]
fn every_f16_value_through_relu_leaky_and_prelu() {
    let dir = tmpdir();
    let all: Vec<u64> = (0..=u16::MAX as u64).collect();
    let src = dir.path().join("all.npy");
    let out = dir.path().join("out.npy");
    let to32 = |w: u64| half::f16::from_bits(w as u16).to_f32();
    let to16 = |x: f32| half::f16::from_f32(x).to_bits() as u64;
    let apply = |input: &[u8], args: &[&str]| -> Vec<u64> {
        fs::write(&src, input).unwrap();
        let mut argv: Vec<&OsStr> = vec!["apply".as_ref(), src.as_os_str(), "-o".as_ref(), out.as_os_str()];
        argv.extend(args.iter().map(OsStr::new));
        relu(&argv).ok();
        let got = read_output(&out);
        assert_eq!(got.descr, "<f2", "{args:?}");
        got.words()
    };
    let flat = npy_le(DType::F16, false, &[all.len() as u64], &from_words(&all, 2, false));

    let want: Vec<u64> = all.iter().map(|&w| relu_bits(F16, w)).collect();
    assert_eq!(apply(&flat, &[]), want, "relu on every f16");

    let want: Vec<u64> = all
        .iter()
        .map(|&w| {
            let x = to32(w);
            to16(if x > 0.0 { x } else { x * 0.2f32 })
        })
        .collect();
    assert_bits("leaky 0.2 on every f16", F16, &apply(&flat, &["--act", "leaky", "--slope", "0.2"]), &want);

    // (1, 3, 65536): every value once per channel.
    let alphas = [0.1f64, 1.0 / 3.0, 0.7];
    let three: Vec<u64> = all.iter().cycle().take(3 * all.len()).copied().collect();
    let input = npy_le(DType::F16, false, &[1, 3, all.len() as u64], &from_words(&three, 2, false));
    let want: Vec<u64> = three
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let a = half::f16::from_f64(alphas[i / all.len()]).to_f32();
            let x = to32(w);
            to16(if x > 0.0 { x } else { x * a })
        })
        .collect();
    let got = apply(&input, &["--act", "prelu", "--alpha", "0.1,0.3333333333333333,0.7"]);
    assert_bits("prelu on every f16", F16, &got, &want);
}

#[test]
fn output_may_name_the_input() {
    let dir = tmpdir();
    let p = dir.path().join("same.npy");
    let xs = f32_sample();
    fs::write(&p, npy_le(DType::F32, false, &[xs.len() as u64], &f32_le(&xs))).unwrap();
    relu([OsStr::new("apply"), p.as_os_str(), "-o".as_ref(), p.as_os_str()]).ok();
    let got = read_output(&p);
    let want: Vec<u64> = f32_words(&xs).iter().map(|&w| relu_bits(F32, w)).collect();
    assert_eq!(got.words(), want);
    assert_eq!(listing(dir.path()), names(&["same.npy"]), "leftovers");
}

#[test]
fn failed_run_keeps_existing_target_and_leaves_no_temp_files() {
    let dir = tmpdir();
    let xs = f32_sample();
    let good = npy_le(DType::F32, false, &[xs.len() as u64], &f32_le(&xs));
    let target = dir.path().join("target.npy");
    let bad = dir.path().join("bad.npy");
    fs::write(&target, b"the old content").unwrap();
    fs::write(&bad, &good[..good.len() - 1000]).unwrap();
    let r = relu([OsStr::new("apply"), bad.as_os_str(), "-o".as_ref(), target.as_os_str()]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("bad.npy"), "stderr must name the input: {}", r.stderr);
    assert_eq!(fs::read(&target).unwrap(), b"the old content");
    assert_eq!(listing(dir.path()), names(&["bad.npy", "target.npy"]));

    // A usage error after the target exists: the same.
    let r = relu([
        OsStr::new("apply"),
        bad.as_os_str(),
        "-o".as_ref(),
        target.as_os_str(),
        "--act".as_ref(),
        "prelu".as_ref(),
    ]);
    assert!(r.code == 1 || r.code == 2, "exit {}", r.code);
    assert_eq!(fs::read(&target).unwrap(), b"the old content");
    assert_eq!(listing(dir.path()), names(&["bad.npy", "target.npy"]));
}

#[test]
fn failure_after_the_output_was_started_removes_the_temporary_file() {
    // Through stdin the data length is only found short while streaming, after the temporary
    // output file exists: it must be removed and the old target kept.
    let dir = tmpdir();
    let xs = f32_sample();
    let good = npy_le(DType::F32, false, &[200_000], &f32_le(&xs.repeat(200)[..200_000]));
    let target = dir.path().join("target.npy");
    fs::write(&target, b"the old content").unwrap();
    let r = relu_with_stdin(
        [OsStr::new("apply"), "-".as_ref(), "-o".as_ref(), target.as_os_str()],
        Some(good[..good.len() - 1000].to_vec()),
    );
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("stdin"), "stderr must name stdin: {}", r.stderr);
    assert_eq!(fs::read(&target).unwrap(), b"the old content");
    assert_eq!(listing(dir.path()), names(&["target.npy"]), "leftovers");

    // The rename into place fails (the target is a non-empty directory): no temporary file stays.
    let src = dir.path().join("x.npy");
    fs::write(&src, &good).unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("keep"), b"k").unwrap();
    let r = relu([OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), sub.as_os_str()]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("sub"), "stderr must name the target: {}", r.stderr);
    assert_eq!(listing(dir.path()), names(&["sub", "target.npy", "x.npy"]), "leftovers");
    assert_eq!(listing(&sub), names(&["keep"]));
}

#[test]
fn in_place_little_endian() {
    let dir = tmpdir();
    let p = dir.path().join("x.npy");
    let xs = f32_sample();
    let before = npy_le(DType::F32, false, &[xs.len() as u64], &f32_le(&xs));
    fs::write(&p, &before).unwrap();
    relu([OsStr::new("apply"), "--in-place".as_ref(), p.as_os_str()]).ok();
    let after = fs::read(&p).unwrap();
    assert_eq!(after.len(), before.len());
    let got = parse_numpy_written(&after).unwrap();
    let want: Vec<u64> = f32_words(&xs).iter().map(|&w| relu_bits(F32, w)).collect();
    assert_eq!(got.words(), want);
    assert_eq!(listing(dir.path()), names(&["x.npy"]));
}

#[test]
fn in_place_big_endian_stays_big_endian() {
    let dir = tmpdir();
    let xs = f32_sample();
    let ws = f32_words(&xs);
    let shape = [4u64, xs.len() as u64 / 4];
    let before = npy_raw(">f4", false, &shape, &from_words(&ws, 4, true));
    let p = dir.path().join("be.npy");
    fs::write(&p, &before).unwrap();
    relu([OsStr::new("apply"), "--in-place".as_ref(), p.as_os_str()]).ok();
    let after = fs::read(&p).unwrap();
    assert_eq!(after.len(), before.len());
    let hlen = before.len() - ws.len() * 4;
    assert_eq!(after[..hlen], before[..hlen], "the header (descr '>f4') must not change");
    let want: Vec<u64> = ws.iter().map(|&w| relu_bits(F32, w)).collect();
    assert_eq!(to_words(&after[hlen..], 4, true), want, "big-endian relu'd data");

    // f64 and f16 big-endian, Fortran order, with --act leaky.
    let ys = [-2.0f64, 3.0, -0.0, f64::NAN, -8.0, 0.5];
    let p = dir.path().join("be8.npy");
    fs::write(&p, npy_raw(">f8", true, &[2, 3], &from_words(&f64_words(&ys), 8, true))).unwrap();
    relu([
        OsStr::new("apply"),
        "--in-place".as_ref(),
        p.as_os_str(),
        "--act".as_ref(),
        "leaky".as_ref(),
        "--slope".as_ref(),
        "0.25".as_ref(),
    ])
    .ok();
    let got = read_any(&p);
    assert_eq!((got.descr.as_str(), got.fortran), (">f8", true));
    let want: Vec<u64> = ys.iter().map(|&x| (if x > 0.0 { x } else { x * 0.25 }).to_bits()).collect();
    assert_bits("in-place leaky >f8", F64, &got.words(), &want);
    assert_eq!(got.words()[2], (-0.0f64).to_bits(), "leaky(-0) = -0");

    let hs: [u16; 6] = [0xbc00, 0x3c00, 0x7c01, 0xfc00, 0x8000, 0x0001];
    let p = dir.path().join("be2.npy");
    let words: Vec<u64> = hs.iter().map(|&h| h as u64).collect();
    fs::write(&p, npy_raw(">f2", false, &[6], &from_words(&words, 2, true))).unwrap();
    relu([OsStr::new("apply"), "--in-place".as_ref(), p.as_os_str()]).ok();
    let got = read_any(&p);
    assert_eq!(got.descr, ">f2");
    assert_eq!(got.words(), vec![0, 0x3c00, 0x7e01, 0, 0x8000, 0x0001]);
}

#[test]
fn in_place_refuses_a_dtype_change_and_leaves_the_file() {
    let dir = tmpdir();
    let p = dir.path().join("x.npy");
    let before = npy_le(DType::F32, false, &[3], &f32_le(&[-1.0, 2.0, -3.0]));
    fs::write(&p, &before).unwrap();
    let r = relu([OsStr::new("apply"), "--in-place".as_ref(), p.as_os_str(), "--dtype".as_ref(), "f16".as_ref()]);
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("dtype"), "{}", r.stderr);
    assert_eq!(fs::read(&p).unwrap(), before);
}

#[test]
fn dtype_conversions_run_the_activation_first_then_round_once() {
    let dir = tmpdir();
    let run = |input: &[u8], args: &[&str]| -> Arr {
        let src = dir.path().join("in.npy");
        let out = dir.path().join("out.npy");
        fs::write(&src, input).unwrap();
        let mut argv: Vec<&OsStr> = vec!["apply".as_ref(), src.as_os_str(), "-o".as_ref(), out.as_os_str()];
        argv.extend(args.iter().map(OsStr::new));
        relu(&argv).ok();
        read_output(&out)
    };
    let xs: Vec<f32> = vec![
        -1.5,
        2.5,
        -0.0,
        f32::NAN,
        1e-8,     // f16: underflows to +0
        70000.0,  // f16: overflows to +inf
        -1e-9,    // relu first gives +0; rounding first would give -0
        0.1,      // f16 0x2e66
        65519.0,  // f16: 65504
        65520.0,  // f16: inf
        3e-8,     // f16: smallest subnormal (0x0001)
        -70000.0, // relu: +0
    ];
    let f32in = npy_le(DType::F32, false, &[xs.len() as u64], &f32_le(&xs));
    let relu32 = |x: f32| if x < 0.0 { 0.0 } else { x };

    let got = run(&f32in, &["--dtype", "f16"]);
    assert_eq!(got.descr, "<f2");
    let want: Vec<u64> = xs.iter().map(|&x| half::f16::from_f32(relu32(x)).to_bits() as u64).collect();
    assert_bits("f32 -> f16", F16, &got.words(), &want);
    assert_eq!(
        got.words()[4..11],
        [0, 0x7c00, 0, 0x2e66, 0x7bff, 0x7c00, 0x0001],
        "f16 rounding of 1e-8, 7e4, -1e-9, 0.1, 65519, 65520, 3e-8"
    );

    let got = run(&f32in, &["--dtype", "f64"]);
    assert_eq!(got.descr, "<f8");
    let want: Vec<u64> = xs.iter().map(|&x| (relu32(x) as f64).to_bits()).collect();
    assert_bits("f32 -> f64", F64, &got.words(), &want);

    let got = run(&f32in, &["--dtype", "f32"]);
    assert_eq!(got.descr, "<f4");
    let want: Vec<u64> = xs.iter().map(|&x| relu_bits(F32, x.to_bits() as u64)).collect();
    assert_bits("f32 -> f32", F32, &got.words(), &want);

    // f64 → f32, leaky computed in f64 then rounded once.
    let ys: Vec<f64> =
        vec![-1.0 - 2f64.powi(-30), 1.0 + 2f64.powi(-30), -1e-300, 1e300, -3.3, -0.0, f64::NEG_INFINITY, 0.1];
    let f64in = npy_le(DType::F64, false, &[ys.len() as u64], &f64_le(&ys));
    // f64 → f16 rounds once: 1 + 2^-11 + 2^-40 is just above a tie, so it rounds up to
    // 1 + 2^-10 (0x3c01); going through f32 first would make it an exact tie and give 1.0.
    let tie = [1.0 + 2f64.powi(-11) + 2f64.powi(-40), -(2f64.powi(-25)) * (1.0 + 2f64.powi(-40))];
    let got = run(&npy_le(DType::F64, false, &[2], &f64_le(&tie)), &["--dtype", "f16"]);
    assert_eq!(got.words(), [0x3c01, 0], "f64 -> f16 must round once");
    let got = run(&f64in, &["--dtype", "f32"]);
    assert_eq!(got.descr, "<f4");
    let want: Vec<u64> = ys.iter().map(|&y| (if y < 0.0 { 0.0 } else { y } as f32).to_bits() as u64).collect();
    assert_bits("f64 relu -> f32", F32, &got.words(), &want);
    assert_eq!(got.words()[2], 0, "relu(-1e-300) must be +0, not a rounded -0");
    let got = run(&f64in, &["--dtype", "f32", "--act", "leaky", "--slope", "0.3"]);
    let want: Vec<u64> = ys.iter().map(|&y| (if y > 0.0 { y } else { y * 0.3 } as f32).to_bits() as u64).collect();
    assert_bits("f64 leaky -> f32", F32, &got.words(), &want);
    let got = run(&f64in, &["--dtype", "f16", "--act", "leaky", "--slope", "0.3"]);
    let want: Vec<u64> =
        ys.iter().map(|&y| half::f16::from_f64(if y > 0.0 { y } else { y * 0.3 }).to_bits() as u64).collect();
    assert_bits("f64 leaky -> f16", F16, &got.words(), &want);

    // f16 → f64: exact widening of the f16 result.
    let hs: Vec<u16> = vec![0xbc00, 0x3c00, 0x0001, 0x8001, 0x7bff, 0xfc00, 0x7c00, 0x8000];
    let words: Vec<u64> = hs.iter().map(|&h| h as u64).collect();
    let f16in = npy_le(DType::F16, false, &[hs.len() as u64], &from_words(&words, 2, false));
    let got = run(&f16in, &["--dtype", "f64"]);
    let want: Vec<u64> =
        hs.iter().map(|&h| half::f16::from_bits(relu_bits(F16, h as u64) as u16).to_f64().to_bits()).collect();
    assert_bits("f16 -> f64", F64, &got.words(), &want);

    // integers: converted to the float type first.
    let is: Vec<i32> = vec![-5, 0, 7, 70000, i32::MIN, i32::MAX, 2049];
    let i32in =
        npy_le(DType::I32, false, &[is.len() as u64], &is.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>());
    let got = run(&i32in, &["--dtype", "f16"]);
    let want: Vec<u64> = is.iter().map(|&i| half::f16::from_f32((i as f32).max(0.0)).to_bits() as u64).collect();
    assert_bits("i32 -> f16", F16, &got.words(), &want);
    let got = run(&i32in, &["--dtype", "f64"]);
    let want: Vec<u64> = is.iter().map(|&i| (i.max(0) as f64).to_bits()).collect();
    assert_bits("i32 -> f64", F64, &got.words(), &want);
}

#[test]
fn integers_keep_their_type_under_relu_and_grad() {
    let dir = tmpdir();
    let src = dir.path().join("i.npy");
    let out = dir.path().join("o.npy");
    let xs: Vec<i16> = vec![-32768, -1, 0, 1, 32767, -300, 300];
    fs::write(&src, npy_raw(">i2", false, &[7], &xs.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>())).unwrap();
    relu([OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), out.as_os_str()]).ok();
    let got = read_output(&out);
    assert_eq!(got.descr, "<i2");
    let want: Vec<u8> = xs.iter().flat_map(|x| (*x).max(0).to_le_bytes()).collect();
    assert_eq!(got.data, want);

    let up = dir.path().join("g.npy");
    let gs: Vec<i16> = vec![5, 6, 7, 8, 9, 10, 11];
    fs::write(&up, npy_le(DType::I16, false, &[7], &gs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()))
        .unwrap();
    relu([
        OsStr::new("apply"),
        src.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--act".as_ref(),
        "grad".as_ref(),
        "--upstream".as_ref(),
        up.as_os_str(),
    ])
    .ok();
    let got = read_output(&out);
    let want: Vec<u8> = xs.iter().zip(&gs).flat_map(|(&x, &g)| (if x <= 0 { 0i16 } else { g }).to_le_bytes()).collect();
    assert_eq!((got.descr.as_str(), got.data), ("<i2", want));
}

#[test]
fn grad_with_upstream_values() {
    let dir = tmpdir();
    let xs: Vec<f32> = vec![-2.0, -0.0, 0.0, 3.0, f32::NAN, f32::NEG_INFINITY, 1e-30, -1e-30];
    let gs: Vec<f32> = vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, -70.0, 80.0];
    let x = dir.path().join("x.npy");
    let g = dir.path().join("g.npy");
    let out = dir.path().join("dx.npy");
    fs::write(&x, npy_le(DType::F32, false, &[8], &f32_le(&xs))).unwrap();
    fs::write(&g, npy_le(DType::F32, false, &[8], &f32_le(&gs))).unwrap();
    let base = |of: &str| -> Vec<String> {
        vec![
            "apply".into(),
            x.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--act".into(),
            "grad".into(),
            "--of".into(),
            of.into(),
            "--upstream".into(),
            g.display().to_string(),
        ]
    };
    relu(base("relu")).ok();
    let want: Vec<f32> = xs.iter().zip(&gs).map(|(&x, &g)| if x <= 0.0 { 0.0 } else { g }).collect();
    assert_bits("grad relu", F32, &read_output(&out).words(), &f32_words(&want));

    let mut a = base("leaky");
    a.extend(["--slope".into(), "-0.5".into()]);
    relu(&a).ok();
    let want: Vec<f32> = xs.iter().zip(&gs).map(|(&x, &g)| if x > 0.0 { g } else { g * -0.5 }).collect();
    assert_bits("grad leaky", F32, &read_output(&out).words(), &f32_words(&want));
}

#[test]
fn integer_leaky_without_dtype_is_a_usage_error() {
    let dir = tmpdir();
    let src = dir.path().join("i.npy");
    let out = dir.path().join("o.npy");
    fs::write(&src, npy_le(DType::I16, false, &[3], &[1, 0, 0xff, 0xff, 2, 0])).unwrap();
    for act in ["leaky", "prelu"] {
        let mut argv =
            vec![OsStr::new("apply"), src.as_os_str(), "-o".as_ref(), out.as_os_str(), "--act".as_ref(), act.as_ref()];
        if act == "prelu" {
            argv.extend([OsStr::new("--alpha"), "0.1".as_ref()]);
        }
        let r = relu(&argv);
        assert_eq!(r.code, 2, "{act}: stderr {}", r.stderr);
        assert!(r.stderr.contains("dtype"), "{act}: must mention --dtype: {}", r.stderr);
        assert!(!out.exists(), "{act}: no output");
    }
}

#[test]
fn negative_slope_is_taken_as_a_value() {
    let dir = tmpdir();
    let src = dir.path().join("i.npy");
    let out = dir.path().join("o.npy");
    let xs: Vec<i16> = vec![-4, 3, 0, -1, 100];
    fs::write(&src, npy_le(DType::I16, false, &[5], &xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()))
        .unwrap();
    relu([
        OsStr::new("apply"),
        src.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--act".as_ref(),
        "leaky".as_ref(),
        "--dtype".as_ref(),
        "f32".as_ref(),
        "--slope".as_ref(),
        "-0.5".as_ref(),
    ])
    .ok();
    let got = read_output(&out);
    assert_eq!(got.descr, "<f4");
    // leaky(0) = 0·a = -0 for a negative slope.
    let want = f32_words(&[2.0, 3.0, -0.0, 0.5, 100.0]);
    assert_eq!(got.words(), want);

    // The same with --slope=-0.5 and on a float input.
    let f = dir.path().join("f.npy");
    fs::write(&f, npy_le(DType::F32, false, &[3], &f32_le(&[-2.0, 2.0, -0.1]))).unwrap();
    relu([
        OsStr::new("apply"),
        f.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "-a".as_ref(),
        "leaky".as_ref(),
        "--slope=-0.5".as_ref(),
    ])
    .ok();
    assert_eq!(read_output(&out).words(), f32_words(&[1.0, 2.0, -0.1f32 * -0.5f32]));
}

#[test]
fn usage_errors_exit_2() {
    let src = fixtures().join("npy/valid/f4le_7.npy");
    let r = relu([OsStr::new("apply"), "--act".as_ref(), "nonsense".as_ref(), src.as_os_str()]);
    assert_eq!(r.code, 2, "--act nonsense: {}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("nonsense"), "{}", r.stderr);
    // --of without --act grad, prelu without --alpha, stdin to a terminal is not testable here.
    let r = relu([OsStr::new("apply"), src.as_os_str(), "--of".as_ref(), "leaky".as_ref()]);
    assert_eq!(r.code, 2, "--of without grad: {}", r.stderr);
    let r = relu([OsStr::new("apply"), src.as_os_str(), "--act".as_ref(), "prelu".as_ref()]);
    assert_eq!(r.code, 2, "prelu without --alpha: {}", r.stderr);
    assert!(r.stderr.contains("--alpha"), "{}", r.stderr);
    let r = relu(["frobnicate"]);
    assert_eq!(r.code, 2, "unknown subcommand");
}

#[test]
fn missing_input_names_the_file() {
    let dir = tmpdir();
    let out = dir.path().join("o.npy");
    let missing = dir.path().join("no_such_input.npy");
    let r = relu([OsStr::new("apply"), missing.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no_such_input.npy"), "{}", r.stderr);
    assert!(listing(dir.path()).is_empty());
    let r = relu([OsStr::new("inspect"), missing.as_os_str()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no_such_input.npy"), "{}", r.stderr);
}

#[test]
fn upstream_shape_mismatch_names_both_files() {
    let dir = tmpdir();
    let x = dir.path().join("activations.npy");
    let g = dir.path().join("upstream_grad.npy");
    let out = dir.path().join("o.npy");
    fs::write(&x, npy_le(DType::F32, false, &[3, 4], &f32_le(&[1.0; 12]))).unwrap();
    fs::write(&g, npy_le(DType::F32, false, &[4, 3], &f32_le(&[1.0; 12]))).unwrap();
    let r = relu([
        OsStr::new("apply"),
        x.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--act".as_ref(),
        "grad".as_ref(),
        "--upstream".as_ref(),
        g.as_os_str(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("activations.npy") && r.stderr.contains("upstream_grad.npy"),
        "must name both files: {}",
        r.stderr
    );
    assert!(!out.exists());

    // Same shape, other element type: also refused.
    fs::write(&g, npy_le(DType::F64, false, &[3, 4], &f64_le(&[1.0; 12]))).unwrap();
    let r = relu([
        OsStr::new("apply"),
        x.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--act".as_ref(),
        "grad".as_ref(),
        "--upstream".as_ref(),
        g.as_os_str(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("activations.npy") && r.stderr.contains("upstream_grad.npy"));
    assert!(!out.exists());
}

#[test]
fn prelu_with_the_wrong_number_of_slopes_fails() {
    let dir = tmpdir();
    let x = dir.path().join("x.npy");
    let out = dir.path().join("o.npy");
    fs::write(&x, npy_le(DType::F32, false, &[2, 3, 4], &f32_le(&[-1.0; 24]))).unwrap();
    for alpha in ["0.1,0.2", "0.1,0.2,0.3,0.4"] {
        let r = relu([
            OsStr::new("apply"),
            x.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--act".as_ref(),
            "prelu".as_ref(),
            "--alpha".as_ref(),
            alpha.as_ref(),
        ]);
        assert!(r.code == 1 || r.code == 2, "--alpha {alpha}: exit {}", r.code);
        assert!(r.stderr.contains("slopes") || r.stderr.contains("alpha"), "{}", r.stderr);
        assert!(!out.exists());
    }
    // 1-D input: exactly one slope.
    fs::write(&x, npy_le(DType::F32, false, &[3], &f32_le(&[-1.0; 3]))).unwrap();
    let r = relu([
        OsStr::new("apply"),
        x.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--act".as_ref(),
        "prelu".as_ref(),
        "--alpha".as_ref(),
        "0.1,0.2,0.3".as_ref(),
    ]);
    assert!(r.code == 1 || r.code == 2, "1-D with 3 slopes: exit {}", r.code);
    assert!(!out.exists());
}

#[test]
fn prelu_fortran_order_gives_the_c_order_values() {
    prelu_c_vs_fortran(2, 3, 2, 5);
}

/// Large enough for several chunks, with channel runs that straddle chunk boundaries.
#[test]
fn prelu_fortran_order_across_chunks() {
    prelu_c_vs_fortran(2, 3, 181, 197);
}

fn prelu_c_vs_fortran(n: usize, c: usize, h: usize, w: usize) {
    let dir = tmpdir();
    let val = |i: usize, j: usize, k: usize, l: usize| -> f32 {
        let t = (((i * c + j) * h + k) * w + l) as f32;
        if (i + j + k + l).is_multiple_of(3) {
            -(t + 0.7)
        } else {
            t * 0.3 - 4.0
        }
    };
    let mut c_data = Vec::new();
    for i in 0..n {
        for j in 0..c {
            for k in 0..h {
                for l in 0..w {
                    c_data.push(val(i, j, k, l));
                }
            }
        }
    }
    let mut f_data = Vec::new();
    for l in 0..w {
        for k in 0..h {
            for j in 0..c {
                for i in 0..n {
                    f_data.push(val(i, j, k, l));
                }
            }
        }
    }
    let shape = [n as u64, c as u64, h as u64, w as u64];
    let cp = dir.path().join("c.npy");
    let fp = dir.path().join("f.npy");
    fs::write(&cp, npy_le(DType::F32, false, &shape, &f32_le(&c_data))).unwrap();
    fs::write(&fp, npy_le(DType::F32, true, &shape, &f32_le(&f_data))).unwrap();
    let alphas = [0.1f64, 0.5, 2.0];
    let apply = |src: &Path, out: &Path, extra: &[&str]| {
        let mut argv: Vec<&OsStr> = vec![
            "apply".as_ref(),
            src.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--act".as_ref(),
            "prelu".as_ref(),
            "--alpha".as_ref(),
            "0.1,0.5,2".as_ref(),
        ];
        argv.extend(extra.iter().map(OsStr::new));
        relu(&argv).ok();
        read_output(out)
    };
    let co = apply(&cp, &dir.path().join("co.npy"), &[]);
    let fo = apply(&fp, &dir.path().join("fo.npy"), &[]);
    assert_eq!((co.fortran, fo.fortran), (false, true));
    assert_eq!((co.shape.clone(), fo.shape.clone()), (shape.to_vec(), shape.to_vec()));
    // Reference in C order: x > 0 ? x : x·a[c] in f32, the slope rounded to f32.
    assert_eq!(alphas.len(), c);
    let mut want = Vec::new();
    for i in 0..n {
        for (j, &a) in alphas.iter().enumerate() {
            for k in 0..h {
                for l in 0..w {
                    let x = val(i, j, k, l);
                    want.push(if x > 0.0 { x } else { x * a as f32 });
                }
            }
        }
    }
    assert_eq!(co.words(), f32_words(&want), "C order prelu");
    let fw = fo.words();
    let mut f_as_c = Vec::new();
    for i in 0..n {
        for j in 0..c {
            for k in 0..h {
                for l in 0..w {
                    f_as_c.push(fw[i + n * (j + c * (k + h * l))]);
                }
            }
        }
    }
    assert_eq!(f_as_c, f32_words(&want), "Fortran order prelu, read back in C order");

    // The channel axis counted from the end (-3 is axis 1 of a 4-D array): the same values.
    let fo2 = apply(&fp, &dir.path().join("fo2.npy"), &["--channel-axis", "-3"]);
    assert_eq!(fo2.words(), fw);
}

#[test]
fn closed_stdout_ends_quietly() {
    let dir = tmpdir();
    let big = dir.path().join("big.npy");
    let xs: Vec<f32> = (0..2_000_000).map(|i| (i % 1000) as f32 - 500.0).collect();
    fs::write(&big, npy_le(DType::F32, false, &[2000, 1000], &f32_le(&xs))).unwrap();
    let mut child = std::process::Command::cargo_bin("relu")
        .unwrap()
        .arg("apply")
        .arg(&big)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // like `| head -c 100`
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(&first[..6], b"\x93NUMPY");
    assert_eq!(o.status.code(), Some(0), "status {:?}, stderr {stderr}", o.status);
    assert!(!stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"), "stderr: {stderr}");
}

#[test]
fn inspect_json_reports_the_header() {
    let src = fixtures().join("npy/valid/f4be_fortran_6x5x4.npy");
    let r = relu([OsStr::new("inspect"), "--json".as_ref(), src.as_os_str()]);
    r.ok();
    let text = String::from_utf8(r.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let j: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        j,
        serde_json::json!({
            "input": src.display().to_string(),
            "format": "npy",
            "dtype": "float32",
            "shape": [6, 5, 4],
            "order": "F",
            "elements": 120,
            "bytes": 480,
        })
    );
}

#[test]
fn inspect_json_over_the_whole_valid_corpus() {
    let exp = expected_corpus();
    let valid: Vec<(&String, &Value)> = exp.iter().filter(|(n, _)| !n.starts_with("invalid/")).collect();
    let mut argv = vec!["inspect".to_string(), "--json".into()];
    argv.extend(valid.iter().map(|(n, _)| fixtures().join("npy/valid").join(n).display().to_string()));
    let r = relu(&argv);
    r.ok();
    let text = String::from_utf8(r.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), valid.len());
    for ((name, e), line) in valid.iter().zip(lines) {
        let j: Value = serde_json::from_str(line).unwrap();
        assert!(j["input"].as_str().unwrap().ends_with(name.as_str()), "{line}");
        assert_eq!(j["format"], "npy", "{name}");
        assert_eq!(j["shape"], e["shape"], "{name}");
        let order = if e["fortran_order"].as_bool().unwrap() { "F" } else { "C" };
        assert_eq!(j["order"], order, "{name}");
        let elements: u64 = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product();
        assert_eq!(j["elements"], elements, "{name}");
        if e["supported"].as_bool().unwrap() {
            let (el, _) = Elem::parse(e["descr"].as_str().unwrap());
            assert_eq!(j["dtype"], el.numpy_name(), "{name}");
            assert_eq!(j["bytes"], elements * el.size as u64, "{name}");
        }
    }
}

#[test]
fn inspect_text_table_and_stdin() {
    let src = fixtures().join("npy/valid/int_i2_5x6.npy");
    let r = relu([OsStr::new("inspect"), src.as_os_str()]);
    r.ok();
    let text = String::from_utf8(r.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0], ["FILE", "FORMAT", "DTYPE", "SHAPE", "ORDER", "ELEMENTS", "BYTES"]);
    // The file name may hold spaces: check the last seven fields.
    assert_eq!(rows[1][rows[1].len() - 7..], ["npy", "int16", "(5,", "6)", "C", "30", "60"]);

    let r = relu_with_stdin(["inspect", "--json", "-"], Some(fs::read(&src).unwrap()));
    r.ok();
    let j: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!((j["dtype"].as_str(), j["elements"].as_u64()), (Some("int16"), Some(30)));
}

#[test]
fn version_mentions_the_kernel_level() {
    let r = relu(["--version"]);
    r.ok();
    let v = String::from_utf8(r.stdout).unwrap();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    let level =
        v.split("kernel:").nth(1).unwrap_or_else(|| panic!("no 'kernel:' in {v:?}")).trim().trim_end_matches(')');
    assert!(!level.is_empty(), "empty kernel level in {v:?}");
}

/// `completions` writes a script each shell accepts (bash checked with `bash -n` when bash is
/// there), naming every subcommand; `man` is one roff page (one title), with a section per
/// subcommand listing its options and examples, and no pointer to a page that is not installed.
#[test]
fn completions_and_man_page() {
    let subs = ["apply", "stats", "hist", "batch", "merge-stats", "inspect"];
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = relu(["completions", shell]);
        r.ok();
        let text = String::from_utf8(r.stdout.clone()).unwrap();
        for s in subs {
            assert!(text.contains(s), "{shell}: no {s}");
        }
        if shell == "bash" {
            let dir = tmpdir();
            let script = dir.path().join("relu.bash");
            fs::write(&script, &text).unwrap();
            if let Ok(o) = std::process::Command::new("bash").arg("-n").arg(&script).output() {
                assert!(o.status.success(), "bash -n: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
    assert_ne!(relu(["completions", "tcsh"]).code, 0);
    let r = relu(["man"]);
    r.ok();
    let page = String::from_utf8(r.stdout.clone()).unwrap();
    assert!(page.lines().take(5).any(|l| l.starts_with(".TH relu 1")), "{}", &page[..200]);
    assert_eq!(page.matches(".TH ").count(), 1, "one page");
    assert!(!page.contains("(1)"), "no see-also to relu-apply(1) and the like: nothing installs them");
    // each subcommand's section holds its own flags and examples
    for (sub, flag, example) in [
        ("apply", "\\-\\-in\\-place", "relu apply x.npy \\-\\-act leaky"),
        ("stats", "\\-\\-dead\\-threshold", "relu stats \\-\\-act relu layer1.npy"),
        ("hist", "\\-\\-log\\-y", "relu hist \\-\\-from\\-stats merged.json"),
        ("batch", "\\-\\-out\\-dir", "relu batch \\-\\-out\\-dir out/ acts/"),
        ("merge\\-stats", "\\-\\-output", "relu merge\\-stats shard\\-*.jsonl"),
        ("inspect", "\\-\\-json", "relu inspect \\-\\-json *.npy"),
    ] {
        let head = format!(".SH \"COMMAND: RELU {}\"", sub.to_uppercase());
        let at = page.find(&head).unwrap_or_else(|| panic!("no section {head}"));
        let section = &page[at..];
        let section = &section[..section[1..].find("\n.SH ").map_or(section.len(), |i| i + 1)];
        assert!(section.contains(flag), "{sub}: no {flag}");
        assert!(section.contains(example), "{sub}: no example {example}:\n{section}");
    }
    for s in subs {
        assert!(page.contains(&format!("\\fBrelu {}\\fR", s.replace('-', "\\-"))), "{s} listed");
    }
    assert!(page.contains("RELU_MAX_RECORD"), "the environment is documented");
}

/// Progress goes to stderr only: drawn with `--progress always` (bytes against the input's
/// size), never when stderr is not a terminal under `auto`, never with `-q`; stdout unchanged.
#[test]
fn progress_only_on_stderr_and_only_when_asked() {
    let input = fixtures().join("oracle/prelu_nchw_f32_x.npy");
    let dir = tmpdir();
    let out = dir.path().join("y.npy");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> =
            vec!["apply".into(), input.display().to_string(), "-o".into(), out.display().to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let drawn = relu(args(&["--progress", "always"]));
    drawn.ok();
    assert!(drawn.stderr.contains("apply") && drawn.stderr.contains("B/"), "{:?}", drawn.stderr);
    for quiet in [vec![], vec!["-q", "--progress", "always"], vec!["--progress", "never"]] {
        let r = relu(args(&quiet));
        r.ok();
        assert!(r.stderr.is_empty(), "{quiet:?}: {:?}", r.stderr);
    }
    for cmd in [vec!["stats", "--progress", "always"], vec!["hist", "--progress", "always"]] {
        let mut a = cmd.clone();
        let p = input.display().to_string();
        a.push(&p);
        let r = relu(&a);
        r.ok();
        assert!(r.stderr.contains(cmd[0]), "{cmd:?}: {:?}", r.stderr);
        let plain = relu([cmd[0], p.as_str()]);
        assert_eq!(plain.stdout, r.stdout, "{cmd:?}: stdout unchanged");
    }
}

/// Every subcommand's `--help` ends with examples.
#[test]
fn every_subcommand_help_has_examples() {
    for sub in ["apply", "stats", "hist", "batch", "merge-stats", "inspect"] {
        let r = relu([sub, "--help"]);
        r.ok();
        let text = String::from_utf8(r.stdout.clone()).unwrap();
        let tail = &text[text.find("Examples:").unwrap_or_else(|| panic!("{sub}: no examples"))..];
        assert!(tail.lines().skip(1).any(|l| l.trim_start().starts_with("relu ")), "{sub}: {tail}");
    }
}
