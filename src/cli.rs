//! The door: the top-level command (clap), which composes each command's own arguments
//! (`cmd/<command>.rs` holds its `Args` and `run`); `--version`, completions, the man page; and
//! the top-level run: parse, dispatch, print the error chain once, map to exit codes.

use crate::cmd;
use crate::usage::UsageError;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "relu",
    about = "Stream .npy, .npz, .safetensors and CSV arrays (f16, bf16, f32, f64, integers) through PyTorch-exact ReLU, leaky ReLU, PReLU and their gradients, with sparsity and dead-unit statistics and histograms",
    long_about = None,
    after_help = "Examples:\n  relu apply acts.npy -o out.npy\n  relu apply x.npy --act leaky --slope 0.2 | relu inspect -\n  relu apply x.npy --act grad --of prelu --alpha 0.1,0.2,0.3 --upstream g.npy -o dx.npy\n  relu apply table.csv -o table.npy\n  relu apply acts.npz -o acts_relu.npz\n  relu apply acts.npz --member layer1 -o layer1.csv\n  relu apply dump.safetensors -o dump_relu.safetensors\n  relu apply x.npy --dtype bf16 -o x.safetensors\n  relu stats --act relu layer1.npy\n  relu hist --act relu layer*.npy -o layers.png\n  relu apply x.npy -o y.npy --stats y.json && relu merge-stats shard-*.json\n  relu inspect --json *.npy\n  relu stats --json net.safetensors:layer2 acts/\n  relu trend run/epoch_*\n  relu diff run/epoch_10 run/epoch_20"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Transform one array through an activation (default: relu)
    Apply(cmd::apply::ApplyArgs),
    /// Statistics of arrays: sparsity, dead units, distribution (optionally after --act)
    Stats(cmd::stats::StatsArgs),
    /// Histograms of arrays (optionally after --act): terminal bars, CSV, JSON, SVG or PNG
    Hist(cmd::hist::HistArgs),
    /// Apply (and statistics) over many files and directories on every core, outputs mirroring the tree
    Batch(cmd::batch::BatchArgs),
    /// Merge statistics JSON written by stats / apply --stats (shards) exactly
    MergeStats(cmd::merge::MergeArgs),
    /// Show what a file holds, from its header only
    Inspect(cmd::inspect::InspectArgs),
    /// Statistics of the same tensors across training checkpoints: dead units (and more) over steps
    Trend(cmd::trend::TrendArgs),
    /// How far each tensor's distribution moved between two checkpoints: W1, JS, PSI, KS, units (exit 3 with --fail-over)
    Diff(cmd::diff::DiffArgs),
    /// Print a shell completion script (e.g. `relu completions bash > ~/.local/share/bash-completion/completions/relu`)
    Completions(CompletionsArgs),
    /// Print the man page (roff): `relu man > relu.1 && man ./relu.1`
    Man,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `relu 0.1.0 (kernel: avx2+f16c)`: the version says which SIMD level runs here.
pub fn version() -> String {
    format!("{} (kernel: {})", env!("CARGO_PKG_VERSION"), crate::kernel::Level::detect().name())
}

/// `relu completions SHELL`: the script, from the clap definitions.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "relu", &mut out);
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(())
}

/// `relu man`: one page, as ripgrep's: what relu is, then a section per subcommand with its
/// synopsis, every option and its examples (clap_mangen's own pages would point at
/// `relu-apply(1)` and the like, which nothing installs).
fn man() -> anyhow::Result<()> {
    let mut root = Cli::command().version(version());
    root.build();
    let top = clap_mangen::Man::new(root.clone());
    let mut page = String::new();
    page += &roff(|w| top.render_title(w))?;
    page += &roff(|w| top.render_name_section(w))?;
    page += &roff(|w| top.render_synopsis_section(w))?;
    page += &roff(|w| top.render_description_section(w))?;
    page.push_str(".PP\nEach command's options and examples are in its section below (COMMAND: RELU APPLY, ...).\n");
    page += &roff(|w| top.render_options_section(w))?;
    page.push_str(".SH COMMANDS\n");
    let subs: Vec<&clap::Command> = root.get_subcommands().filter(|s| s.get_name() != "help").collect();
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        page.push_str(&format!(".TP\n\\fBrelu {}\\fR\n{}\n", roff_text(sub.get_name()), roff_text(&about)));
    }
    for sub in &subs {
        let name = format!("relu {}", sub.get_name());
        let man = clap_mangen::Man::new((*sub).clone().bin_name(name.clone()));
        page.push_str(&format!(".SH \"COMMAND: {}\"\n", roff_text(&name.to_uppercase())));
        page += &roff(|w| man.render_description_section(w))?.replace(".SH DESCRIPTION\n", "");
        page += &roff(|w| man.render_synopsis_section(w))?.replace(".SH SYNOPSIS", ".SS Synopsis");
        page += &roff(|w| man.render_options_section(w))?.replace(".SH OPTIONS", ".SS Options");
        page += &examples(sub, ".SS Examples");
    }
    page += &examples(&root, ".SH EXAMPLES");
    page.push_str(&format!(
        ".SH ENVIRONMENT\n.TP\n\\fBRELU_MAX_RECORD\\fR\n{}\n.TP\n\\fBNO_COLOR\\fR, \\fBTERM\\fR=dumb, \\fBCOLUMNS\\fR\n{}\n",
        roff_text(&format!(
            "The longest CSV record read, in MiB (default {}, at most {}): a longer one is refused as an unterminated \
             quote or a missing line end. Raise it for rows that wide; each block in flight may hold one record.",
            crate::format::csv::MAX_RECORD >> 20,
            crate::format::csv::MAX_RECORD_CEILING_MIB
        )),
        roff_text("hist's terminal bars: no colour under NO_COLOR or TERM=dumb; COLUMNS sets their width.")
    ));
    page += &roff(|w| top.render_version_section(w))?;
    std::io::Write::write_all(&mut std::io::stdout(), page.as_bytes())?;
    Ok(())
}

/// One of clap_mangen's sections as text.
fn roff(render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> anyhow::Result<String> {
    let mut out = Vec::new();
    render(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// Text for a roff line: backslashes and hyphens escaped, no line starting with a control character.
fn roff_text(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The `Examples:` lines of a command's help, one a line (unfilled), under `heading`.
fn examples(cmd: &clap::Command, heading: &str) -> String {
    let Some(help) = cmd.get_after_help().map(|h| h.to_string()) else { return String::new() };
    let lines: Vec<&str> =
        help.lines().filter(|l| l.trim_start().starts_with("relu ") || l.contains("| relu")).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!("{heading}\n.nf\n");
    for l in lines {
        out.push_str(&roff_text(l.trim()));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// Parses the command line, runs it, reports an error once. Returns the exit code.
pub fn main() -> i32 {
    let cmd = Cli::command().version(version());
    let cli = match cmd.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    crate::output::install_interrupt_cleanup();
    let result = crate::format::csv::set_max_record_from_env().and_then(|()| match cli.command {
        Command::Apply(a) => cmd::apply::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Hist(a) => cmd::hist::run(a),
        Command::Batch(a) => cmd::batch::run(a),
        Command::MergeStats(a) => cmd::merge::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Trend(a) => cmd::trend::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Completions(a) => completions(a.shell),
        Command::Man => man(),
    });
    match result {
        Ok(()) => 0,
        Err(e) if crate::output::is_broken_pipe(&e) => 0,
        Err(e) if e.downcast_ref::<cmd::diff::Exceeded>().is_some() => {
            // everything was printed: the limits were passed (a drift check's failure, not relu's)
            crate::errln!("relu: {e:#}");
            3
        }
        Err(e) => {
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            crate::errln!("relu: {e:#}");
            if usage {
                2
            } else {
                1
            }
        }
    }
}
