//! `relu apply` on an `.npz`: every member through the activation into an `.npz` with the same
//! member names (and each member's compression), or with `--member NAME` one member to any format.

use super::apply::{npz_needs_npz, prepare, stats_json, Prepared};
use super::common::{write_stats, NpyInput};
use crate::act::Activation;
use crate::cli::{ApplyArgs, FormatArg, UsageError};
use crate::format::npz::{finish_member, MemberInfo, NpzArchive, NpzWriter};
use crate::output::AtomicOutput;
use crate::pipeline;
use crate::stats::StatsJson;
use anyhow::{Context, Result};
use std::io::{Seek, Write};
use std::path::Path;

pub fn run(
    args: &ApplyArgs,
    act: Option<Activation>,
    mut ar: NpzArchive,
    to: FormatArg,
    delim: u8,
    out_path: Option<&Path>,
) -> Result<()> {
    let members = ar.members()?;
    let single = match &args.table.member {
        Some(m) => Some(ar.find(m)?),
        None if to != FormatArg::Npz && members.len() == 1 => Some(members[0].clone()),
        None if to != FormatArg::Npz => {
            let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
            return Err(UsageError(format!(
                "{} holds {} arrays ({}): pick one with --member NAME, or write an .npz",
                ar.name,
                members.len(),
                keys.join(", ")
            ))
            .into());
        }
        None => None,
    };
    if let Some(m) = single {
        // One member: the .npy paths do the rest.
        let name = ar.member_name(&m);
        let mut r = ar.reader(&m)?;
        let input = NpyInput::from_reader(&name, Box::new(&mut r))?;
        match to {
            FormatArg::Npy => super::apply::run_npy(args, act, input)?,
            FormatArg::Csv | FormatArg::Tsv => super::apply_csv::npy_to_csv(args, act, input, delim, out_path)?,
            FormatArg::Npz => return Err(UsageError(npz_needs_npz()).into()),
        }
        return finish_member(&mut r, &name);
    }
    if args.act.upstream.is_some() {
        return Err(UsageError("--upstream with an .npz input needs --member NAME".into()).into());
    }
    match out_path {
        Some(path) => {
            let mut out = AtomicOutput::create(path)?;
            let stats = write_members(args, act, &mut ar, &members, out.file())?;
            if let Some(p) = &args.stats {
                write_stats(p, &stats)?;
            }
            out.commit()
        }
        None => {
            // A zip's directory is written last, at offsets into the file: build it in a
            // temporary file, then copy it out.
            let mut spool = tempfile::tempfile().context("cannot create a temporary file for the .npz")?;
            let stats = write_members(args, act, &mut ar, &members, &mut spool)?;
            spool.rewind()?;
            let mut stdout = std::io::stdout().lock();
            std::io::copy(&mut spool, &mut stdout)?;
            stdout.flush()?;
            if let Some(p) = &args.stats {
                write_stats(p, &stats)?;
            }
            Ok(())
        }
    }
}

/// Every member through the activation into an `.npz` written to `file`; the statistics of each.
fn write_members<W: Write + Seek>(
    args: &ApplyArgs,
    act: Option<Activation>,
    ar: &mut NpzArchive,
    members: &[MemberInfo],
    file: W,
) -> Result<Vec<StatsJson>> {
    let mut zw = NpzWriter::new(file);
    let mut stats = Vec::new();
    for m in members {
        let name = ar.member_name(m);
        let mut r = ar.reader(m)?;
        let mut input = NpyInput::from_reader(&name, Box::new(&mut r))?;
        let Prepared { mut proc, out_header, .. } = prepare(args, act, &input)?;
        let elements = input.header.elements;
        let size = out_header.len() as u64 + elements.saturating_mul(proc.plan().output.size() as u64);
        zw.start(&m.file_name, m.compression, size).with_context(|| name.clone())?;
        let w = zw.writer();
        w.write_all(&out_header)?;
        pipeline::stream(&mut proc, elements, input.source.as_mut(), None, &mut |b| Ok(w.write_all(b)?))
            .with_context(|| name.clone())?;
        stats.extend(stats_json(args, &proc, &input));
        drop(input);
        finish_member(&mut r, &name)?;
    }
    zw.finish()?;
    Ok(stats)
}
