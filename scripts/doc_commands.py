#!/usr/bin/env python3
"""Runs every shell command of README.md and docs/*.md, as written, and fails on the first that fails.

    python3 scripts/doc_commands.py [--bin target/release/relu] [--list]

What runs: fenced blocks tagged ```sh, ```bash or ```shell (every line; a trailing backslash
continues it) and ```console (the lines after `$ `). Each Markdown file's blocks run in order, as
bash scripts with `set -euo pipefail`, in a scratch directory of their own (`~` too) whose `fixtures/`,
`scripts/`, `docs/` and `target/` are the repository's (symlinks) and whose `../shared` is the
repository's `../shared` when that exists, so commands on `fixtures/…` work as in the repository.
For docs/*.md the directory also holds stand-ins for the names the examples use (`x.npy`,
`acts.npz`, `ckpt_1/layer3.npy`, `acts/`, …), made from the fixtures below. README.md gets none:
a new user runs its commands in a clone, where only the repository's files exist, so its
commands must name those. `relu` is the binary under test, first on `PATH`.

A command a ```console block shows output for must print exactly that output (stdout).

Three rules, all printed when they apply:
  * a command starting with `cargo` runs in the repository itself (it builds there), except
    `cargo test`, which CI runs as its own first step;
  * `compare.py` benchmarks get `--mib 8 --runs 1` appended (argparse keeps the last), so CI checks
    that they run, in seconds rather than minutes; their figures come from the full size;
  * a block right after `<!-- doc-run: skip (REASON) -->` is not run; REASON must say what runs
    it instead (a cluster, two ssh hosts).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```(\S*)")
SKIP = re.compile(r"<!--\s*doc-run:\s*skip\s*\((.+)\)\s*-->")
# (file, command) → the output a console block shows under it
EXPECTED = {}


def blocks(path):
    """(line number, info string, commands, skip reason) of each fenced block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        info, start = m.group(1), i + 1
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[i + 1:j]
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.search(prev)
        if info in ("sh", "bash", "shell"):
            cmds = join_continued([line for line in body if line.strip() and not line.lstrip().startswith("#")])
        elif info == "console":
            cmds = join_continued([line[2:] for line in body if line.startswith("$ ")])
            # the output shown under a command must be what it prints (checked when there is one)
            for k, line in enumerate(body):
                if line.startswith("$ "):
                    shown = []
                    for o in body[k + 1:]:
                        if o.startswith("$ "):
                            break
                        shown.append(o)
                    if shown:
                        EXPECTED[(path, line[2:])] = "\n".join(shown) + "\n"
        else:
            cmds = None
        if cmds is not None:
            out.append((start, info, cmds, skip.group(1) if skip else None))
        i = j + 1
    return out


def join_continued(lines):
    cmds, cur = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
        else:
            cmds.append(cur + line)
            cur = ""
    if cur:
        cmds.append(cur)
    return cmds


def stand_ins(play, relu):
    """The files the examples name, made from the fixtures (and relu itself)."""
    fx = os.path.join(ROOT, "fixtures")
    ck = os.path.join(fx, "checkpoints")

    def cp(src, dst):
        dst = os.path.join(play, dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(fx, src), dst)

    for name in ("acts.npy", "big.npy", "shard-1.npy", "shard-2.npy"):
        cp("oracle/mlp_healthy_layer1_pre.npy", name)
    cp("oracle/prelu_nchw_f32_x.npy", "x.npy")  # (N, C, H, W) with C = 3
    cp("oracle/prelu_nchw_f32_x.npy", "nhwc.npy")
    cp("oracle/prelu_nchw_f32_upstream.npy", "dy.npy")
    cp("csv/valid/header.csv", "table.csv")
    # a checkpoint's layers as .npy, whatever it holds them in (.npy files, an .npz, a
    # .safetensors): containers give theirs through `relu apply --act none --member`
    def layer(checkpoint, i, dst):
        src = os.path.join(ck, checkpoint)
        dst = os.path.join(play, dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.isdir(src) and os.path.exists(os.path.join(src, f"layer{i}.npy")):
            shutil.copyfile(os.path.join(src, f"layer{i}.npy"), dst)
            return
        if os.path.isdir(src):
            src = os.path.join(src, "layers.npz")
        subprocess.run([relu, "apply", "--act", "none", "--member", f"layer{i}", src, "-o", dst], check=True)

    checkpoints = sorted(d for d in os.listdir(ck) if d.startswith("epoch_"))
    for i in (1, 2, 3):
        layer(checkpoints[-1], i, f"layer{i}.npy")
    for n, checkpoint in enumerate(checkpoints, 1):
        layer(checkpoint, 3, f"ckpt_{n}/layer3.npy")
        layer(checkpoint, 1, f"acts/run{n % 2}/{checkpoint.split('.')[0]}.npy")
    with zipfile.ZipFile(os.path.join(play, "acts.npz"), "w") as z:  # what np.savez writes
        for i in (1, 2, 3):
            z.write(os.path.join(play, f"layer{i}.npy"), f"layer{i}.npy")
    subprocess.run([relu, "apply", "x.npy", "--dtype", "f16", "-o", "x16.npy"], cwd=play, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "relu"))
    ap.add_argument("--list", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    relu = os.path.abspath(args.bin)
    docs = [os.path.join(ROOT, "README.md")] + sorted(
        os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    bindir = tempfile.mkdtemp(prefix="relu-doc-bin.")
    os.symlink(relu, os.path.join(bindir, "relu"))
    home = os.path.expanduser("~")
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], NO_COLOR="1",
               # the toolchain and caches stay where they are when HOME moves to the scratch
               CARGO_HOME=os.environ.get("CARGO_HOME", os.path.join(home, ".cargo")),
               RUSTUP_HOME=os.environ.get("RUSTUP_HOME", os.path.join(home, ".rustup")),
               XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", os.path.join(home, ".cache")))
    shared = os.path.join(os.path.dirname(ROOT), "shared")
    ran = skipped = 0
    # A venv records its own path in its scripts: made here through the scratch directory's
    # `target` link, they would point into a directory that is gone after its file. So the venv
    # the docs make (`python3 -m venv target/accept-venv`) is made first at its real path; the
    # docs' own command then finds it and installs into it.
    venv = os.path.join(ROOT, "target", "accept-venv")
    if not args.list and not os.path.exists(os.path.join(venv, "bin", "pip")):
        subprocess.run(["python3", "-m", "venv", venv], check=True)
    try:
        for doc in docs:
            rel = os.path.relpath(doc, ROOT)
            top = tempfile.mkdtemp(prefix="relu-doc.")
            play = os.path.join(top, "work")
            os.mkdir(play)
            for d in ("fixtures", "scripts", "docs", "target"):
                os.symlink(os.path.join(ROOT, d), os.path.join(play, d))
            if os.path.isdir(shared):
                os.symlink(shared, os.path.join(top, "shared"))
            os.mkdir(os.path.join(top, "home"))  # `~` of the commands: nothing escapes the scratch
            if not args.list and rel != "README.md":  # README's commands run on the repository's files
                stand_ins(play, relu)
            try:
                for line, info, cmds, skip in blocks(doc):
                    where = f"{rel}:{line}"
                    if skip:
                        print(f"{where}: not run: {skip}")
                        skipped += len(cmds)
                        continue
                    script = ["set -euo pipefail"]
                    for cmd in cmds:
                        if re.match(r"\s*(\w+=\S*\s+)*cargo\s+test\b", cmd):
                            print(f"{where}: `{cmd.strip()}`: CI's first step, not repeated here")
                            skipped += 1
                            continue
                        shown = EXPECTED.get((doc, cmd))
                        if re.match(r"\s*cargo\s", cmd):
                            cmd = f"(cd {ROOT!r} && {cmd})"
                        if "compare.py" in cmd:
                            cmd += " --mib 8 --runs 1"
                        script.append(f"echo '+ '{shell_quote(cmd)} >&2")
                        if shown is not None:
                            # stdout compared with what the page shows; stderr (cargo's) passes
                            want = os.path.join(top, f"want{ran}")
                            with open(want, "w", encoding="utf-8") as f:
                                f.write(shown)
                            cmd = f"diff -u {shell_quote(want)} <({cmd})"
                        script.append(cmd)
                        ran += 1
                    if args.list:
                        print(f"{where}:", *script[1::2], sep="\n  ")
                        continue
                    p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=play, env=dict(env, HOME=os.path.join(top, "home")),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
                    if p.returncode != 0:
                        sys.stdout.write(p.stdout.decode(errors="replace")[-6000:])
                        print(f"doc_commands: {where}: a command of this block failed (exit {p.returncode})")
                        return 1
                    print(f"{where}: {len(script) // 2} commands ok")
            finally:
                shutil.rmtree(top, ignore_errors=True)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    print(f"doc_commands: {ran} commands ran, {skipped} not run (reasons above)")
    return 0


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    sys.exit(main())
