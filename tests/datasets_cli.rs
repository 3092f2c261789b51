//! Datasets and checkpoints through the binary (SPEC §6): `FILE:NAME` addressing (exact names,
//! globs, paths with `:`, `--member` as a shorthand), directories for `stats` and `hist`, the
//! `"name"` of every statistics object, `merge-stats --by name`, and `relu trend`. The files are
//! written here, byte by byte, and the expected numbers computed here from the same values.

mod common;

use common::relu;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// `rows × units` f32 values, deterministic; the units in `dead` never positive.
fn layer(seed: u64, rows: usize, units: usize, dead: &[usize]) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows * units)
        .map(|i| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((s >> 33) as f64 / (1u64 << 31) as f64 * 4.0 - 2.0) as f32;
            if dead.contains(&(i % units)) {
                -v.abs() - 0.01
            } else {
                v
            }
        })
        .collect()
}

fn npy_bytes(shape: &[usize], v: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    b
}

fn npz(path: &Path, members: &[(&str, &[usize], &[f32])]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, shape, v) in members {
        z.start_file(format!("{name}.npy"), o).unwrap();
        z.write_all(&npy_bytes(shape, v)).unwrap();
    }
    z.finish().unwrap();
}

fn safetensors(path: &Path, tensors: &[(&str, &[usize], &[f32])]) {
    let (mut header, mut data) = (Vec::new(), Vec::new());
    for (name, shape, v) in tensors {
        let start = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    let mut h = format!("{{{}}}", header.join(","));
    while h.len() % 8 != 0 {
        h.push(' ');
    }
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h.as_bytes());
    b.extend(data);
    std::fs::write(path, b).unwrap();
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn objects(so: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(so)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn dead(v: &[f32], units: usize) -> Vec<u64> {
    (0..units).filter(|&u| !v.iter().skip(u).step_by(units).any(|&x| x > 0.0)).map(|u| u as u64).collect()
}

fn relu_bits(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| if x < 0.0 { 0.0 } else { x }).collect()
}

fn npy_values(b: &[u8]) -> Vec<f32> {
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hl..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn file_colon_name_picks_members_and_tensors() {
    let d = tempfile::tempdir().unwrap();
    let (l1, l2) = (layer(1, 8, 5, &[2]), layer(2, 6, 3, &[0]));
    npz(&d.path().join("net.npz"), &[("layer1", &[8, 5], &l1), ("layer2", &[6, 3], &l2)]);
    safetensors(&d.path().join("net.safetensors"), &[("layer1", &[8, 5], &l1), ("layer2", &[6, 3], &l2)]);
    for c in ["net.npz", "net.safetensors"] {
        let addr = format!("{}:layer2", p(&d.path().join(c)));
        let out = d.path().join(format!("{c}.npy"));
        let (rc, _, err) = relu(&["apply", &addr, "-o", p(&out)], None);
        assert_eq!(rc, 0, "{err}");
        assert_eq!(npy_values(&std::fs::read(&out).unwrap()), relu_bits(&l2), "{c}");
        let (rc, so, err) = relu(&["stats", "--json", &addr], None);
        assert_eq!(rc, 0, "{err}");
        let o = objects(&so);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0]["name"], "layer2");
        assert_eq!(o[0]["units"]["dead_indices"], serde_json::json!(dead(&l2, 3)));
        // one member to stdout is an .npy; a glob picks several; none matching is an error naming the file
        let (rc, so, err) = relu(&["apply", &addr], None);
        assert_eq!(rc, 0, "{err}");
        assert_eq!(npy_values(&so), relu_bits(&l2));
        let glob = format!("{}:layer*", p(&d.path().join(c)));
        let (rc, so, err) = relu(&["stats", "--json", &glob], None);
        assert_eq!(rc, 0, "{err}");
        let names: Vec<Value> = objects(&so).iter().map(|o| o["name"].clone()).collect();
        assert_eq!(names, ["layer1", "layer2"]);
        let (rc, _, err) = relu(&["stats", &format!("{}:nope*", p(&d.path().join(c)))], None);
        assert_eq!(rc, 1, "{err}");
        assert!(err.contains(c) && err.contains("nope"), "{err}");
        let (rc, _, err) = relu(&["inspect", &glob], None);
        assert_eq!(rc, 0, "{err}");
    }
    // --member into stdout is an .npy too
    let (rc, so, err) = relu(&["apply", p(&d.path().join("net.npz")), "--member", "layer1"], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(npy_values(&so), relu_bits(&l1));
    // a glob of several members into one array's format is refused, saying what it picked
    let glob = format!("{}:layer*", p(&d.path().join("net.npz")));
    let (rc, _, err) = relu(&["apply", &glob, "-o", p(&d.path().join("x.npy"))], None);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("layer1, layer2"), "{err}");
}

#[test]
fn an_existing_path_is_a_file_first_and_plain_files_take_no_name() {
    let d = tempfile::tempdir().unwrap();
    let v = layer(3, 4, 2, &[]);
    std::fs::write(d.path().join("a:b.npy"), npy_bytes(&[4, 2], &v)).unwrap();
    let (rc, so, err) = relu(&["stats", "--json", p(&d.path().join("a:b.npy"))], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(objects(&so)[0]["name"], "a:b");
    // FILE:NAME where FILE holds one array: a usage error that says why
    std::fs::write(d.path().join("x.npy"), npy_bytes(&[4, 2], &v)).unwrap();
    let (rc, _, err) = relu(&["stats", &format!("{}:layer1", p(&d.path().join("x.npy")))], None);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("not a container"), "{err}");
    // --member mixes with plain arrays: it applies to the containers
    npz(&d.path().join("c.npz"), &[("layer1", &[4, 2], &v), ("other", &[4, 2], &v)]);
    let (rc, so, err) =
        relu(&["stats", "--json", "--member", "layer1", p(&d.path().join("x.npy")), p(&d.path().join("c.npz"))], None);
    assert_eq!(rc, 0, "{err}");
    let names: Vec<Value> = objects(&so).iter().map(|o| o["name"].clone()).collect();
    assert_eq!(names, ["x", "layer1"]);
    // ... but a --member no input can take is a mistake
    let (rc, _, err) = relu(&["stats", "--member", "layer1", p(&d.path().join("x.npy"))], None);
    assert_eq!(rc, 2, "{err}");
}

/// The mixed tree of the acceptance check: two plain files, an `.npz` and a `.safetensors`.
fn tree(root: &Path) -> Vec<(String, usize)> {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let (l1, l2, o) = (layer(4, 10, 4, &[1]), layer(5, 7, 3, &[]), layer(6, 9, 1, &[]));
    std::fs::write(root.join("b.npy"), npy_bytes(&[10, 4], &l1)).unwrap();
    std::fs::write(root.join("sub/a.npy"), npy_bytes(&[7, 3], &l2)).unwrap();
    npz(&root.join("sub/z.npz"), &[("first", &[9], &o), ("second", &[7, 3], &l2)]);
    safetensors(&root.join("c.safetensors"), &[("t1", &[10, 4], &l1), ("t0", &[9], &o)]);
    [("b", 40), ("t1", 40), ("t0", 9), ("sub/a", 21), ("sub/first", 9), ("sub/second", 21)]
        .map(|(n, e)| (n.to_string(), e))
        .to_vec()
}

#[test]
fn stats_and_hist_take_directories() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let want = tree(&root);
    let mut first = None;
    for j in ["1", "3"] {
        let (rc, so, err) = relu(&["stats", "--json", "-j", j, p(&root)], None);
        assert_eq!(rc, 0, "{err}");
        let got: Vec<(String, usize)> = objects(&so)
            .iter()
            .map(|o| (o["name"].as_str().unwrap().to_string(), o["elements"].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(got, want, "-j {j}");
        // the same objects whatever the thread count
        assert_eq!(*first.get_or_insert(so.clone()), so);
    }
    let (rc, so, err) = relu(&["hist", "--format", "json", "--bins", "4", p(&root)], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(objects(&so).len(), 6);
    // a FILE:NAME glob inside a directory's file, next to the directory itself
    let (rc, so, err) =
        relu(&["hist", "--format", "json", p(&root), &format!("{}:t*", p(&root.join("c.safetensors")))], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(objects(&so).len(), 8);
}

#[test]
fn merge_stats_by_name() {
    let d = tempfile::tempdir().unwrap();
    let mut all: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    let mut dirs = Vec::new();
    for e in 0..3 {
        let c = d.path().join(format!("ep{e}"));
        std::fs::create_dir_all(&c).unwrap();
        let (a, b) = (layer(10 + e, 5 + e as usize, 6, if e > 0 { &[1] } else { &[] }), layer(20 + e, 4, 3, &[2]));
        std::fs::write(c.join("layer1.npy"), npy_bytes(&[5 + e as usize, 6], &a)).unwrap();
        npz(&c.join("more.npz"), &[("layer2", &[4, 3], &b)]);
        all[0].extend(&a);
        all[1].extend(&b);
        dirs.push(c.to_str().unwrap().to_string());
    }
    let mut argv = vec!["stats", "--json"];
    argv.extend(dirs.iter().map(String::as_str));
    let (rc, so, err) = relu(&argv, None);
    assert_eq!(rc, 0, "{err}");
    let s = d.path().join("s.jsonl");
    std::fs::write(&s, &so).unwrap();
    let (rc, _, err) = relu(&["merge-stats", p(&s)], None);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("--by name"), "{err}");
    let (rc, so, err) = relu(&["merge-stats", "--by", "name", p(&s)], None);
    assert_eq!(rc, 0, "{err}");
    let o = objects(&so);
    assert_eq!(o.len(), 2);
    for (k, (name, units)) in [("layer1", 6usize), ("layer2", 3)].into_iter().enumerate() {
        let x = &all[k];
        assert_eq!(o[k]["name"], name);
        assert_eq!(o[k]["inputs"], 3);
        assert_eq!(o[k]["elements"].as_u64().unwrap() as usize, x.len());
        assert_eq!(o[k]["min"].as_f64().unwrap(), x.iter().copied().fold(f32::INFINITY, f32::min) as f64);
        assert_eq!(o[k]["max"].as_f64().unwrap(), x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64);
        let active: Vec<u64> =
            (0..units).map(|u| x.iter().skip(u).step_by(units).filter(|&&v| v > 0.0).count() as u64).collect();
        assert_eq!(o[k]["units"]["active_count"], serde_json::json!(active));
        assert_eq!(o[k]["units"]["dead_indices"], serde_json::json!(dead(x, units)));
    }
}

#[test]
fn trend_over_checkpoints_of_mixed_formats() {
    let d = tempfile::tempdir().unwrap();
    let plan: [(u64, &[usize], &[usize]); 3] = [(1, &[], &[2]), (2, &[0], &[2, 1]), (10, &[0, 3], &[1])];
    for (step, d1, d2) in plan {
        let c = d.path().join(format!("ep_{step}"));
        std::fs::create_dir_all(&c).unwrap();
        let (a, b) = (layer(30 + step, 9, 5, d1), layer(40 + step, 7, 4, d2));
        match step {
            1 => {
                std::fs::write(c.join("layer1.npy"), npy_bytes(&[9, 5], &a)).unwrap();
                std::fs::write(c.join("layer2.npy"), npy_bytes(&[7, 4], &b)).unwrap();
            }
            2 => {
                std::fs::write(c.join("layer1.npy"), npy_bytes(&[9, 5], &a)).unwrap();
                npz(&c.join("acts.npz"), &[("layer2", &[7, 4], &b)]);
            }
            _ => safetensors(&c.join("net.safetensors"), &[("layer1", &[9, 5], &a), ("layer2", &[7, 4], &b)]),
        }
    }
    let cp = |s: u64| d.path().join(format!("ep_{s}")).to_str().unwrap().to_string();
    let (rc, so, err) = relu(&["trend", "--json", &cp(10), &cp(1), &cp(2)], None);
    assert_eq!(rc, 0, "{err}");
    let o = objects(&so);
    let order: Vec<(u64, &str)> =
        o.iter().map(|o| (o["step"].as_u64().unwrap(), o["name"].as_str().unwrap())).collect();
    assert_eq!(order, [(1, "layer1"), (1, "layer2"), (2, "layer1"), (2, "layer2"), (10, "layer1"), (10, "layer2")]);
    let changes: Vec<(Value, Value)> = o.iter().map(|o| (o["newly_dead"].clone(), o["revived"].clone())).collect();
    let j = |v: &[u64]| serde_json::json!(v);
    assert_eq!(
        changes,
        [
            (j(&[]), j(&[])),
            (j(&[]), j(&[])),
            (j(&[0]), j(&[])),
            (j(&[1]), j(&[])),
            (j(&[3]), j(&[])),
            (j(&[]), j(&[2])),
        ]
    );
    assert_eq!(o[4]["units"]["dead_indices"], j(&[0, 3]));
    assert_eq!(o[4]["checkpoint"], cp(10));
    // --order given keeps the command line's order
    let (rc, so, err) = relu(&["trend", "--json", "--order", "given", &cp(10), &cp(1), &cp(2)], None);
    assert_eq!(rc, 0, "{err}");
    let steps: Vec<u64> = objects(&so).iter().map(|o| o["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [10, 10, 1, 1, 2, 2]);
    // the table: a row per tensor, a column per checkpoint, what died and revived
    let (rc, so, err) = relu(&["trend", &cp(1), &cp(2), &cp(10)], None);
    assert_eq!(rc, 0, "{err}");
    let t = String::from_utf8(so).unwrap();
    let row = |n: &str| {
        t.lines().find(|l| l.starts_with(n)).unwrap().split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(row("layer1"), "0 1 (+1 -0) 2 (+1 -0)", "{t}");
    assert_eq!(row("layer2"), "1 2 (+1 -0) 1 (+0 -1)", "{t}");
    let (rc, so, err) = relu(&["trend", "--metric", "sparsity", "--act", "relu", &cp(1), &cp(2)], None);
    assert_eq!(rc, 0, "{err}");
    assert!(String::from_utf8(so).unwrap().contains('%'));
    // a chart names its lines (SVG text stays text)
    let svg = d.path().join("t.svg");
    let (rc, _, err) = relu(&["trend", &cp(1), &cp(2), &cp(10), "-o", p(&svg)], None);
    assert_eq!(rc, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("layer1") && text.contains("layer2"));
}

#[test]
fn trend_steps_by_regex_and_one_name_twice_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let v = layer(50, 4, 2, &[]);
    for n in ["epoch_20_bf16", "epoch_3_bf16"] {
        safetensors(&d.path().join(format!("{n}.safetensors")), &[("w", &[4, 2], &v)]);
    }
    let f = |n: &str| d.path().join(format!("{n}.safetensors")).to_str().unwrap().to_string();
    let (rc, so, err) =
        relu(&["trend", "--json", "--step", r"epoch_(\d+)", &f("epoch_20_bf16"), &f("epoch_3_bf16")], None);
    assert_eq!(rc, 0, "{err}");
    let steps: Vec<u64> = objects(&so).iter().map(|o| o["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [3, 20]);
    let (rc, _, err) = relu(&["trend", "--step", "epoch_", &f("epoch_3_bf16")], None);
    assert_eq!(rc, 2, "{err}");
    // two tensors called "w" in one checkpoint
    let c = d.path().join("ck_1");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("w.npy"), npy_bytes(&[4, 2], &v)).unwrap();
    npz(&c.join("more.npz"), &[("w", &[4, 2], &v)]);
    let (rc, _, err) = relu(&["trend", p(&c)], None);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("two tensors are named 'w'") || err.contains("two tensors are named \"w\""), "{err}");
}

#[test]
fn batch_takes_file_colon_name_and_writes_the_container_with_those_members() {
    let d = tempfile::tempdir().unwrap();
    let (l1, l2) = (layer(5, 8, 5, &[1]), layer(6, 6, 3, &[2]));
    npz(&d.path().join("net.npz"), &[("layer1", &[8, 5], &l1), ("layer2", &[6, 3], &l2)]);
    safetensors(&d.path().join("st.safetensors"), &[("layer1", &[8, 5], &l1), ("layer2", &[6, 3], &l2)]);
    let out = d.path().join("out");
    let stats = d.path().join("s.jsonl");
    let a = format!("{}:layer2", p(&d.path().join("net.npz")));
    let b = format!("{}:layer[1]", p(&d.path().join("st.safetensors")));
    let (rc, _, err) = relu(&["batch", "-q", "--out-dir", p(&out), "--stats", p(&stats), &b, &a], None);
    assert_eq!(rc, 0, "{err}");
    // each container written as itself, holding only the picked members, relu applied
    let (rc, so, err) = relu(&["stats", "--json", "--act", "none", p(&out)], None);
    assert_eq!(rc, 0, "{err}");
    let o = objects(&so);
    let got: Vec<(&str, u64)> =
        o.iter().map(|o| (o["name"].as_str().unwrap(), o["elements"].as_u64().unwrap())).collect();
    assert_eq!(got, [("layer2", 18), ("layer1", 40)]);
    let (rc, so, err) = relu(&["apply", "--act", "none", &format!("{}:layer2", p(&out.join("net.npz")))], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(npy_values(&so), relu_bits(&l2));
    // the statistics name the members, in byte-wise order of the files
    let s = objects(&std::fs::read(&stats).unwrap());
    let names: Vec<&str> = s.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["layer2", "layer1"]);
    assert_eq!(s[0]["units"]["dead_indices"], serde_json::json!(dead(&l2, 3)));
    // one file named twice with different members would be one output: refused before any work
    let c = format!("{}:layer1", p(&d.path().join("net.npz")));
    let (rc, _, err) = relu(&["batch", "--out-dir", p(&d.path().join("o2")), &a, &c], None);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("net.npz") && err.contains("pattern"), "{err}");
    assert!(!d.path().join("o2").join("net.npz").exists());
    // a member that is not there fails that file, naming it
    let e = format!("{}:nope", p(&d.path().join("net.npz")));
    let (rc, _, err) = relu(&["batch", "--out-dir", p(&d.path().join("o3")), &e], None);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("net.npz") && err.contains("nope"), "{err}");
}
