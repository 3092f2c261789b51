//! `relu hist`, and histograms in the statistics, through the binary: every output format (text,
//! CSV, JSON, SVG, PNG) with its structure checked, the views (panels, ridgeline, active rates),
//! `.npz` members, CSV and stdin inputs, `-j` independence, and histograms in `stats`,
//! `apply --stats` and `merge-stats` (equal edges add, different edges are refused).

use serde_json::Value;
use std::fs;
use std::path::Path;

mod common;
use common::relu;

fn save_f32(path: &Path, shape: &[u64], v: &[f32]) {
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, shape);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(path, b).unwrap();
}

/// A layer-like (rows, 8) f32 array: unit 3 never positive (dead), the rest mixed.
fn layer(dir: &Path, name: &str, rows: usize, shift: f32) -> String {
    let mut v = Vec::new();
    let mut s = 12345u32;
    for r in 0..rows {
        for u in 0..8 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = (s % 2000) as f32 / 500.0 - 2.0 + shift;
            v.push(if u == 3 { -x.abs() - 0.1 } else { x + (r % 3) as f32 * 0.01 });
        }
    }
    let p = dir.join(name);
    save_f32(&p, &[rows as u64, 8], &v);
    p.to_str().unwrap().to_string()
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn json_counts_and_outside_values() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.npy");
    save_f32(&p, &[10], &[f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -5.0, -1.0, 0.0, 0.5, 1.0, 2.0, 5.0]);
    let p = p.to_str().unwrap();
    let (code, out, err) = relu(&["hist", p, "--bins", "4", "--range=-2:2", "--format", "json"], None);
    assert_eq!(code, 0, "{err}");
    let j = &json_lines(&out)[0];
    assert_eq!(j["counts"], serde_json::json!([0, 1, 2, 2]));
    assert_eq!((j["underflow"].as_u64(), j["overflow"].as_u64(), j["nan"].as_u64()), (Some(2), Some(2), Some(1)));
    assert_eq!(j["edges"], serde_json::json!([-2.0, -1.0, 0.0, 1.0, 2.0]));
    assert_eq!(j["input"], p);
    // auto range: finite min and max; the infinities fall outside, never dropped
    let (_, out, _) = relu(&["hist", p, "--bins", "5", "--format", "json", "--act", "relu"], None);
    let j = &json_lines(&out)[0];
    let total: u64 = j["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(
        total + j["underflow"].as_u64().unwrap() + j["overflow"].as_u64().unwrap() + j["nan"].as_u64().unwrap(),
        10
    );
    assert_eq!(j["edges"][0], 0.0);
    assert_eq!(j["edges"][5], 5.0);
    assert_eq!(j["overflow"], 1); // +inf; relu(-inf) = 0 is in range
}

#[test]
fn text_bars_fit_the_width_and_stay_plain_when_piped() {
    let d = tempfile::tempdir().unwrap();
    let p = layer(d.path(), "l.npy", 500, 0.0);
    let mut c = assert_cmd::Command::cargo_bin("relu").unwrap();
    let o = c.args(["hist", &p, "--bins", "12", "--act", "relu"]).env("COLUMNS", "60").output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12 + 2, "{text}");
    assert!(lines[1].contains('█') && !text.contains('\x1b'), "{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 60), "{text}");
    assert!(lines[13].contains("nan: 0"), "{text}");
}

/// Runs `relu ARGS` on a pseudo-terminal (util-linux `script`) with `env`, returning what it printed.
#[cfg(target_os = "linux")]
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let bin = assert_cmd::cargo::cargo_bin("relu");
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"]).env_remove("NO_COLOR").env("TERM", "xterm");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("util-linux `script` runs the pty tests");
    assert!(o.status.success(), "{args}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
#[cfg(target_os = "linux")]
fn colour_only_on_a_terminal_without_no_color_or_term_dumb() {
    let d = tempfile::tempdir().unwrap();
    let p = layer(d.path(), "l.npy", 500, 0.0);
    let args = format!("hist --act relu --bins 8 {p}");
    assert!(on_a_terminal(&args, &[]).contains("\x1b["), "a terminal gets colour");
    assert!(!on_a_terminal(&args, &[("NO_COLOR", "1")]).contains('\x1b'), "NO_COLOR");
    assert!(!on_a_terminal(&args, &[("TERM", "dumb")]).contains('\x1b'), "TERM=dumb");
    assert!(!on_a_terminal(&format!("{args} --color never"), &[]).contains('\x1b'), "--color never");
    // NO_COLOR set but empty means unset (no-color.org)
    assert!(on_a_terminal(&args, &[("NO_COLOR", "")]).contains("\x1b["));
    // piped: plain, unless asked
    let (code, out, _) = relu(&["hist", "--act", "relu", "--bins", "8", &p], None);
    assert_eq!(code, 0);
    assert!(!out.contains(&0x1b));
    let (code, out, _) = relu(&["hist", "--act", "relu", "--bins", "8", "--color", "always", &p], None);
    assert_eq!(code, 0);
    assert!(String::from_utf8(out).unwrap().contains("\x1b["));
    // and no progress bar on a terminal for a small input, nor any with -q
    let err_free = on_a_terminal(&format!("{args} --progress always -q"), &[]);
    assert!(!err_free.contains("ETA"), "{err_free}");
}

#[test]
fn csv_rows_and_npz_members_and_stdin() {
    let d = tempfile::tempdir().unwrap();
    let a = layer(d.path(), "a.npy", 50, 0.0);
    let (code, out, err) = relu(&["hist", &a, "--bins", "7", "--format", "csv"], None);
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "input,bin,lo,hi,count");
    assert_eq!(rows.len(), 1 + 7 + 3);
    let sum: u64 = rows[1..8].iter().map(|r| r.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(sum, 400);
    // stdin is spooled and named <stdin>; the same counts
    let (_, out, _) = relu(&["hist", &a, "--bins", "7", "--format", "json"], None);
    let (code, out2, err) = relu(&["hist", "-", "--bins", "7", "--format", "json"], Some(fs::read(&a).unwrap()));
    assert_eq!(code, 0, "{err}");
    let (j1, j2) = (&json_lines(&out)[0], &json_lines(&out2)[0]);
    assert_eq!(j1["counts"], j2["counts"]);
    assert_eq!(j2["input"], "<stdin>");
    // a CSV table: all its values
    let csv = d.path().join("t.csv");
    fs::write(&csv, "a,b\n1,-2\n3,4\n0.5,nan\n").unwrap();
    let (code, out, err) =
        relu(&["hist", csv.to_str().unwrap(), "--bins", "2", "--range=0:4", "--format", "json"], None);
    assert_eq!(code, 0, "{err}");
    let j = &json_lines(&out)[0];
    assert_eq!(j["counts"], serde_json::json!([2, 2]));
    assert_eq!((j["underflow"].as_u64(), j["nan"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn thread_count_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = layer(d.path(), "big.npy", 200_000, 0.3);
    let run = |j: &str| relu(&["hist", &p, "--bins", "64", "--act", "leaky", "--format", "json", "-j", j], None).1;
    let one = run("1");
    assert_eq!(one, run("2"));
    assert_eq!(one, run("3"));
}

#[test]
fn svg_and_png_pictures() {
    let d = tempfile::tempdir().unwrap();
    let a = layer(d.path(), "layer1.npy", 300, 0.0);
    let b = layer(d.path(), "layer2.npy", 300, 0.5);
    for (args, name) in [
        (vec!["--act", "relu"], "panels"),
        (vec!["--act", "relu", "--ridge"], "ridge"),
        (vec!["--act", "relu", "--active-rate"], "rates"),
        (vec!["--log-y"], "log"),
    ] {
        let svg = d.path().join(format!("{name}.svg"));
        let mut argv = vec!["hist", &a, &b, "-o", svg.to_str().unwrap()];
        argv.extend(&args);
        let (code, _, err) = relu(&argv, None);
        assert_eq!(code, 0, "{name}: {err}");
        let text = fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{name}");
        assert_eq!(text.matches("<svg").count(), text.matches("</svg>").count());
        // labelled by name, the common folder and the extension dropped
        let texts = svg_texts(&text);
        for l in ["layer1", "layer2"] {
            assert!(texts.iter().any(|t| t.starts_with(l)), "{name}: {l} in the titles: {texts:?}");
        }
        assert!(!text.contains(d.path().to_str().unwrap()), "{name}: the common folder is dropped");
        assert!(text.matches("<rect").count() >= 10 || name == "ridge", "{name}: bars");
        if name == "ridge" || name == "rates" {
            assert!(text.contains("dead"), "{name}: dead units labelled");
        }
        let png = d.path().join(format!("{name}.png"));
        let mut argv = vec!["hist", &a, &b, "-o", png.to_str().unwrap(), "--size", "640x420"];
        argv.extend(&args);
        let (code, _, err) = relu(&argv, None);
        assert_eq!(code, 0, "{name}: {err}");
        let dec = png::Decoder::new(std::io::Cursor::new(fs::read(&png).unwrap()));
        let mut r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (640, 420), "{name}");
        let mut buf = vec![0; r.output_buffer_size()];
        r.next_frame(&mut buf).unwrap();
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
        assert!(dark > 500, "{name}: text and axes drawn ({dark} dark pixels)");
    }
    // a PNG is not written to a terminal, and bad sizes are usage errors
    let (code, _, err) = relu(&["hist", &a, "--size", "10x10", "-o", "x.png"], None);
    assert_eq!(code, 2, "{err}");
}

/// The texts of an SVG, in order.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| t.split_once('>').unwrap().1.split_once("</text>").unwrap().0.trim().to_string())
        .collect()
}

#[test]
fn titles_labels_and_each_panel_on_its_own_axis() {
    let d = tempfile::tempdir().unwrap();
    let a = layer(d.path(), "a.npy", 300, 0.0);
    // ten times wider than `a`
    let wide: Vec<f32> = (0..2400).map(|i| (i % 97) as f32 * 0.5 - 24.0).collect();
    let b = d.path().join("b.npy");
    save_f32(&b, &[2400], &wide);
    let b = b.to_str().unwrap().to_string();
    let svg = d.path().join("p.svg");
    let out = svg.to_str().unwrap();
    let (code, _, err) =
        relu(&["hist", &a, &b, "--title", "Layer 2.5 <step 10>", "--labels", "left run,right", "-o", out], None);
    assert_eq!(code, 0, "{err}");
    let texts = svg_texts(&fs::read_to_string(&svg).unwrap());
    assert!(texts.contains(&"Layer 2.5 &lt;step 10&gt;".to_string()), "{texts:?}");
    assert!(texts.contains(&"left run  ·  float32 (300, 8) · no activation".to_string()), "{texts:?}");
    assert!(texts.contains(&"right  ·  float32 (2400,) · no activation".to_string()), "{texts:?}");
    // the ranges differ more than 10x: each panel keeps its own
    let aboves: Vec<&String> = texts.iter().filter(|t| t.contains("above")).collect();
    assert_eq!(aboves.len(), 2);
    assert_ne!(aboves[0].split("above").nth(1), aboves[1].split("above").nth(1), "own ranges: {aboves:?}");
    let (code, _, _) = relu(&["hist", &a, &b, "--share-x", "-o", out], None);
    assert_eq!(code, 0);
    let shared = svg_texts(&fs::read_to_string(&svg).unwrap());
    let aboves: Vec<&String> = shared.iter().filter(|t| t.contains("above")).collect();
    assert_eq!(aboves.len(), 2);
    assert_eq!(aboves[0].split("above").nth(1), aboves[1].split("above").nth(1), "one range: {aboves:?}");
    // a label each, or a usage error
    let (code, _, err) = relu(&["hist", &a, &b, "--labels", "one", "-o", out], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--labels"), "{err}");
    // after relu, the exact zeros are a bar of their own with their count in the footer
    let (code, _, err) = relu(&["hist", &a, "--act", "relu", "-o", out], None);
    assert_eq!(code, 0, "{err}");
    let zeros = svg_texts(&fs::read_to_string(&svg).unwrap());
    let foot = zeros.iter().find(|t| t.starts_with("exact 0")).unwrap_or_else(|| panic!("{zeros:?}"));
    let data = fs::read(&a).unwrap();
    let n0 = data[128..].chunks(4).filter(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) <= 0.0).count();
    assert!(foot.contains(&format!("): {} (", relu::render::group(n0 as u64))), "{foot} want {n0}");
}

#[test]
fn a_bar_narrower_than_a_pixel_still_shows() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("six.npy");
    save_f32(&p, &[6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let png = d.path().join("six.png");
    let (code, _, err) =
        relu(&["hist", "--bins", "2000", p.to_str().unwrap(), "--size", "600x300", "-o", png.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let dec = png::Decoder::new(std::io::Cursor::new(fs::read(&png).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    r.next_frame(&mut buf).unwrap();
    // bar-coloured columns (blue well above red), halfway up the picture
    let (w, y) = (600, 150);
    let blue: Vec<usize> = (0..w)
        .filter(|&x| {
            let p = &buf[(y * w + x) * 3..][..3];
            p[2] > 120 && p[2] as i32 - p[0] as i32 > 40
        })
        .collect();
    let mut runs = 0;
    for (i, &x) in blue.iter().enumerate() {
        if i == 0 || blue[i - 1] + 1 != x {
            runs += 1;
        }
    }
    assert_eq!(runs, 6, "six bars, one per value: {blue:?}");
}

#[test]
fn histograms_in_statistics_merge_with_equal_edges_only() {
    let d = tempfile::tempdir().unwrap();
    let a = layer(d.path(), "a.npy", 400, 0.0);
    let b = layer(d.path(), "b.npy", 300, 0.7);
    let stat = |p: &str, range: &str| {
        let (code, out, err) = relu(&["stats", "--json", "--act", "relu", "--bins", "20", range, p], None);
        assert_eq!(code, 0, "{err}");
        String::from_utf8(out).unwrap()
    };
    let (sa, sb) = (stat(&a, "--range=-1:3"), stat(&b, "--range=-1:3"));
    let ja: Value = serde_json::from_str(&sa).unwrap();
    let (_, h, _) = relu(&["hist", &a, "--act", "relu", "--bins", "20", "--range=-1:3", "--format", "json"], None);
    assert_eq!(ja["hist"]["counts"], json_lines(&h)[0]["counts"], "stats and hist count alike");
    // apply --stats writes the same histogram from the same pass
    let (out, sj) = (d.path().join("y.npy"), d.path().join("y.json"));
    let (code, _, err) = relu(
        &["apply", &a, "-o", out.to_str().unwrap(), "--stats", sj.to_str().unwrap(), "--bins", "20", "--range=-1:3"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let js: Value = serde_json::from_str(&fs::read_to_string(&sj).unwrap()).unwrap();
    assert_eq!(js["hist"], ja["hist"]);
    // merged shards: counts add, and equal the histogram of both inputs at once
    let (fa, fb) = (d.path().join("a.json"), d.path().join("b.json"));
    fs::write(&fa, &sa).unwrap();
    fs::write(&fb, &sb).unwrap();
    let merged = d.path().join("m.json");
    let (code, _, err) =
        relu(&["merge-stats", fa.to_str().unwrap(), fb.to_str().unwrap(), "-o", merged.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let m: Value = serde_json::from_str(&fs::read_to_string(&merged).unwrap()).unwrap();
    let jb: Value = serde_json::from_str(&sb).unwrap();
    let add: Vec<u64> = (0..20)
        .map(|i| ja["hist"]["counts"][i].as_u64().unwrap() + jb["hist"]["counts"][i].as_u64().unwrap())
        .collect();
    assert_eq!(m["hist"]["counts"], serde_json::json!(add));
    // and hist draws the merged one
    let png = d.path().join("m.png");
    let (code, _, err) = relu(&["hist", "--from-stats", merged.to_str().unwrap(), "-o", png.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    // different edges are refused, with the reason
    let fc = d.path().join("c.json");
    fs::write(&fc, stat(&b, "--range=-1:4")).unwrap();
    let (code, _, err) = relu(&["merge-stats", fa.to_str().unwrap(), fc.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(err.contains("different edges"), "{err}");
    // a histogram in the statistics needs both --bins and --range
    let (code, _, err) = relu(&["stats", "--bins", "20", &a], None);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn refused_ranges_and_empty_arrays() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("e.npy");
    save_f32(&p, &[0, 4], &[]);
    let p = p.to_str().unwrap();
    let (code, out, err) = relu(&["hist", p, "--bins", "4", "--format", "json"], None);
    assert_eq!(code, 0, "{err}");
    let j = &json_lines(&out)[0];
    assert_eq!(j["counts"], serde_json::json!([0, 0, 0, 0]));
    assert_eq!(j["edges"][4], 1.0); // NumPy's (0, 1) for no data
    for bad in ["--range=3:1", "--range=a:b", "--range=-1e308:1e308", "--range=1:1.0000000000000002"] {
        let (code, _, err) = relu(&["hist", p, "--bins", "4", bad], None);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.lines().next().unwrap().contains("range"), "{bad}: {err}");
    }
}

/// An `.npz` of `members` (name, f32 values), stored.
fn npz_f32(path: &Path, members: &[(&str, &[f32])]) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, v) in members {
        let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[v.len() as u64]);
        b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        z.start_file(format!("{name}.npy"), o).unwrap();
        z.write_all(&b).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_containers_arrays_each_get_their_own_range_when_their_scales_differ() {
    let d = tempfile::tempdir().unwrap();
    let narrow: Vec<f32> = (0..2000).map(|i| (i % 101) as f32 / 100.0).collect(); // 0..1
    let five: Vec<f32> = narrow.iter().map(|x| x * 5.0).collect(); // 0..5: more than 4x wider
    let twice: Vec<f32> = narrow.iter().map(|x| x * 2.0).collect(); // 0..2: close enough to share
    let svg = d.path().join("p.svg");
    let aboves = |npz: &Path| {
        let (code, _, err) = relu(&["hist", npz.to_str().unwrap(), "-o", svg.to_str().unwrap()], None);
        assert_eq!(code, 0, "{err}");
        let texts = svg_texts(&fs::read_to_string(&svg).unwrap());
        let a: Vec<String> = texts
            .iter()
            .filter(|t| t.contains("above"))
            .map(|t| t.split("above").nth(1).unwrap().to_string())
            .collect();
        assert_eq!(a.len(), 2, "{texts:?}");
        a
    };
    let far = d.path().join("far.npz");
    npz_f32(&far, &[("small", &narrow), ("big", &five)]);
    let a = aboves(&far);
    assert_ne!(a[0], a[1], "one file's members on their own ranges: {a:?}");
    let near = d.path().join("near.npz");
    npz_f32(&near, &[("small", &narrow), ("big", &twice)]);
    let a = aboves(&near);
    assert_eq!(a[0], a[1], "one range: {a:?}");
}

/// bfloat16 is binned in f32 lanes: its counts equal those of the same values widened to an f32
/// `.npy` (exactly representable, so NumPy's counts), values on edges and zeros included.
#[test]
fn bf16_counts_equal_the_same_values_in_f32() {
    let d = tempfile::tempdir().unwrap();
    let mut bits: Vec<u16> = Vec::new();
    let mut s = 99u32;
    for _ in 0..50_001 {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let x = (s % 20_000) as f32 / 2_000.0 - 5.0; // -5 .. 5, many on edges
        bits.push((x.to_bits() >> 16) as u16);
    }
    for x in [0.5f32, -0.5, 1.0, 2.0, 0.0, -0.0, f32::INFINITY, f32::NAN] {
        bits.push((x.to_bits() >> 16) as u16);
    }
    let wide: Vec<f32> = bits.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
    let npy = d.path().join("w.npy");
    save_f32(&npy, &[wide.len() as u64], &wide);
    let header =
        format!("{{\"x\":{{\"dtype\":\"BF16\",\"shape\":[{}],\"data_offsets\":[0,{}]}}}}", bits.len(), 2 * bits.len());
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend(bits.iter().flat_map(|b| b.to_le_bytes()));
    let stp = d.path().join("b.safetensors");
    fs::write(&stp, st).unwrap();
    for range in ["--range=-4:3", "--range=-0.5:2", "--range=-5:5"] {
        for bins in ["7", "100"] {
            let run = |p: &Path| {
                let (code, out, err) =
                    relu(&["hist", "--format", "json", "--bins", bins, range, p.to_str().unwrap()], None);
                assert_eq!(code, 0, "{err}");
                let j = json_lines(&out).remove(0);
                (j["counts"].clone(), j["underflow"].clone(), j["overflow"].clone(), j["nan"].clone())
            };
            assert_eq!(run(&stp), run(&npy), "{range} {bins} bins");
        }
    }
}
