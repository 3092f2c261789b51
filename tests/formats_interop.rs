//! CSV, TSV and `.npz` against NumPy and pandas: files they write go through the binary, and what
//! the binary writes is read back by them (`np.load`, `np.loadtxt`, `pd.read_csv`) and compared
//! bit for bit with `np.where(x < 0, 0, x)`. Python: `common::python`. Without pandas the test
//! fails, unless `RELU_SKIP_PANDAS=1` says to skip its cases (the venv the tests make has it).

mod common;

const SCRIPT: &str = r#"

rng = np.random.default_rng(7)
def table(r, c):
    x = rng.standard_normal((r, c)) * 10.0 ** rng.integers(-30, 30, (r, c))
    x.flat[::97] = -0.0
    x.flat[5::101] = np.nan
    x.flat[7::103] = -np.inf
    x.flat[9::89] = 5e-324
    return x

# --- CSV written by np.savetxt (repr precision) and pandas, with and without header, CSV/TSV
for i, (r, c) in enumerate([(1, 1), (7, 3), (3000, 5), (120000, 4)]):
    x = table(r, c)
    for delim, ext in ((",", "csv"), ("\t", "tsv")):
        src = f"{D}/t{i}.{ext}"
        np.savetxt(src, x, delimiter=delim, fmt="%.17g")
        for out in ("npy", ext):
            dst = f"{D}/t{i}_o.{out}"
            run("apply", src, "-o", dst)
            got = np.load(dst) if out == "npy" else np.loadtxt(dst, delimiter=delim, ndmin=2)
            check(f"savetxt {r}x{c} {ext} -> {out}", same(got, relu(x)))
try:
    import pandas as pd
except ImportError:
    # no silent pass: the pandas cases skip only when asked to
    if os.environ.get("RELU_SKIP_PANDAS") != "1":
        raise SystemExit("pandas is missing: install it, or set RELU_SKIP_PANDAS=1 to skip its cases")
    pd = None
    print("pandas missing: pandas cases skipped (RELU_SKIP_PANDAS=1)", file=sys.stderr)
if pd is not None:
    x = table(5000, 6)
    df = pd.DataFrame(x, columns=[f"col {k}" for k in range(6)])
    src = f"{D}/pandas.csv"
    df.to_csv(src, index=False)
    run("apply", src, "-o", f"{D}/pandas_o.csv")
    back = pd.read_csv(f"{D}/pandas_o.csv")
    check("pandas header kept", list(back.columns) == list(df.columns))
    check("pandas values", same(back.to_numpy(), relu(x)))
    # stdin to stdout, header sniffed
    out = run("apply", "-", stdin=open(src, "rb").read())
    import io
    check("pandas stdin", same(pd.read_csv(io.BytesIO(out)).to_numpy(), relu(x)))

# --- .npz: savez and savez_compressed, several dtypes and layouts
members = {
    "f32": rng.standard_normal((33, 17)).astype(np.float32),
    "f64_fortran": np.asfortranarray(rng.standard_normal((5, 6, 7))),
    "f16": rng.standard_normal(1001).astype(np.float16),
    "i64": rng.integers(-100, 100, (10, 10)),
    "big": rng.standard_normal(300_000).astype(np.float32),
    "scalar": np.array(-1.5),
    "empty": np.zeros((0, 4), np.float32),
}
for save in (np.savez, np.savez_compressed):
    src = f"{D}/{save.__name__}.npz"
    save(src, **members)
    for how in ("file", "stdin"):
        dst = f"{D}/{save.__name__}_{how}_o.npz"
        if how == "file":
            run("apply", src, "-o", dst)
        else:
            open(dst, "wb").write(run("apply", "-", "--to", "npz", stdin=open(src, "rb").read()))
        z = np.load(dst)
        check(f"{save.__name__} {how} members", sorted(z.files) == sorted(members))
        for k, v in members.items():
            check(f"{save.__name__} {how} {k}", same(z[k], relu(v)) and z[k].flags.f_contiguous == v.flags.f_contiguous)
    # one member to CSV, read back by NumPy (more dimensions as (shape[0], rest))
    csv = run("apply", src, "--member", "f64_fortran", "--to", "csv")
    got = np.loadtxt(csv.decode().splitlines(), delimiter=",")
    check(f"{save.__name__} member to csv", same(got, relu(members["f64_fortran"]).reshape(5, -1)))
"#;

#[test]
fn csv_and_npz_interop_with_numpy_and_pandas() {
    let Some(py) = common::python() else {
        eprintln!("SKIPPED formats_interop: RELU_SKIP_INTEROP=1");
        return;
    };
    let n = common::run_py_checks(py, SCRIPT, 40);
    eprintln!("formats_interop: {n} checks");
}
