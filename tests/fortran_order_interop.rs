//! Fortran-ordered arrays into every output kind, with PReLU channels and unit statistics on
//! every axis, against NumPy. Outputs written in C order (CSV, TSV, `.safetensors`, stdout text)
//! stream a Fortran array transposed; the channel of each element and the unit it counts for must
//! follow the order the elements stream in (issue 20: channels were taken at Fortran positions
//! while the data streamed in C order). Python: `common::python`.

mod common;

const SCRIPT: &str = r#"
import io, json, zipfile
from safetensors.numpy import load_file

rng = np.random.default_rng(20)
SHAPE = (3, 4, 2, 5)  # distinct extents: a channel taken on the wrong axis cannot pass

def prelu(x, al, axis):
    a = np.array(al, dtype=x.dtype).reshape([-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
    return np.where(x < 0, x * a, x).astype(x.dtype)

def grad_prelu(x, g, al, axis):
    a = np.array(al, dtype=x.dtype).reshape([-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
    return np.where(x > 0, g, g * a).astype(x.dtype)

def rows(a):
    # a table's rows: the first axis, the others flattened in C order
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)

def from_text(b, dt, delim):
    return np.loadtxt(io.BytesIO(b), delimiter=delim, ndmin=2, dtype=np.float64).astype(dt)

def units_ok(name, stats, x, axis):
    ax = axis % x.ndim
    want = (x > 0).sum(axis=tuple(i for i in range(x.ndim) if i != ax)).tolist()
    u = stats["units"]
    check(f"{name}: units axis {axis}", u is not None and u["axis"] == ax and u["active_count"] == want)

for dt in (np.float32, np.float64):
    for axis in (0, 1, -1):
        x = np.asfortranarray(rng.standard_normal(SHAPE).astype(dt))
        g = np.asfortranarray((rng.standard_normal(SHAPE) * 10).astype(dt))
        al = [round(0.1 + 0.37 * k, 3) for k in range(SHAPE[axis])]
        alpha = ",".join(map(repr, al))
        want = prelu(x, al, axis)
        tag = f"{np.dtype(dt).name}_axis{axis}"
        src = f"{D}/f_{tag}.npy"
        np.save(src, x)
        gp = f"{D}/g_{tag}.npy"
        np.save(gp, g)
        act = ["--act", "prelu", "--alpha", alpha, "--channel-axis", str(axis)]
        # every file output, with the unit statistics of the same run on the same axis
        for ext in ("npy", "safetensors", "csv", "tsv"):
            out, st = f"{D}/o_{tag}.{ext}", f"{D}/o_{tag}_{ext}.json"
            for j in ("1", "3"):
                run("apply", src, *act, "-o", out, "--stats", st, "--unit-axis", str(axis), "-j", j)
                if ext == "npy":
                    got = np.load(out)
                    ok = same(got, want) and got.flags.f_contiguous
                elif ext == "safetensors":
                    got = load_file(out)[f"f_{tag}"]
                    ok = same(got, want)
                else:
                    d = "," if ext == "csv" else "\t"
                    ok = same(from_text(open(out, "rb").read(), dt, d), rows(want))
                check(f"prelu {tag} -> {ext} -j{j}", ok)
                s = json.load(open(st))
                units_ok(f"prelu {tag} -> {ext} -j{j}", s, x, axis)
                m = float(np.mean(want.astype(np.float64)))
                check(f"prelu {tag} -> {ext} -j{j}: mean", abs(s["mean"] - m) <= 1e-12 * abs(m))
        # stdout, as text and as .npy; stdin in
        for to, parse in (("csv", lambda b: from_text(b, dt, ",")), ("tsv", lambda b: from_text(b, dt, "\t"))):
            got = parse(run("apply", src, *act, "--to", to))
            check(f"prelu {tag} -> stdout {to}", same(got, rows(want)))
            got = parse(run("apply", "-", *act, "--to", to, stdin=open(src, "rb").read()))
            check(f"prelu stdin {tag} -> stdout {to}", same(got, rows(want)))
        got = np.load(io.BytesIO(run("apply", src, *act, "--to", "npy")))
        check(f"prelu {tag} -> stdout npy", same(got, want))
        # an .npz member: to .npz (order kept) and to CSV
        z = f"{D}/z_{tag}.npz"
        np.savez(z, a=x)
        run("apply", z, *act, "-o", f"{D}/zo_{tag}.npz")
        check(f"prelu npz {tag} -> npz", same(np.load(f"{D}/zo_{tag}.npz")["a"], want))
        got = from_text(run("apply", z, *act, "--to", "csv"), dt, ",")
        check(f"prelu npz {tag} -> csv", same(got, rows(want)))
        # statistics alone, of the activation, units on the same axis
        s = json.loads(run("stats", src, *act, "--unit-axis", str(axis), "--json"))
        units_ok(f"stats {tag}", s, x, axis)
        # the gradient, its upstream Fortran-ordered too
        gw = grad_prelu(x, g, al, axis)
        ga = ["--act", "grad", "--of", "prelu", "--alpha", alpha, "--channel-axis", str(axis), "--upstream", gp]
        for ext in ("npy", "safetensors"):
            out = f"{D}/go_{tag}.{ext}"
            run("apply", src, *ga, "-o", out, "--stats", f"{D}/gs.json", "--unit-axis", str(axis))
            got = np.load(out) if ext == "npy" else load_file(out)[f"f_{tag}"]
            check(f"grad prelu {tag} -> {ext}", same(got, gw))
            units_ok(f"grad prelu {tag} -> {ext}", json.load(open(f"{D}/gs.json")), x, axis)
"#;

#[test]
fn fortran_order_prelu_and_units_in_every_output_kind() {
    let Some(py) = common::python() else { return };
    common::run_py_checks(py, SCRIPT, 2 * 3 * (4 * 2 * 3 + 5 + 2 + 1 + 2 * 2));
}
