//! Bad input never panics: the header parser on arbitrary and mutated bytes, and the binary on
//! mutated and truncated copies of the valid corpus (exit 0 or 1, never a panic, no output left
//! behind on failure).

use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

fn valid_files() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/npy/valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = relu::format::npy::read_header(&mut &bytes[..]);
    }

    #[test]
    fn header_parser_never_panics_on_mutated_headers(
        file in 0usize..70, pos in 0usize..128, byte in any::<u8>(), cut in 0usize..200,
    ) {
        let files = valid_files();
        let mut bytes = std::fs::read(&files[file % files.len()]).unwrap();
        if pos < bytes.len() {
            bytes[pos] = byte;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        let _ = relu::format::npy::read_header(&mut &bytes[..]);
    }

    #[test]
    fn literal_parser_never_panics(s in "[{}()\\[\\]'\",: a-z0-9_.+-]{0,80}") {
        let _ = relu::format::npy::parse_literal(&s);
    }
}

/// Random bytes almost never pass the magic check, so they exercise one branch. Flips inside
/// the header dict of valid files (past the magic, the version and the length) reach the dict
/// parser, the dtype and shape checks: some still parse, and the refusals are of many kinds.
#[test]
fn header_flips_reach_the_parsers_behind_the_magic() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut kinds) = (0, std::collections::BTreeSet::new());
    for f in valid_files() {
        let orig = std::fs::read(&f).unwrap();
        let Ok(h) = relu::format::npy::read_header(&mut &orig[..]) else { continue };
        let dict = 10..(h.data_offset as usize).min(orig.len());
        for _ in 0..40 {
            let mut bytes = orig.clone();
            for _ in 0..1 + next() % 2 {
                let i = dict.start + (next() as usize) % dict.len();
                bytes[i] = b"'\",:()[]{}<>|01248fiubcVOTrueFalse -"[(next() % 36) as usize];
            }
            match relu::format::npy::read_header(&mut &bytes[..]) {
                Ok(_) => ok += 1,
                Err(e) => {
                    let e = format!("{e:#}");
                    kinds.insert(
                        e.split(|c: char| c.is_ascii_digit() || c == '\'' || c == '"').next().unwrap().to_string(),
                    );
                }
            }
        }
    }
    eprintln!("{ok} parsed, {} kinds of refusal", kinds.len());
    assert!(ok > 20, "{ok} flipped headers still parsed");
    assert!(kinds.len() >= 8, "only {} kinds of refusal: {kinds:#?}", kinds.len());
}

#[test]
fn binary_survives_mutated_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (k, f) in valid_files().iter().enumerate().take(60) {
        let orig = std::fs::read(f).unwrap();
        for t in 0..4 {
            let mut bytes = orig.clone();
            match t {
                0 => bytes.truncate((next() as usize) % bytes.len().max(1)),
                1 => {
                    let i = (next() as usize) % bytes.len().min(128);
                    bytes[i] = next() as u8;
                }
                2 => bytes.extend((0..(next() % 64)).map(|_| next() as u8)),
                _ => {
                    let i = 8 + (next() as usize) % 2;
                    bytes[i] = next() as u8; // the header length
                }
            }
            let input = dir.path().join(format!("m{k}_{t}.npy"));
            std::fs::write(&input, &bytes).unwrap();
            let outdir = dir.path().join(format!("out{k}_{t}"));
            std::fs::create_dir(&outdir).unwrap();
            let out = outdir.join("o.npy");
            for args in [
                vec!["apply"],
                vec!["apply", "--act", "leaky", "--dtype", "f32"],
                vec!["stats", "--json"],
                vec!["inspect"],
            ] {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_relu"));
                cmd.args(&args).arg(&input);
                if args[0] == "apply" {
                    cmd.arg("-o").arg(&out);
                }
                let o = cmd.output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(!err.contains("panicked"), "{args:?} {input:?}: {err}");
                let code = o.status.code();
                assert!(matches!(code, Some(0) | Some(1)), "{args:?} {input:?}: exit {code:?} {err}");
                if code == Some(1) {
                    assert!(err.contains(&format!("m{k}_{t}.npy")), "{args:?}: the message names the file: {err}");
                    let left: Vec<_> = std::fs::read_dir(&outdir).unwrap().collect();
                    assert!(left.is_empty(), "{args:?} {input:?}: files left behind: {left:?}");
                }
                let _ = std::fs::remove_file(&out);
            }
        }
    }
}

/// The same for CSV and `.npz`: mutated, truncated and byte-flipped copies of the shipped CSV
/// corpus and NumPy archives through apply (to CSV, `.npy` and `.npz`), stats and inspect.
#[test]
fn binary_survives_mutated_csv_and_npz() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut inputs: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("csv/valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain([root.join("npz/savez.npz"), root.join("npz/savez_compressed.npz")])
        .chain(std::fs::read_dir(root.join("safetensors/valid")).unwrap().map(|e| e.unwrap().path()))
        .collect();
    // the refusals seen, by what they say past the file's name: mutations of valid files must
    // reach the parsers behind the magic check, not stop at it
    let mut said = std::collections::BTreeSet::new();
    let mut passed = 0;
    inputs.sort();
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (k, f) in inputs.iter().enumerate() {
        let ext = f.extension().unwrap().to_str().unwrap().to_string();
        let orig = std::fs::read(f).unwrap();
        for t in 0..12 {
            let mut bytes = orig.clone();
            if ext == "safetensors" && t % 4 != 0 {
                // mostly inside the JSON header, where the library's checks are
                let n = (u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize).min(bytes.len() - 8);
                let i = 8 + (next() as usize) % n.max(1);
                bytes[i] = [b'"', b',', b'{', b'}', b'[', b']', b'1', b'9', b'x', b' '][(next() % 10) as usize];
            }
            match t % 4 {
                0 => bytes.truncate((next() as usize) % bytes.len().max(1)),
                1 => {
                    for _ in 0..3 {
                        let i = (next() as usize) % bytes.len();
                        bytes[i] = [b'"', b',', b'\n', b'\r', 0, 0xff, b'-', b'e'][(next() % 8) as usize];
                    }
                }
                2 => {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
                _ => {
                    let i = (next() as usize) % bytes.len();
                    bytes.insert(i, next() as u8);
                }
            }
            let name = format!("m{k}_{t}.{ext}");
            let input = dir.path().join(&name);
            std::fs::write(&input, &bytes).unwrap();
            let outdir = dir.path().join(format!("out{k}_{t}"));
            std::fs::create_dir(&outdir).unwrap();
            let outs = match ext.as_str() {
                "npz" => ["o.npz", "o.csv"],
                "safetensors" => ["o.safetensors", "o2.safetensors"],
                _ => ["o.csv", "o.npy"],
            };
            let mut runs: Vec<Vec<String>> =
                outs.iter().map(|o| vec!["apply".into(), "-o".into(), outdir.join(o).display().to_string()]).collect();
            runs.push(vec!["stats".into(), "--json".into()]);
            runs.push(vec!["inspect".into()]);
            for args in runs {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_relu"));
                cmd.args(&args).arg(&input);
                if args.iter().any(|a| a.ends_with("o.csv")) && ext == "npz" {
                    cmd.args(["--member", "a"]);
                }
                let o = cmd.output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(!err.contains("panicked"), "{args:?} {name}: {err}");
                let code = o.status.code();
                let inspect = args[0] == "inspect"; // one line per file, then a summary
                assert!(matches!(code, Some(0) | Some(1)), "{args:?} {name}: exit {code:?} {err}");
                if code == Some(0) {
                    passed += 1;
                }
                if code == Some(1) {
                    assert!(err.contains(&name), "{args:?}: the message names the file: {err}");
                    assert!(inspect || err.trim().lines().count() == 1, "{args:?} {name}: one line: {err}");
                    let what = err.split(&name).nth(1).unwrap_or("").trim_start_matches([':', ' ']);
                    // the kind of refusal: its words before any number or quoted text
                    said.insert(
                        what.split(|c: char| c.is_ascii_digit() || c == '\'' || c == '"')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    );
                    let left: Vec<_> = std::fs::read_dir(&outdir).unwrap().collect();
                    assert!(left.is_empty(), "{args:?} {name}: files left behind: {left:?}");
                }
                for o in outs {
                    let _ = std::fs::remove_file(outdir.join(o));
                }
            }
        }
    }
    eprintln!("{passed} runs passed, {} kinds of refusal", said.len());
    assert!(passed > 20, "only {passed} runs of mutated valid files succeeded: the mutations break too much");
    assert!(said.len() >= 15, "only {} kinds of refusal: the deeper parsers are not reached: {said:#?}", said.len());
}
