//! `.npz`: a zip archive of `.npy` members, as NumPy's `savez` (stored) and `savez_compressed`
//! (deflated) write them. Members are read one at a time through the zip reader, which inflates
//! and checks each member's CRC as the data streams by; nothing is held in memory whole. A zip's
//! directory sits at its end, so an archive on stdin is first spooled to a temporary file.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// The most bytes of an `.npz` stream spooled to disk (its directory is at its end, so the whole
/// archive is needed before any member can be found).
pub const MAX_SPOOL: u64 = 64 << 30;

pub struct NpzArchive {
    /// The archive's name for messages (`<stdin>` for stdin).
    pub name: String,
    zip: ZipArchive<File>,
}

/// One member as listed in the archive.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub index: usize,
    /// The name inside the zip (`layer1.npy`).
    pub file_name: String,
    /// The key NumPy's `np.load` gives it (`layer1`).
    pub key: String,
    pub compression: CompressionMethod,
    /// Uncompressed bytes.
    pub size: u64,
}

impl NpzArchive {
    /// Opens a file, or spools stdin (`-`) to a temporary file first.
    pub fn open(path: &Path) -> Result<NpzArchive> {
        if path.as_os_str() == "-" {
            return Self::from_reader("<stdin>", std::io::stdin().lock());
        }
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| name.clone())?;
        Self::from_file(name, file)
    }

    /// An archive from a stream (stdin), spooled to an anonymous temporary file: a zip's
    /// directory is at its end. The stream must start as a zip does (a member's local header,
    /// or the end record of an empty archive), checked before anything is spooled, and the spool
    /// stops at [`MAX_SPOOL`] with a message, so an endless stream cannot fill the disk.
    pub fn from_reader(name: &str, r: impl Read) -> Result<NpzArchive> {
        let mut r = r;
        let mut head = Vec::with_capacity(4);
        (&mut r).take(4).read_to_end(&mut head).with_context(|| name.to_string())?;
        if head != b"PK\x03\x04" && head != b"PK\x05\x06" {
            bail!("{name}: not a readable .npz (zip) archive: it does not start with a zip header");
        }
        let mut spool = tempfile::tempfile().context("cannot create a temporary file to spool the .npz")?;
        spool.write_all(&head).with_context(|| name.to_string())?;
        let got = std::io::copy(&mut (&mut r).take(MAX_SPOOL - 4), &mut spool).with_context(|| name.to_string())?;
        if got == MAX_SPOOL - 4 && r.read(&mut [0u8; 1]).with_context(|| name.to_string())? > 0 {
            bail!(
                "{name}: an .npz on stdin is spooled to a temporary file up to {} GiB, and this one is longer: \
                 pass it as a file",
                MAX_SPOOL >> 30
            );
        }
        spool.rewind()?;
        Self::from_file(name.to_string(), spool)
    }

    fn from_file(name: String, file: File) -> Result<NpzArchive> {
        let zip =
            ZipArchive::new(file).map_err(|e| anyhow::anyhow!("{name}: not a readable .npz (zip) archive: {e}"))?;
        if zip.is_empty() {
            bail!("{name}: the .npz archive has no members");
        }
        Ok(NpzArchive { name, zip })
    }

    /// The members, in archive order (directories left out).
    pub fn members(&mut self) -> Result<Vec<MemberInfo>> {
        let mut out = Vec::new();
        for index in 0..self.zip.len() {
            let f = self.zip.by_index_raw(index).with_context(|| self.name.clone())?;
            if f.is_dir() {
                continue;
            }
            let file_name = f.name().to_string();
            let key = file_name.strip_suffix(".npy").unwrap_or(&file_name).to_string();
            out.push(MemberInfo { index, file_name, key, compression: f.compression(), size: f.size() });
        }
        Ok(out)
    }

    /// A member's name for messages and statistics: `archive:key`.
    pub fn member_name(&self, m: &MemberInfo) -> String {
        format!("{}:{}", self.name, m.key)
    }

    /// The members `--member NAME` or `FILE:NAME` picks: the one whose key or file name is NAME,
    /// else those whose keys match NAME as a pattern (`glob`); none is an error.
    pub fn select(&mut self, name: &str) -> Result<Vec<MemberInfo>> {
        let members = self.members()?;
        if let Some(m) = members.iter().find(|m| m.key == name || m.file_name == name) {
            return Ok(vec![m.clone()]);
        }
        let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
        let picked = crate::glob::select(&keys, name);
        if picked.is_empty() {
            bail!("{}: no member {} (members: {})", self.name, crate::quote::text(name), keys.join(", "))
        }
        Ok(picked.into_iter().map(|i| members[i].clone()).collect())
    }

    /// A reader of one member's (inflated) bytes. It checks the member's CRC as soon as its last
    /// byte has been read, so a corrupt member fails the run before any output is committed.
    pub fn reader(&mut self, m: &MemberInfo) -> Result<Checked<zip::read::ZipFile<'_, File>>> {
        let name = self.member_name(m);
        match m.compression {
            CompressionMethod::Stored | CompressionMethod::Deflated => {}
            c => bail!("{name}: compression method {c} is not supported (NumPy writes stored or deflated members)"),
        }
        let r = self.zip.by_index(m.index).with_context(|| name.clone())?;
        Ok(Checked { r, left: m.size })
    }

    /// A member's `.npy` header. When it cannot be read and the member is corrupt (its deflate
    /// stream or CRC-32 is bad, found by reading the member to its end), the corruption is the
    /// error, as NumPy reports it, not the garbled header it produced.
    pub fn check_header(&mut self, m: &MemberInfo) -> Result<crate::format::npy::Header> {
        let name = self.member_name(m);
        let e = match crate::format::npy::read_header(&mut self.reader(m)?) {
            Ok(h) => return Ok(h),
            Err(e) => e,
        };
        let corrupt =
            |io: &dyn std::fmt::Display| anyhow::anyhow!("{name}: corrupt member (bad deflate data or CRC-32): {io}");
        if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
            return Err(corrupt(io));
        }
        match std::io::copy(&mut self.reader(m)?, &mut std::io::sink()) {
            Err(io) => Err(corrupt(&io)),
            Ok(_) => Err(e.context(name)),
        }
    }
}

/// A member's reader that asks the zip reader for its end right after the last byte, which is
/// when the zip reader compares the CRC.
pub struct Checked<R> {
    r: R,
    left: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        self.left = self.left.saturating_sub(n as u64);
        if n > 0 && self.left == 0 {
            let mut probe = [0u8; 1];
            if self.r.read(&mut probe)? != 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "member longer than its size"));
            }
        }
        Ok(n)
    }
}

/// Reads what is left of a member (NumPy ignores trailing bytes too) so that the zip reader
/// checks its CRC: a corrupt member is an error, not silently wrong numbers.
pub fn finish_member(r: &mut impl Read, name: &str) -> Result<()> {
    std::io::copy(r, &mut std::io::sink()).with_context(|| format!("{name}: corrupt member"))?;
    Ok(())
}

/// Writes an `.npz` member by member into a seekable file.
pub struct NpzWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
}

impl<W: Write + Seek> NpzWriter<W> {
    pub fn new(w: W) -> Self {
        NpzWriter { zip: ZipWriter::new(w) }
    }

    /// Starts a member; its data is then written through [`NpzWriter::writer`]. `size` is the
    /// member's byte count when known (over 4 GiB needs ZIP64 entries, as NumPy writes).
    pub fn start(&mut self, file_name: &str, compression: CompressionMethod, size: u64) -> Result<()> {
        let method = if compression == CompressionMethod::Deflated {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(size >= u32::MAX as u64)
            .unix_permissions(0o644);
        self.zip.start_file(file_name, opts)?;
        Ok(())
    }

    pub fn writer(&mut self) -> &mut ZipWriter<W> {
        &mut self.zip
    }

    /// Declares the started member as `len` bytes with CRC-32 `crc`, its data (past what went
    /// through [`NpzWriter::writer`]) written by the caller at positions through another handle
    /// of the same file description, which left the file's offset at the member's end.
    pub fn written_at(&mut self, len: u64, crc: u32) -> Result<()> {
        // SAFETY: not a memory-safety contract: the crate marks it unsafe because it replaces the
        // length and CRC of data that did not all go through it, which is what happened here
        unsafe { self.zip.set_file_metadata(len, crc)? };
        Ok(())
    }

    /// Writes the central directory; returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        Ok(self.zip.finish()?)
    }
}
